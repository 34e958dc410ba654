from __future__ import annotations

from datetime import UTC, datetime

from nbchat import Reply
from nbchat.protocol.types import ChatCompletion
from nbchat.render.provenance import footer_parts
from nbchat.store.exchange import Origin

WHEN = datetime(2025, 5, 12, 10, 3, tzinfo=UTC)


def reply(**fields) -> Reply:
    return Reply(completion=ChatCompletion(), **fields)


def test_a_sent_reply_shows_its_cost_or_that_the_price_is_unknown():
    assert footer_parts(reply(cost=0.0012)) == ["$0.0012"]
    assert footer_parts(reply()) == ["price unknown"]


def test_a_cached_reply_says_so_with_the_original_time_and_cost():
    origin = Origin("cache", WHEN, 0.0012, "/tmp/nbchat.db")
    parts = footer_parts(reply(cached=True, cost=0.0, origin=origin))
    local = WHEN.astimezone().strftime("%Y-%m-%d %H:%M")
    assert parts == [f"cached: reply of {local}", "nothing billed (it cost $0.0012)"]


def test_a_replayed_reply_says_it_came_from_a_cassette():
    origin = Origin("replay", WHEN, None, "demo.json")
    parts = footer_parts(reply(cached=True, cost=None, origin=origin))
    assert parts[0].startswith("replayed from a cassette: reply of ")
    assert parts[1] == "nothing billed"
