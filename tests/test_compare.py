from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

import nbchat
from nbchat.conversation.compare import column_labels, compare_entries
from tests import storeutil
from tests.fakeserver import SECRET, sse_events
from tests.loopserver import completion

fresh_store = storeutil.fresh_store


def streaming_client(delays: dict[str, float] | None = None, failing: str | None = None):
    requests = []
    lock = threading.Lock()
    both_in = threading.Barrier(2, timeout=5) if delays else None

    def handler(request):
        body = json.loads(request.content)
        with lock:
            requests.append(body)
        model = body["model"]
        if both_in is not None and model in (delays or {}):
            both_in.wait()  # raises if the other column's request never arrives meanwhile
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
    # Each request waits at the server until the other has arrived too: side by side, not
    # one after the other (one after the other, the first would wait in vain and fail).
    client, requests = streaming_client(delays={"a": 0.0, "b": 0.0})
    replies = nbchat.compare("Hi", ["a", "b"], client=client, display=False, temperature=0.5)
    assert [r.content for r in replies] == ["a says 0.5", "b says 0.5"]
    assert {r["model"] for r in requests} == {"a", "b"}
    assert all(r["stream"] is True for r in requests)
    assert all(r["messages"] == [{"role": "user", "content": "Hi"}] for r in requests)


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


def test_columns_sent_at_once_hold_their_estimates_so_they_cannot_pass_the_budget_together(
    fresh_store,
):
    from nbchat.store import budget, config

    requests: list = []
    lock = threading.Lock()

    def handler(request):
        with lock:
            requests.append(json.loads(request.content))
        time.sleep(0.3)  # every column in flight at once
        reply = completion("gpt-4.1-mini", "ok")
        return httpx.Response(200, json=reply)

    client = nbchat.Client(
        api_key=SECRET, base_url="https://api.openai.com/v1", transport=httpx.MockTransport(handler)
    )
    # Six columns whose requests may each cost up to 2,000 tokens of gpt-4.1-mini: a budget
    # of two and a half requests' worth lets two go.
    one = budget.estimate(
        nbchat.Chat("gpt-4.1-mini", client=client, stream=False).prepare("Hi", max_tokens=2000),
        client.profile,
    ).dollars
    config.configure(budget=2.5 * one)
    replies = nbchat.compare(
        "Hi", ["gpt-4.1-mini"] * 6, client=client, display=False, stream=False, max_tokens=2000
    )
    refused = [r for r in replies if isinstance(r, nbchat.BudgetExceededError)]
    assert len(requests) == 2 and len(refused) == 4
    assert budget.reserved() == 0.0
