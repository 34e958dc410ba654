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


def test_counted_tokens_show_where_the_server_sent_no_usage_marked_as_counted(fresh_store):
    put(model="local", cost=None, counted_tokens=80)
    put(model="local", cost=None, prompt_tokens=137, completion_tokens=11)
    log = log_table(10)["text/plain"]
    assert "?+~80" in log and "137+11" in log
    assert "~N: completion tokens nbchat counted" in log
    usage = usage_table()["text/plain"]
    local = next(line for line in usage.splitlines() if " local " in line)
    # The prompt sum is of one exchange of two: at least; the completion counted in part.
    assert (
        "≥137" in local and "~91" in local and "unknown" not in local.replace("price unknown", "")
    )
    assert "~N: completion tokens nbchat counted" in usage


def test_the_log_fits_a_narrow_terminal_as_records_and_a_wide_one_as_a_table(fresh_store):
    long_prompt = "Write a paragraph about the history of the Python programming language."
    for n in range(3):
        put(
            request={"messages": [{"role": "user", "content": long_prompt}]},
            response=reply("Python's history is marked by a mix of innovation. " * 3),
            model="SmolLM2-135M-Instruct.Q4_1",
            prompt_tokens=12,
            completion_tokens=80 + n,
            latency=2.5,
        )
    narrow = log_table(10, width=80)["text/plain"].splitlines()
    assert all(len(line) <= 80 for line in narrow)
    assert narrow[1].startswith("2025-05-12") and "12+80 tokens" in narrow[1]
    assert any(line.startswith("  > Write a paragraph") for line in narrow)
    wide = log_table(10, width=200)["text/plain"].splitlines()
    assert wide[1].split() == [
        "time",
        "session",
        "model",
        "tokens",
        "cost",
        "latency",
        "prompt",
        "reply",
    ]
    assert all(len(line) <= 200 for line in wide)


def test_usage_fits_the_terminal_too(fresh_store):
    put(model="SmolLM2-135M-Instruct.Q4_1", cost=None, prompt_tokens=100, completion_tokens=10)
    narrow = usage_table(width=60)["text/plain"].splitlines()
    # The store's path is one word, as long as it is.
    assert all(len(line) <= 60 for line in narrow if not line.startswith("Store: "))
    assert any("exchanges 1, cached 0, prompt 100, completion 10" in line for line in narrow)
    wide = usage_table(width=120)["text/plain"].splitlines()
    assert wide[1].startswith("day (UTC)") and len(wide[1]) <= 120
