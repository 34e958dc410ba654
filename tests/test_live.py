from __future__ import annotations

import io

import pytest

from nbchat.conversation.chat import Reply
from nbchat.protocol.types import ChatCompletion, ChatCompletionChunk
from nbchat.render.live import BLOCK_CHARS, LiveView


class FakeHandle:
    def __init__(self, log, metadata):
        self.log = log
        self.metadata = metadata

    def update(self, bundle, raw=True, metadata=None):
        self.log.append(("update", bundle))
        self.metadata.append(metadata)


class FakeDisplay:
    def __init__(self):
        self.log = []
        self.metadata = []

    def __call__(self, bundle, raw=True, display_id=True, metadata=None):
        self.log.append(("display", bundle))
        self.metadata.append(metadata)
        return FakeHandle(self.log, self.metadata)

    @property
    def sent_chars(self) -> int:
        return sum(len(bundle.get("text/plain", "")) for _, bundle in self.log)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def chunk(text: str) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {"choices": [{"index": 0, "delta": {"content": text}}]}
    )


def reply_of(text: str) -> Reply:
    completion = ChatCompletion.model_validate(
        {
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
        }
    )
    return Reply(completion=completion)


def stream_through(view: LiveView, pieces, clock: Clock, step: float) -> None:
    for piece in pieces:
        clock.now += step
        view.on_chunk(chunk(piece), None)


def test_updates_are_limited_to_the_rate():
    display, clock = FakeDisplay(), Clock()
    view = LiveView(mode="live", rate=20, display=display, clock=clock)
    # 10,000 tokens over 10 seconds: at most 20 updates a second.
    stream_through(view, ["tok "] * 10_000, clock, step=0.001)
    assert 150 <= view.updates <= 201


def test_a_fast_stream_costs_few_updates():
    display, clock = FakeDisplay(), Clock()
    view = LiveView(mode="live", rate=20, display=display, clock=clock)
    stream_through(view, ["tok "] * 10_000, clock, step=0.0)
    assert view.updates <= 2 + 10_000 * 4 // BLOCK_CHARS


def test_long_replies_are_split_so_each_update_sends_only_the_tail():
    display, clock = FakeDisplay(), Clock()
    view = LiveView(mode="live", rate=20, display=display, clock=clock)
    paragraph = "word " * 40 + "\n\n"
    stream_through(view, [paragraph] * 2000, clock, step=0.01)
    total = len(paragraph) * 2000
    # Each update re-sends at most a block, so what is sent grows linearly with the reply.
    assert max(len(b.get("text/plain", "")) for _, b in display.log) < 2 * BLOCK_CHARS
    assert display.sent_chars < 12 * total
    opened = [entry for entry in display.log if entry[0] == "display"]
    assert len(opened) > 10


def test_finish_puts_the_whole_reply_in_the_first_area_and_empties_the_rest():
    display, clock = FakeDisplay(), Clock()
    view = LiveView(mode="live", rate=20, display=display, clock=clock)
    paragraph = "word " * 40 + "\n\n"
    stream_through(view, [paragraph] * 200, clock, step=0.1)
    view.finish(reply_of(paragraph * 200))
    finals = display.log[-len([e for e in display.log if e[0] == "display"]) :]
    assert (paragraph * 200).strip() in finals[0][1]["text/plain"]
    assert finals[0][1]["text/html"].count("<p>word word") == 200
    assert all(bundle == {"text/plain": ""} for _, bundle in finals[1:])


def test_final_mode_shows_nothing_until_done():
    display, clock = FakeDisplay(), Clock()
    view = LiveView(mode="final", display=display, clock=clock)
    stream_through(view, ["a", "b"], clock, step=1.0)
    assert display.log == []
    view.finish(reply_of("ab"))
    assert len(display.log) == 1
    assert "<p>ab</p>" in display.log[0][1]["text/html"]


def test_text_mode_writes_deltas_then_the_footer():
    out = io.StringIO()
    view = LiveView(mode="text", out=out)
    stream_through(view, ["Hel", "lo"], Clock(), step=0.0)
    view.finish(reply_of("Hello"))
    text = out.getvalue()
    assert text.startswith("Hello\n")
    assert "— m" in text


def test_live_text_is_rendered_safely_while_streaming():
    display, clock = FakeDisplay(), Clock()
    view = LiveView(mode="live", rate=20, display=display, clock=clock)
    stream_through(view, ["![a](http://x.test/i.png) <b>", " **bold**"], clock, step=1.0)
    bundle = display.log[-1][1]
    assert set(bundle) == {"text/html", "text/plain"}
    assert "<img" not in bundle["text/html"] and "<b>" not in bundle["text/html"]
    assert "&lt;b&gt;" in bundle["text/html"] and "<strong>bold</strong>" in bundle["text/html"]


def tool_chunk(index, arguments="", name=None, call_id=None) -> ChatCompletionChunk:
    call = {"index": index, "function": {"arguments": arguments}}
    if name is not None:
        call["function"]["name"] = name
    if call_id is not None:
        call["id"] = call_id
    return ChatCompletionChunk.model_validate(
        {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}
    )


def test_forming_tool_calls_show_the_tail_of_their_arguments_escaped():
    display, clock = FakeDisplay(), Clock()
    view = LiveView(mode="live", rate=20, display=display, clock=clock)
    # No stream object: the view follows the deltas themselves, never the accumulated call.
    view.on_chunk(tool_chunk(0, name="<b>save</b>", call_id="call_1"), None)
    for i in range(500):
        clock.now += 0.001
        view.on_chunk(tool_chunk(0, f"<{i:03d}>"), None)
    view.on_completion(None)
    bundle = display.log[-1][1]
    assert "&lt;b&gt;save&lt;/b&gt;(" in bundle["text/html"] and "<b>" not in bundle["text/html"]
    assert "&lt;499&gt;" in bundle["text/html"] and "&lt;001&gt;" not in bundle["text/html"]
    assert "2,500 characters" in bundle["text/html"]
    assert bundle["text/plain"].endswith("<499>")


def test_forming_tool_calls_numbered_zero_by_the_server_are_told_apart_by_id():
    display, clock = FakeDisplay(), Clock()
    view = LiveView(mode="live", rate=20, display=display, clock=clock)
    view.on_chunk(tool_chunk(0, '{"a"', name="first", call_id="c1"), None)
    view.on_chunk(tool_chunk(0, ": 1}"), None)
    view.on_chunk(tool_chunk(0, '{"b"', name="second", call_id="c2"), None)
    view.on_chunk(tool_chunk(0, ": 2}"), None)
    view.on_completion(None)
    plain = display.log[-1][1]["text/plain"]
    assert 'first({"a": 1}' in plain and 'second({"b": 2}' in plain


def test_a_burst_renders_frozen_areas_only_when_an_update_is_due():
    display, clock = FakeDisplay(), Clock()
    view = LiveView(mode="live", rate=20, display=display, clock=clock)
    paragraph = "word " * 40 + "\n\n"
    clock.now = 1.0
    stream_through(view, [paragraph] * 400, clock, step=0.0)
    # All of it arrived within one update interval: one area, updated once.
    assert view.updates == 1
    clock.now += 1.0
    view.on_chunk(chunk("end"), None)
    opened = [bundle for kind, bundle in display.log if kind == "display"]
    assert len(opened) > 5
    # Frozen areas hold their text without the cursor; the open one has it.
    assert "▌" not in opened[1]["text/html"] and "▌" in display.log[-1][1]["text/html"]


def test_text_mode_drops_terminal_escape_sequences():
    out = io.StringIO()
    view = LiveView(mode="text", out=out)
    stream_through(view, ["a\x1b]52;c;ZXZpbA==\x07b", "\x1b[2Jc\r\n"], Clock(), step=0.0)
    assert out.getvalue() == "a]52;c;ZXZpbA==b[2Jc\n"


def test_unknown_mode_is_refused():
    try:
        LiveView(mode="fancy")
    except ValueError as exc:
        assert "fancy" in str(exc)
    else:
        raise AssertionError("no error")


def test_text_mode_shows_warnings_after_the_streamed_text():
    out = io.StringIO()
    view = LiveView(mode="text", out=out)
    stream_through(view, ["partial ", "answer"], Clock(), step=0.0)
    reply = reply_of("partial answer")
    reply.completion.choices[0].finish_reason = "length"
    view.finish(reply)
    text = out.getvalue()
    assert text.count("partial answer") == 1
    assert "[warning]" in text and "max_tokens" in text
    assert text.rstrip().splitlines()[-1].startswith("— m")


def test_each_update_renders_only_the_paragraph_still_growing(monkeypatch):
    import nbchat.render.live as live

    rendered = []
    real = live.render_markdown
    monkeypatch.setattr(live, "render_markdown", lambda text: rendered.append(text) or real(text))
    display, clock = FakeDisplay(), Clock()
    view = LiveView(mode="live", rate=20, display=display, clock=clock)
    paragraph = "word " * 40 + "\n\n"
    # An update after every paragraph: re-rendering each area whole would be ~10x the text.
    stream_through(view, [paragraph] * 400, clock, step=0.1)
    total = len(paragraph) * 400
    assert view.updates >= 400
    assert sum(map(len, rendered)) < 2 * total


def test_the_finished_reply_reuses_the_streamed_blocks_and_equals_a_whole_rendering():
    import random

    from nbchat.render.bundles import reply_bundle
    from nbchat.render.markdown import render_markdown

    pieces = [
        "A paragraph with *emphasis*, `code` and $x^2$.", "- item", "  continued", "1. one",
        "> quote", "```py", "```", "    indented", "$$\nx^2\n$$", "\\[ y \\]", "| a | b |",
        "|---|---|", "# Heading", "---", "", "", "", "text \\", "<b>raw</b>", "  - nested",
    ]  # fmt: skip
    rng = random.Random(7)
    frozen = 0
    for _ in range(6):
        lines = [rng.choice(pieces) for _ in range(rng.randint(300, 900))]
        content = "\n".join(lines) + "\n"
        display, clock = FakeDisplay(), Clock()
        view = LiveView(mode="live", rate=20, display=display, clock=clock)
        position = 0
        while position < len(content):
            size = rng.randint(1, 40)
            clock.now += rng.choice([0.0, 0.0, 0.03, 0.2])
            view.on_chunk(chunk(content[position : position + size]), None)
            position += size
        reply = reply_of(content)
        frozen += len(view._handles) - 1
        streamed = view._streamed_html(reply)
        assert streamed == render_markdown(content)
        view.finish(reply)
        assert display.log[-len(view._handles)][1] == reply_bundle(reply)
    # Long enough that replies were split into frozen areas along the way.
    assert frozen >= 3


def test_a_reference_definition_makes_the_finished_reply_render_afresh():
    display, clock = FakeDisplay(), Clock()
    view = LiveView(mode="live", rate=20, display=display, clock=clock)
    content = "see [the docs][d]\n\n" + "word " * 2000 + "\n\n[d]: https://docs.test\n"
    stream_through(view, [content[i : i + 7] for i in range(0, len(content), 7)], clock, 0.01)
    assert view._streamed_html(reply_of(content)) is None
    view.finish(reply_of(content))
    assert '<a href="https://docs.test"' in display.log[-len(view._handles)][1]["text/html"]


# -- reasoning models ---------------------------------------------------------------------------

THOUGHT = "First, 2 plus 2.\nThat makes four."
SPELLINGS = {
    "reasoning_content": {"reasoning": THOUGHT, "reasoning_field": "reasoning_content"},
    "reasoning": {"reasoning": THOUGHT, "reasoning_field": "reasoning"},
    "think": {},
}


def reasoning_reply(spelling: str, view: LiveView, **reply):
    from nbchat.conversation.chat import Chat
    from tests.fakeserver import FakeServer

    content = "The answer is **four**."
    if spelling == "think":
        content = f"<think>\n{THOUGHT}\n</think>\n\n{content}"
    server = FakeServer(piece=3).reply(content, **SPELLINGS[spelling], **reply)
    chat = Chat("fake-model", client=server.client(), stream=True)
    sent = chat.send("2+2?", listener=view)
    view.finish(sent)
    return sent


def finished(display: FakeDisplay) -> dict:
    """The finished reply's bundle (the one with the footer)."""
    return next(b for _, b in reversed(display.log) if "nbchat-footer" in b.get("text/html", ""))


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_streamed_reasoning_shows_live_in_a_collapsed_block_above_the_answer(spelling):
    display = FakeDisplay()
    view = LiveView(mode="live", rate=0, display=display)
    reply = reasoning_reply(spelling, view)
    assert reply.reasoning == THOUGHT and reply.content == "The answer is **four**."
    pages = [bundle["text/html"] for _, bundle in display.log if "text/html" in bundle]
    thinking_live = [p for p in pages if "Thinking…" in p]
    # Shown while it streamed, before any of the answer arrived, and collapsed.
    assert thinking_live and "answer" not in thinking_live[0]
    assert all("<details open" not in p for p in pages)
    assert not any("think&gt;" in p or "<think>" in p for p in pages)
    final = finished(display)
    html = final["text/html"]
    assert html.index('class="nbchat-thinking"') < html.index("<strong>four</strong>")
    assert "That makes four." in html and "~" in html and "tokens" in html
    assert "[thinking, ~" in final["text/plain"] and "think>" not in final["text/plain"]
    # The finished reply says how it was obtained.
    meta = [m for m in display.metadata if m]
    assert meta[-1]["nbchat"]["model"] == "fake-model"
    assert meta[-1]["nbchat"]["request_hash"] == reply.prepared.key


def test_the_live_thinking_block_costs_the_same_however_long_the_thinking():
    display = FakeDisplay()
    view = LiveView(mode="live", rate=0, display=display)
    for _ in range(3000):
        view.on_chunk(
            ChatCompletionChunk.model_validate(
                {"choices": [{"index": 0, "delta": {"reasoning_content": "word "}}]}
            ),
            None,
        )
    sizes = [len(bundle["text/html"]) for _, bundle in display.log]
    assert max(sizes) < 2000
    assert "~3,000 tokens" in display.log[-1][1]["text/html"]


def test_the_server_reasoning_token_count_wins_over_counted_chunks():
    display = FakeDisplay()
    view = LiveView(mode="live", rate=0, display=display)
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": 40,
        "total_tokens": 43,
        "completion_tokens_details": {"reasoning_tokens": 31},
    }
    reasoning_reply("reasoning_content", view, usage=usage)
    final = finished(display)
    assert "31 tokens" in final["text/html"] and "~31" not in final["text/html"]


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_text_mode_shows_a_short_thinking_line_then_the_answer_once(spelling):
    out = io.StringIO()
    reasoning_reply(spelling, LiveView(mode="text", out=out))
    written = out.getvalue()
    assert written.startswith("Thinking… (~")
    assert "  That makes four." in written
    assert written.count("That makes four.") == 1
    assert written.count("The answer is **four**.") == 1
    assert "think>" not in written and "<details" not in written
    assert written.index("Thinking") < written.index("The answer")


def test_text_mode_reports_a_tool_result_once():
    from nbchat.conversation.chat import Chat
    from tests.fakeserver import FakeServer

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    server = FakeServer().reply(None, tool_calls=[{"name": "add", "arguments": {"a": 40, "b": 2}}])
    server.reply("It is 42.")
    out = io.StringIO()
    view = LiveView(mode="text", out=out)
    reply = Chat("fake-model", client=server.client(), stream=True).send(
        "add", tools=[add], listener=view
    )
    view.finish(reply)
    written = out.getvalue()
    assert written.count("add(") == 1, written
    assert "✓ add(" in written and "-> 42" in written
    assert "ran" not in written and "`" not in written and "*" not in written


def test_text_mode_wraps_replies_and_footers_at_words_to_the_width():
    from nbchat.render.wrap import cells

    prose = "Python is a high-level, general-purpose programming language. " * 4
    code = "print('" + "z" * 70 + "')"
    text = f"{prose}\n\n```python\n{code}\n```\nDone."
    out = io.StringIO()
    view = LiveView(mode="text", out=out, width=40)
    pieces = [text[i : i + 5] for i in range(0, len(text), 5)]
    stream_through(view, pieces, Clock(), step=0.0)
    reply = reply_of(text)
    reply.completion.model = "a-model-with-a-long-name"
    reply.elapsed = 1.5
    view.finish(reply)
    lines = out.getvalue().splitlines()
    assert code in lines
    assert all(cells(line) <= 40 for line in lines if line != code)
    words = " ".join(line for line in lines if line != code).split()
    assert "high-level," in words and "general-purpose" in words
    footer = lines[lines.index("Done.") + 1 :]
    assert footer[0].startswith("— a-model-with-a-long-name")
    # The footer breaks between its parts, each continued line under the dash's text.
    assert all(line.startswith("  ") for line in footer[1:])


def test_text_mode_puts_no_blank_line_before_tools_notes_or_the_footer():
    from nbchat.conversation.chat import Chat
    from tests.fakeserver import FakeServer

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    server = FakeServer().reply(None, tool_calls=[{"name": "add", "arguments": {"a": 40, "b": 2}}])
    server.reply("It is 42.", model="other-model")
    out = io.StringIO()
    view = LiveView(mode="text", out=out)
    reply = Chat("fake-model", client=server.client(), stream=True).send(
        "add", tools=[add], listener=view
    )
    view.finish(reply)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("✓ add(")
    assert lines[1] == "It is 42."
    assert lines[2].startswith("[note] other-model answered")
    assert lines[3].startswith("— other-model")
    assert "" not in lines


def test_a_spoken_replys_transcript_streams_and_is_written_once():
    import base64

    out = io.StringIO()
    view = LiveView(mode="text", out=out)
    for piece in ("Hel", "lo there"):
        view.on_chunk(
            ChatCompletionChunk.model_validate(
                {"choices": [{"index": 0, "delta": {"audio": {"transcript": piece}}}]}
            ),
            None,
        )
    completion = ChatCompletion.model_validate(
        {
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "audio": {
                            "id": "a1",
                            "data": base64.b64encode(b"\x00\x00" * 10).decode(),
                            "transcript": "Hello there",
                        },
                    },
                }
            ],
        }
    )
    view.finish(Reply(completion=completion, request={"audio": {"format": "pcm16"}}))
    text = out.getvalue()
    assert text.startswith("Hello there\n") and text.count("Hello there") == 1
    assert "[spoken]" in text


def test_a_forming_custom_tool_call_shows_its_input():
    display, clock = FakeDisplay(), Clock()
    view = LiveView(mode="live", rate=20, display=display, clock=clock)
    for delta in (
        {"index": 0, "id": "c1", "type": "custom", "custom": {"name": "sql", "input": "SEL"}},
        {"index": 0, "custom": {"input": "ECT <1>"}},
    ):
        clock.now += 1
        view.on_chunk(
            ChatCompletionChunk.model_validate(
                {"choices": [{"index": 0, "delta": {"tool_calls": [delta]}}]}
            ),
            None,
        )
    assert "sql(SELECT &lt;1&gt;" in display.log[-1][1]["text/html"]
