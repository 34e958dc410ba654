from __future__ import annotations

import json

from nbchat.transport.prepared import MASK, PreparedRequest

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _prepared(**body):
    return PreparedRequest(
        method="POST",
        url="http://h/v1/chat/completions",
        headers={"Authorization": f"Bearer {MASK}"},
        body={**BODY, **body},
    )


def test_streamed_and_unstreamed_requests_of_the_same_content_share_a_key():
    plain = _prepared()
    streamed = _prepared(stream=True, stream_options={"include_usage": True})
    assert streamed.stream and not plain.stream
    assert plain.key == streamed.key


def test_any_other_field_changes_the_key():
    keys = {
        _prepared().key,
        _prepared(temperature=0.5).key,
        _prepared(model="other").key,
        _prepared(messages=[{"role": "user", "content": "hi!"}]).key,
    }
    assert len(keys) == 4


def test_the_key_does_not_depend_on_field_order():
    a = PreparedRequest("POST", "u", {}, {"model": "m", "temperature": 1, "messages": []})
    b = PreparedRequest("POST", "u", {}, {"messages": [], "temperature": 1, "model": "m"})
    assert a.key == b.key


def test_to_dict_is_plain_json_and_a_copy():
    prepared = _prepared()
    data = prepared.to_dict()
    assert json.loads(json.dumps(data)) == data
    data["body"]["model"] = "changed"
    assert prepared.body["model"] == "m"
