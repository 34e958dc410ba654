from __future__ import annotations

from datetime import UTC, datetime

from nbchat.notebook.storeviews import log_table, usage_table
from nbchat.store import config, db
from nbchat.store.record import Exchange
from tests import storeutil

fresh_store = storeutil.fresh_store

WHEN = datetime(2025, 5, 12, 10, tzinfo=UTC)


def put(**fields) -> None:
    defaults = {
        "request": {"messages": [{"role": "user", "content": "q"}]},
        "key": "k",
        "time": WHEN,
        "session": "s",
        "model": "m",
    }
    db.open_store(config.store_path()).add(Exchange(**{**defaults, **fields}))


def reply(text: str) -> dict:
    return {"choices": [{"message": {"content": text}}]}


def test_the_log_escapes_prompts_and_replies(fresh_store):
    put(
        request={"messages": [{"role": "user", "content": "<img src=x onerror=alert(1)>"}]},
        response=reply("<script>alert(2)</script>"),
        prompt_tokens=3,
        completion_tokens=4,
        cost=0.0012,
        latency=1.234,
    )
    table = log_table(10)
    assert "<script>" not in table["text/html"] and "<img" not in table["text/html"]
    assert "&lt;script&gt;" in table["text/html"]
    plain = table["text/plain"]
    assert "3+4" in plain and "$0.0012" in plain and "1.23 s" in plain


def test_the_log_says_how_each_exchange_was_answered(fresh_store):
    put(cost=None)
    put(source="cache", cost=0.0)
    put(source="replay", cost=0.0)
    put(status="error", error={"message": "Rate limited"})
    plain = log_table(10)["text/plain"]
    for word in ("price unknown", "cached", "replayed", "error", "Rate limited"):
        assert word in plain, word


def test_an_empty_store_says_so(fresh_store):
    assert log_table(5)["text/plain"] == "No exchanges in the store yet"
    assert usage_table()["text/plain"].startswith("No exchanges in the store yet")


def test_usage_totals_priced_unpriced_and_cached_exchanges(fresh_store):
    put(cost=0.5, prompt_tokens=100, completion_tokens=10)
    put(cost=0.25, prompt_tokens=100, completion_tokens=10)
    put(model="local", cost=None)
    put(model="cached-only", source="cache", cost=0.0)
    config.configure(budget=2.0)
    plain = usage_table()["text/plain"]
    lines = plain.splitlines()
    local = next(line for line in lines if " local " in line)
    assert "unknown" in local and "price unknown" in local
    cached = next(line for line in lines if "cached-only" in line)
    assert "nothing billed" in cached and "unknown" not in cached
    assert "Billed: $0.75 for 2 priced exchanges" in plain
    assert "1 exchange with no known price" in plain
    assert "1 answered by the cache or a cassette" in plain
    assert "Budget: $0.75 of $2.00 spent" in plain
