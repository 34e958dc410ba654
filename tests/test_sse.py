from __future__ import annotations

import pytest

from nbchat.protocol.exceptions import ResponseTooLargeError
from nbchat.transport.sse import DEFAULT_MAX_EVENT_BYTES, ServerSentEvent, SSEDecoder, iter_events
from tests.reference import STREAM_BYTES

# Everything the decoder must get right at once: comments and keep-alives between events and
# inside one, multi-line data, the optional space, event/id fields, CJK text, an empty event.
MIXED_LINES = [
    ": keep-alive",
    "",
    "data: 秋风起兮白云飞",
    "",
    "event: ping",
    ": a comment inside an event",
    "data:no space",
    "data:  two spaces keep one",
    "id: 7",
    "",
    "",
    ": keep-alive",
    "",
    "data: first line",
    ": between data lines",
    "data: second line",
    "data",
    "",
    "retry: 1500",
    'data: {"content":"é😀"}',
    "",
    "data: [DONE]",
    "",
]
MIXED_EXPECTED = [
    ("秋风起兮白云飞".encode(), "message", None),
    (b"no space\n two spaces keep one", "ping", "7"),
    (b"first line\nsecond line\n", "message", "7"),
    ('{"content":"é😀"}'.encode(), "message", "7"),
    (b"[DONE]", "message", "7"),
]


def body_with(lines: list[str], ending: str) -> bytes:
    return "".join(line + ending for line in lines).encode()


def decode(pieces: list[bytes]) -> list[tuple[bytes, str, str | None]]:
    return [(event.data, event.event, event.id) for event in iter_events(pieces)]


def test_reference_stream_gives_one_event_per_data_line() -> None:
    events = list(iter_events([STREAM_BYTES]))
    assert len(events) == 5
    assert events[1].data.decode() == (
        '{"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1716936000,'
        '"model":"gpt-4.1-2025-04-14","choices":[{"index":0,"delta":{"content":"秋"},'
        '"logprobs":null,"finish_reason":null}]}'
    )
    assert events[-1].data == b"[DONE]"
    assert all(event.event == "message" for event in events)


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_ending_gives_the_same_events(ending: str) -> None:
    assert decode([body_with(MIXED_LINES, ending)]) == MIXED_EXPECTED


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_a_split_at_every_byte_offset_gives_the_same_events(ending: str) -> None:
    body = body_with(MIXED_LINES, ending)
    for at in range(len(body) + 1):
        assert decode([body[:at], body[at:]]) == MIXED_EXPECTED, f"split at byte {at}"


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_a_split_at_every_pair_of_offsets_of_the_reference_stream(ending: str) -> None:
    body = STREAM_BYTES.replace(b"\n", ending.encode())
    expected = decode([STREAM_BYTES])
    step = 7  # every pair would be 600k decodes; a prime stride still meets every line edge
    for first in range(0, len(body), step):
        for second in range(first, len(body), step * 13):
            pieces = [body[:first], body[first:second], body[second:]]
            assert decode(pieces) == expected, f"split at {first} and {second}"


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_one_byte_reads_give_the_same_events(ending: str) -> None:
    body = body_with(MIXED_LINES, ending)
    assert decode([body[i : i + 1] for i in range(len(body))]) == MIXED_EXPECTED


def test_bytes_are_buffered_across_reads_until_the_line_ends() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"da") == []
    assert decoder.feed(b'ta: {"a":') == []
    assert decoder.feed(b" 1}\n") == []
    [event] = decoder.feed(b"\n")
    assert event.data == b'{"a": 1}'


def test_a_utf8_character_split_between_reads_arrives_whole() -> None:
    raw = "data: 秋\n\n".encode()
    cut = raw.index("秋".encode()) + 1  # inside the three bytes of 秋
    for at in (cut, cut + 1):
        decoder = SSEDecoder()
        events = decoder.feed(raw[:at]) + decoder.feed(raw[at:])
        assert [event.text for event in events] == ["秋"]


def test_a_crlf_split_between_reads_is_one_line_ending_not_two() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # Were the LF a second line ending, this blank line would dispatch the event now.
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: b\r") == []
    [event] = decoder.feed(b"\n\r\n")
    assert event.data == b"a\nb"


def test_a_lone_cr_ends_a_line_without_waiting_for_the_next_read() -> None:
    decoder = SSEDecoder()
    [event] = decoder.feed(b"data: now\r\r")
    assert event.data == b"now"
    [event] = decoder.feed(b"data: next\r\r")
    assert event.data == b"next"


def test_keep_alive_comments_alone_never_make_events() -> None:
    assert decode([b": ping\n\n: ping\r\n\r\n:\r\r\n\n\n"]) == []


def test_data_with_and_without_the_space_after_the_colon() -> None:
    assert decode([b"data: x\n\ndata:x\n\ndata:  x\n\n"]) == [
        (b"x", "message", None),
        (b"x", "message", None),
        (b" x", "message", None),
    ]


def test_multi_line_data_is_joined_with_newlines() -> None:
    [event] = iter_events([b'data: {\ndata: "a": 1\ndata: }\n\n'])
    assert event.data == b'{\n"a": 1\n}'


def test_event_type_resets_after_each_event_but_id_persists() -> None:
    events = list(iter_events([b"event: error\nid: 3\ndata: x\n\ndata: y\n\n"]))
    assert [(e.event, e.id) for e in events] == [("error", "3"), ("message", "3")]


def test_retry_field_is_read_and_bad_values_ignored() -> None:
    events = list(iter_events([b"retry: 2500\ndata: a\n\nretry: soon\ndata: b\n\n"]))
    assert [e.retry for e in events] == [2500, 2500]


def test_unknown_fields_are_ignored() -> None:
    assert decode([b"foo: bar\ndata: x\nbaz\n\n"]) == [(b"x", "message", None)]


@pytest.mark.parametrize("at", [0, 1, 2, 3, 4])
def test_a_leading_byte_order_mark_is_dropped_even_when_split(at: int) -> None:
    body = b"\xef\xbb\xbfdata: x\n\n"
    assert decode([body[:at], body[at:]]) == [(b"x", "message", None)]


def test_a_byte_order_mark_later_in_the_stream_is_data() -> None:
    [event] = iter_events([b"data: \xef\xbb\xbfx\n\n"])
    assert event.data == b"\xef\xbb\xbfx"


def test_a_long_line_read_in_small_pieces_arrives_whole() -> None:
    payload = b"x" * 200_000
    body = b"data: " + payload + b"\n\n"
    events = list(iter_events([body[i : i + 100] for i in range(0, len(body), 100)]))
    assert [event.data for event in events] == [payload]


def test_an_event_without_its_blank_line_is_not_dispatched_but_stays_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]") == []
    assert decoder.flush() == []
    assert decoder.pending == b"[DONE]"


def test_flush_finishes_a_line_that_had_no_line_ending() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\ndata: b")
    decoder.flush()
    assert decoder.pending == b"a\nb"


def test_event_text_decodes_utf8_and_replaces_bad_bytes() -> None:
    assert ServerSentEvent("秋".encode()).text == "秋"
    assert ServerSentEvent(b"\xff").text == "\ufffd"


def test_an_event_with_empty_data_is_dispatched_and_one_without_data_lines_is_not() -> None:
    # The rules: a data line, even an empty one, makes the event; a blank line after only
    # other fields dispatches nothing (and resets the event type).
    body = b"data:\n\ndata: \n\nevent: ping\ndata:\n\nevent: lone\n\nid: 3\n\ndata: x\n\n"
    assert decode([body]) == [
        (b"", "message", None),
        (b"", "message", None),
        (b"", "ping", None),
        (b"x", "message", "3"),
    ]


def test_invalid_utf8_is_kept_as_bytes_and_read_with_replacement_characters() -> None:
    # Bytes, not text, come out: the chunk layer decodes them as the rules say.
    (event,) = list(iter_events([b"data: \xe7\xa7 cut \xff\n", b"event: \xfe\n\n"]))
    assert event.data == b"\xe7\xa7 cut \xff"
    assert event.text == "\ufffd cut \ufffd"
    assert event.event == "\ufffd"


LIMIT = 1000


@pytest.mark.parametrize("read", [1, 7, 999, 1001, 5000])
def test_a_line_longer_than_the_limit_is_refused_however_it_is_read(read: int) -> None:
    body = b"data: " + b"x" * LIMIT + b"\n\n"
    pieces = [body[at : at + read] for at in range(0, len(body), read)]
    with pytest.raises(ResponseTooLargeError) as info:
        list(iter_events(pieces, max_event_bytes=LIMIT))
    assert "stream line" in str(info.value)
    assert "1,000 bytes" in str(info.value)
    assert "max_event_bytes" in str(info.value)
    assert info.value.limit == LIMIT


def test_a_line_that_never_ends_is_refused_before_it_is_held_whole() -> None:
    decoder = SSEDecoder(LIMIT)
    decoder.feed(b"data: ")
    with pytest.raises(ResponseTooLargeError):
        for _ in range(10_000):  # 10 MB in all, if nothing stopped it
            decoder.feed(b"y" * 1000)
    assert decoder.pending == b""


def test_an_event_of_many_short_data_lines_is_refused_past_the_limit() -> None:
    lines = b"".join(b"data: " + b"z" * 90 + b"\n" for _ in range(20))  # 1820 bytes of data
    with pytest.raises(ResponseTooLargeError, match="stream event"):
        list(iter_events([lines + b"\n"], max_event_bytes=LIMIT))
    other_field = b"".join(b"data" + b":" + b"z" * 90 + b"\r" for _ in range(20))
    with pytest.raises(ResponseTooLargeError, match="stream event"):
        list(iter_events([other_field + b"\r"], max_event_bytes=LIMIT))


def test_lines_and_events_at_the_limit_pass() -> None:
    line = b"data: " + b"x" * (LIMIT - 6) + b"\n"  # the line is exactly the limit
    assert decode_limited([line + b"\n"]) == [b"x" * (LIMIT - 6)]
    many = b"data: " + b"a" * 400 + b"\ndata: " + b"b" * 400 + b"\n\n"
    assert decode_limited([many]) == [b"a" * 400 + b"\n" + b"b" * 400]


def test_many_events_each_within_the_limit_pass_whatever_their_total() -> None:
    event = b"data: " + b"x" * 900 + b"\n\n"
    assert len(decode_limited([event * 100])) == 100


def test_no_limit_when_none() -> None:
    big = b"data: " + b"x" * 100_000 + b"\n\n"
    (event,) = iter_events([big], max_event_bytes=None)
    assert len(event.data) == 100_000


def test_the_default_limit_is_8_mib() -> None:
    assert DEFAULT_MAX_EVENT_BYTES == 8 * 2**20
    ok = b"data: " + b"x" * (DEFAULT_MAX_EVENT_BYTES - 7) + b"\n\n"
    assert len(list(iter_events([ok]))) == 1
    with pytest.raises(ResponseTooLargeError, match="8 MiB"):
        list(iter_events([b"data: " + b"x" * DEFAULT_MAX_EVENT_BYTES + b"\n\n"]))


def decode_limited(pieces: list[bytes]) -> list[bytes]:
    return [event.data for event in iter_events(pieces, max_event_bytes=LIMIT)]
