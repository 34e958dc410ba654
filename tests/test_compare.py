from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

import nbchat
from nbchat.conversation.compare import column_labels, compare_entries
from tests.fakeserver import SECRET, sse_events
from tests.loopserver import completion


def streaming_client(delays: dict[str, float] | None = None, failing: str | None = None):
    requests = []
    lock = threading.Lock()

    def handler(request):
        body = json.loads(request.content)
        with lock:
            requests.append(body)
        model = body["model"]
        if model == failing:
            return httpx.Response(
                404,
                json={"error": {"message": f"no {model}", "type": "x", "code": "model_not_found"}},
            )
        time.sleep((delays or {}).get(model, 0))
        reply = completion(model, f"{model} says {body.get('temperature')}")
        if body.get("stream"):
            return httpx.Response(200, content=b"".join(sse_events(reply, piece=4)))
        return httpx.Response(200, json=reply)

    client = nbchat.Client(
        api_key=SECRET, base_url="http://fake.test/v1", transport=httpx.MockTransport(handler)
    )
    return client, requests


def test_every_model_gets_the_prompt_at_once_and_replies_come_back_in_order():
    client, requests = streaming_client(delays={"a": 0.2, "b": 0.2})
    started = time.perf_counter()
    replies = nbchat.compare("Hi", ["a", "b"], client=client, display=False, temperature=0.5)
    elapsed = time.perf_counter() - started
    assert [r.content for r in replies] == ["a says 0.5", "b says 0.5"]
    assert {r["model"] for r in requests} == {"a", "b"}
    assert all(r["stream"] is True for r in requests)
    assert all(r["messages"] == [{"role": "user", "content": "Hi"}] for r in requests)
    assert elapsed < 0.39  # side by side, not one after the other


def test_entries_may_be_settings_and_labels_say_which():
    client, _ = streaming_client()
    replies = nbchat.compare(
        "Hi",
        [{"model": "m", "temperature": 0}, {"model": "m", "temperature": 1.5}],
        client=client,
        display=False,
        stream=False,
    )
    assert [r.content for r in replies] == ["m says 0.0", "m says 1.5"]
    entries = compare_entries(["x", {"model": "x", "seed": 1}, "x", {"seed": 2}])
    assert column_labels(entries, ["x", "x", "x", "served"]) == [
        "x #1",
        "x · seed=1",
        "x #2",
        "served · seed=2",
    ]


def test_a_failing_model_keeps_its_exception_in_its_place():
    client, _ = streaming_client(failing="gone")
    replies = nbchat.compare("Hi", ["a", "gone"], client=client, display=False)
    assert replies[0].content == "a says None"
    assert isinstance(replies[1], nbchat.NotFoundError)


def test_bad_settings_are_refused_before_anything_is_sent():
    client, requests = streaming_client()
    with pytest.raises(nbchat.RequestValidationError, match="temperature"):
        nbchat.compare("Hi", ["a", {"model": "b", "temperature": 7}], client=client)
    with pytest.raises(nbchat.RequestValidationError, match="models"):
        nbchat.compare("Hi", "a,b", client=client)
    with pytest.raises(nbchat.RequestValidationError, match="empty"):
        nbchat.compare("Hi", [], client=client)
    assert requests == []


def test_an_async_client_is_refused_with_a_hint():
    client = nbchat.AsyncClient(api_key="k", base_url="http://x/v1")
    with pytest.raises(nbchat.RequestValidationError, match=r"pass nbchat\.Client"):
        nbchat.compare("Hi", ["a"], client=client)
