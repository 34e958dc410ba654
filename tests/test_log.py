from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

import nbchat
from nbchat import Chat
from nbchat.store import db
from nbchat.store.log import COLUMNS, entries, prompt_text, reply_text, since_utc, usage, usage_rows
from nbchat.store.record import Exchange
from tests import storeutil
from tests.fakeserver import FakeServer

fresh_store = storeutil.fresh_store


def put(path, **fields) -> None:
    defaults = {"request": {"messages": [{"role": "user", "content": "q"}]}, "key": "k"}
    db.open_store(path).add(Exchange(**{**defaults, **fields}))


def test_log_is_a_dataframe_of_every_exchange_oldest_first(fresh_store):
    server = FakeServer().reply("Paris.").reply("Madrid.")
    chat = Chat("fake-model", client=server.client(), name="geo")
    chat.send("Capital of France?")
    chat.send("And Spain?")
    frame = nbchat.log()  # no flush needed: log() waits for what was queued
    assert list(frame.columns) == list(COLUMNS)
    assert list(frame["prompt"]) == ["Capital of France?", "And Spain?"]
    assert list(frame["reply"]) == ["Paris.", "Madrid."]
    assert list(frame["session"]) == ["geo", "geo"]
    assert str(frame["time"].dtype) == "datetime64[us, UTC]" or "UTC" in str(frame["time"].dtype)
    assert frame["cost"].isna().all()  # fake-model has no price: NaN, not 0
    assert frame["request"][1]["messages"][-1]["content"] == "And Spain?"


def test_log_filters_by_session_model_and_time(fresh_store):
    now = datetime.now(UTC)
    put(fresh_store, session="a", model="m1", time=now - timedelta(days=3))
    put(
        fresh_store,
        session="b",
        model_requested="m2",
        model="m2-0501",
        time=now - timedelta(hours=2),
    )
    put(fresh_store, session="a", model="m2", time=now)
    assert list(nbchat.log(session="a")["model"]) == ["m1", "m2"]
    # The model asked for or the one that answered.
    assert list(nbchat.log(model="m2")["session"]) == ["b", "a"]
    assert len(nbchat.log(since=timedelta(days=1))) == 2
    assert len(nbchat.log(since=(now - timedelta(hours=1)).isoformat())) == 1
    assert len(nbchat.log(since=now - timedelta(days=10), session="b")) == 1
    assert len(nbchat.log(limit=1)) == 1 and nbchat.log(limit=1)["session"][0] == "a"


def test_since_accepts_dates_strings_and_local_times():
    today = date.today()
    assert since_utc(today) == datetime.combine(today, datetime.min.time()).astimezone().astimezone(
        UTC
    )
    assert since_utc("2025-05-12T09:30+02:00") == datetime(2025, 5, 12, 7, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="not an ISO date"):
        since_utc("last tuesday")


def test_usage_groups_tokens_and_cost_by_day_session_and_model(fresh_store):
    day = datetime(2025, 5, 12, 10, tzinfo=UTC)
    common = {"prompt_tokens": 100, "completion_tokens": 10}
    put(fresh_store, session="s", model="m", time=day, cost=0.25, **common)
    put(fresh_store, session="s", model="m", time=day, cost=0.5, **common)
    put(fresh_store, session="s", model="m", time=day, source="cache", cost=0.0, **common)
    put(fresh_store, session="s", model="local", time=day, cost=None, **common)
    put(fresh_store, session="s", model="m", time=day + timedelta(days=1), cost=1.0, **common)
    put(fresh_store, session="s", model="m", time=day, status="error")
    put(fresh_store, session="t", model="quiet", time=day)  # a stream without usage
    rows = usage_rows()
    (quiet,) = [row for row in rows if row.session == "t"]
    rows.remove(quiet)
    assert (quiet.session, quiet.prompt_tokens, quiet.completion_tokens) == ("t", None, None)
    first = rows[1]
    assert (first.day, first.session, first.model) == ("2025-05-12", "s", "m")
    assert (first.exchanges, first.cached, first.errors) == (4, 1, 1)
    # What servers processed: the cache hit's tokens are not counted again.
    assert (first.prompt_tokens, first.completion_tokens) == (200, 20)
    assert first.cost == pytest.approx(0.75) and first.unpriced == 0
    assert (rows[0].model, rows[0].unpriced) == ("local", 1)
    assert rows[2].day == "2025-05-13"
    frame = usage()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4
    assert frame["cost"].sum() == pytest.approx(1.75)


def test_prompt_and_reply_text_come_from_the_last_message_and_first_choice():
    request = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "What is"}, {"type": "image_url"}],
            },
        ]
    }
    assert prompt_text(request) == "What is [image]"
    assert reply_text({"choices": [{"message": {"content": "A cat."}}]}) == "A cat."
    calls = {"choices": [{"message": {"tool_calls": [{"function": {"name": "f"}}]}}]}
    assert reply_text(calls) == "f(…)"
    assert reply_text({"choices": [{"message": {"refusal": "No."}}]}) == "[refused] No."
    assert reply_text(None) == prompt_text(None) == ""


def test_with_the_store_off_the_log_is_empty(fresh_store, monkeypatch):
    monkeypatch.setenv("NBCHAT_STORE", "off")
    assert entries() == [] and usage_rows() == []
    assert len(nbchat.log()) == 0


def test_tool_log_lists_each_call_with_its_approval_and_exchange(tmp_path, monkeypatch):
    from nbchat import tool_log
    from nbchat.store.db import open_store
    from nbchat.store.record import Exchange, ToolCallRecord

    monkeypatch.setenv("NBCHAT_STORE", str(tmp_path / "tools.db"))
    store = open_store(tmp_path / "tools.db")
    store.add(Exchange(request={"messages": []}, key="k1", session="s"))
    store.add(
        ToolCallRecord(
            key="k1",
            session="s",
            name="run_python",
            status="declined",
            approval="refused: nobody can answer",
            arguments={"code": "1"},
        )
    )
    frame = tool_log("s")
    assert list(frame["name"]) == ["run_python"]
    assert frame.loc[0, "approval"] == "refused: nobody can answer"
    assert frame.loc[0, "exchange_id"] == store.select()[0].id
    assert tool_log("other").empty


def test_reply_text_of_custom_calls_and_spoken_replies():
    custom = {"type": "custom", "custom": {"name": "sql", "input": "x"}}
    response = {"choices": [{"message": {"content": None, "tool_calls": [custom]}}]}
    assert reply_text(response) == "sql(…)"
    spoken = {"choices": [{"message": {"content": None, "audio": {"transcript": "Hi"}}}]}
    assert reply_text(spoken) == "[spoken] Hi"
