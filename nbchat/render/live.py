"""The live output of a streaming reply: one display area updated in place, coalesced.

Updates are limited to a rate (20 a second by default). Text is rendered block by block as its
blocks settle, each once, and long replies are split into frozen areas at settled blocks, so an
update re-renders and re-sends only the tail; the finished reply reuses those blocks. Tool calls
that form are followed by their last characters only. Total work grows linearly, and everything
shown goes through the one renderer (markdown.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ..convert.reasoning import REASONING_FIELDS
from ..protocol.listener import ChatListener
from .bundles import reply_bundle, reply_metadata, tool_result_text
from .markdown import (
    escape,
    html_bundle,
    inline_code,
    render_markdown,
    render_split,
    terminal_text,
)
from .thinking import LIVE_TAIL_CHARS, ThinkSplitter, last_lines, thinking_html, token_count
from .wrap import Wrapper, parts, terminal_width

__all__ = ["LiveView"]

# Past this many characters the live block is frozen at its last settled block.
BLOCK_CHARS = 4000
# Inside a long code fence nothing settles: freeze at a newline past this.
HARD_BLOCK_CHARS = 16000
# While no block settles, look again after this many more characters.
RETRY_CHARS = 512
# How much of a forming tool call's arguments the live view shows: the last characters.
TOOL_TAIL_CHARS = 80


class _Preview:
    """One display area's text rendered as it grows: each settled block is rendered once.

    ``render_split`` cuts only where rendering the pieces gives exactly the HTML of the
    whole, so the finished reply can be put together from them.
    """

    __slots__ = ("chunks", "done")

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.done = 0

    def advance(self, text: str) -> str:
        """Settle what can be settled; the HTML of the rest."""
        settled, html, rest = render_split(text[self.done :])
        if settled:
            self.chunks.append(html)
            self.done += settled
        return rest

    def html(self, text: str) -> str:
        rest = self.advance(text)
        return "".join(self.chunks) + rest


class _FormingCall:
    """A tool call as it streams in: its name, id, length and the tail of its arguments."""

    __slots__ = ("chars", "id", "name", "tail")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.tail = ""
        self.chars = 0

    def add(self, piece: str) -> None:
        self.chars += len(piece)
        tail = self.tail + piece
        # Bounded: each piece costs O(its length + the tail), never O(the whole call).
        self.tail = tail[-TOOL_TAIL_CHARS:] if len(tail) > 2 * TOOL_TAIL_CHARS else tail

    def html(self) -> str:
        shown = self.tail if self.chars <= TOOL_TAIL_CHARS else "…" + self.tail[-TOOL_TAIL_CHARS:]
        size = f' <span style="font-size:0.85em;opacity:0.75">{self.chars:,} characters</span>'
        return (
            f'<div class="nbchat-tool-forming"><span style="font-size:0.85em;opacity:0.75">tool '
            f"call</span> {inline_code(f'{self.name}({shown}')}{size}</div>"
        )

    def text(self) -> str:
        shown = self.tail if self.chars <= TOOL_TAIL_CHARS else "…" + self.tail[-TOOL_TAIL_CHARS:]
        return f"[tool call] {self.name}({shown}"


class _Thinking:
    """A round's thinking as it streams: chunks counted, only a bounded tail kept for display."""

    __slots__ = ("chars", "chunks", "closed", "pieces", "tail")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.tail = ""
        self.chars = 0
        self.chunks = 0
        # The answer (or a tool call) began: the thinking is over for this round.
        self.closed = False

    def add(self, piece: str) -> None:
        self.pieces.append(piece)
        self.chars += len(piece)
        tail = self.tail + piece
        limit = 2 * LIVE_TAIL_CHARS
        self.tail = tail[-LIVE_TAIL_CHARS:] if len(tail) > limit else tail

    def text(self) -> str:
        if len(self.pieces) > 1:
            self.pieces = ["".join(self.pieces)]
        return self.pieces[0].strip("\n") if self.pieces else ""


class LiveView(ChatListener):
    """Shows a reply as it streams. ``mode``: live (update in place), final, or text (stdout)."""

    def __init__(
        self,
        *,
        mode: str = "live",
        rate: float = 20.0,
        display: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        out: TextIO | None = None,
        width: int | None = None,
        steps: bool = False,
        interrupt: Callable[[], bool] | None = None,
    ) -> None:
        """``width``: the columns text mode wraps to; None: the terminal's, when ``out`` (or
        stdout) is one."""
        if mode not in ("live", "final", "text"):
            raise ValueError(f"display mode must be live, final or text, not {mode!r}")
        self.mode = mode
        #: Show each tool round where it happens (an agent's steps, in order with the
        #: proposals and decisions shown between them) instead of gathering them in the reply.
        self.steps = steps
        # Asked at every chunk and request: True ends the reply as Ctrl-C would (an agent
        # cell's Ctrl-C reaches the thread that streams only this way).
        self._interrupt = interrupt
        # Where the current round's first display area is, and the results shown (steps mode).
        self._round_start = 0
        self._results_shown = 0
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._display = display
        self._clock = clock
        self._out = out
        self._wrapper: Wrapper | None = None if width is None else Wrapper(width)
        self.updates = 0
        self._handles: list[Any] = []
        self._block: list[str] = []
        self._block_chars = 0
        self._last_update = float("-inf")
        self._dirty = False
        # What shows under the text: tool calls forming, then tools that ran. (html, text)
        self._status: tuple[str, str] = ("", "")
        self._forming: dict[int, _FormingCall] = {}
        self._forming_by_id: dict[str, int] = {}
        self._renumbered: dict[int, int] = {}
        self._forming_changed = False
        self._wrote_text = False
        self._open_new_area = False
        # Display areas frozen since the last update, not shown in full yet: (text, its HTML,
        # or None when it was cut where no block had settled).
        self._frozen: list[tuple[str, str | None]] = []
        self._preview = _Preview()
        self._next_try = BLOCK_CHARS
        # This round's text in frozen areas and their HTML, for the finished reply; exact while
        # every area was cut at a settled block and the text is all content.
        self._round_text: list[str] = []
        self._round_html: list[str] = []
        self._exact = True
        # A reasoning model's thinking this round, from reasoning fields or a <think> block.
        self._splitter = ThinkSplitter()
        self._thinking = _Thinking()
        # Text mode wrote these as they happened: the finished reply leaves them out.
        self._wrote_thinking = False
        self._wrote_tools = False
        # A thinking block that ended since the last update: its area is finished next update.
        self._closed_thinking: str | None = None

    # -- listener hooks -----------------------------------------------------------------------

    def on_request(self, body: dict[str, Any]) -> None:
        if self._interrupt is not None and self._interrupt():
            raise KeyboardInterrupt

    def on_chunk(self, chunk: Any, stream: Any) -> None:
        if self._interrupt is not None and self._interrupt():
            raise KeyboardInterrupt
        choices: Sequence[Any] = chunk.choices or ()
        if (
            len(choices) == 1
            and self.mode == "live"
            and self._splitter.answering
            and (self._thinking.closed or not self._thinking.chunks)
        ):
            # The common chunk, a piece of answer and nothing else: the loop below, shortened.
            delta = choices[0].delta
            text = delta.content
            if (
                text
                and choices[0].index == 0
                and not delta.refusal
                and not delta.tool_calls
                and not getattr(delta, "__pydantic_extra__", None)
            ):
                self._block.append(text)
                self._block_chars += len(text)
                self._dirty = True
                if self._block_chars > BLOCK_CHARS:
                    self._maybe_freeze(text)
                now = self._clock()
                if now - self._last_update >= self.interval:
                    self._last_update = now
                    self._update()
                return
        for choice in choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            thought = _reasoning_piece(delta)
            text = delta.refusal
            if delta.refusal:
                self._exact = False
            elif delta.content:
                inside, text = self._splitter.feed(delta.content)
                thought += inside
            elif delta.audio is not None and delta.audio.transcript:
                # A spoken reply: its transcript shows as it comes; the finished reply has
                # the player and the transcript.
                text = delta.audio.transcript
                self._exact = False
            if thought:
                self._think(thought)
            if delta.tool_calls:
                self._track_tools(delta.tool_calls)
                self._dirty = True
            if text or delta.tool_calls:
                self._end_thinking()
            if text:
                if self.mode == "text":
                    self._write(text)
                    continue
                self._block.append(text)
                self._block_chars += len(text)
                self._dirty = True
                if self._block_chars > BLOCK_CHARS and self.mode == "live":
                    self._maybe_freeze(text)
        if self.mode == "live" and self._dirty:
            now = self._clock()
            if now - self._last_update >= self.interval:
                self._last_update = now
                self._update()

    def on_completion(self, completion: Any) -> None:
        self._flush_splitter()
        if self.steps and self.mode == "live" and len(self._handles) > self._round_start:
            # The round is over: its text stays, without the cursor or the forming calls (what
            # the calls do is shown next, as it happens).
            self._end_thinking()
            text = "".join(self._block)
            self._block = [text] if text else []
            self._status, self._forming, self._forming_changed = ("", ""), {}, False
            self._put(html_bundle(self._preview.html(text), text) if text else _EMPTY)
            self._dirty = False
            return
        if self.mode == "live" and self._dirty:
            self._update()

    def on_tool_results(self, results: list[Any]) -> None:
        lines = []
        for result in results:
            mark = "✓" if getattr(result, "ok", True) else "✗"
            lines.append(f"{mark} {result.name} ran")
        status = " · ".join(lines)
        self._status = (f'<div class="nbchat-tool-status">{escape(status)}</div>', status)
        self._forming, self._forming_by_id, self._renumbered = {}, {}, {}
        self._forming_changed = False
        self._end_thinking()
        if self.mode == "text":
            # Each call with its result, once: the finished reply does not repeat them.
            self._end_line()
            self._write("\n".join(_tool_line(r) for r in results) + "\n")
            self._results_shown += len(results)
            self._wrote_tools = True
            self._new_round()
            return
        if self.steps:
            self._show_step(results)
            return
        # A new round starts a fresh block for its text.
        self._new_round()
        self._dirty = True
        if self.mode == "live":
            self._update()

    def _show_step(self, results: list[Any]) -> None:
        """Steps mode: the round's text stays where it streamed, its calls' results follow."""
        from .steps import results_bundle

        self._status = ("", "")
        if self.mode == "live" and len(self._handles) > self._round_start:
            text = "".join(self._block)
            self._block = [text] if text else []
            self._put(html_bundle(self._preview.html(text), text) if text else _EMPTY)
        self._wrote_tools = True
        self._results_shown += len(results)
        bundle = results_bundle(results, open_names=("run_python", "insert_cell"))
        self._handles.append(self._show(bundle))
        self._new_round()
        self._open_new_area = True
        self._round_start = len(self._handles)

    def finish(self, reply: Any) -> None:
        """Replace the live area with the finished reply, its metadata saying how it came."""
        self._flush_splitter()
        self._end_thinking()
        if self.steps and _ended_in_a_tool_round(reply):
            self._finish_steps(reply)
            return
        bundle = reply_bundle(
            reply,
            content_html=self._streamed_html(reply),
            reasoning=not self._wrote_thinking,
            reasoning_counted=self._thinking.chunks,
            tools=not self._wrote_tools,
        )
        metadata = reply_metadata(reply)
        if self.mode == "text":
            plain = bundle["text/plain"]
            if self._wrote_text:
                # The text is on the screen already: add what follows it (tool calls,
                # warnings, notes, the footer), on lines of their own.
                self._end_line()
                if reply.content and reply.content in plain:
                    head, _, tail = plain.partition(reply.content)
                    plain = "\n".join(p.strip("\n") for p in (head, tail) if p.strip("\n"))
                spoken = getattr(reply, "audio", None)
                if spoken is not None and spoken.transcript:
                    # A spoken reply's transcript streamed: only its mark is left to write.
                    plain = plain.replace(f"[spoken] {spoken.transcript}", "[spoken]", 1)
            # The footer breaks between its parts, not inside "15 tokens".
            lines = plain.split("\n")
            if lines[-1].startswith("— "):
                lines[-1] = parts(lines[-1])
            self._write("\n".join(lines) + "\n")
            self._flush()
            return
        first = self._round_start if self.steps else 0
        if len(self._handles) <= first:
            self._show(bundle, metadata)
            return
        self._handles[first].update(bundle, raw=True, metadata=metadata)
        for handle in self._handles[first + 1 :]:
            handle.update({"text/plain": ""}, raw=True)
        self.updates += 1

    def _finish_steps(self, reply: Any) -> None:
        """A turn that ended in a tool round: its last calls' results (if Ctrl-C cut them
        short), then the notes and footer, after everything shown so far."""
        from .steps import ended_bundle, results_bundle

        unseen = list(getattr(reply, "tool_results", ()) or ())[self._results_shown :]
        if self.mode == "text":
            lines = [_tool_line(result) for result in unseen]
            self._write("\n" + "\n".join([*lines, ended_bundle(reply)["text/plain"]]) + "\n")
            return
        if unseen:
            self._show(results_bundle(unseen, open_names=("run_python", "insert_cell")))
        self._show(ended_bundle(reply), reply_metadata(reply))
        self.updates += 1

    # -- internals ----------------------------------------------------------------------------

    def _new_round(self) -> None:
        self._block, self._block_chars = [], 0
        self._preview = _Preview()
        self._next_try = BLOCK_CHARS
        self._round_text, self._round_html = [], []
        self._exact = True
        self._splitter = ThinkSplitter()
        self._thinking = _Thinking()

    def _think(self, piece: str) -> None:
        thinking = self._thinking
        thinking.add(piece)
        thinking.chunks += 1
        if self.mode == "text":
            if thinking.chunks == 1:
                self._write_dim("Thinking… ")
            return
        self._dirty = True

    def _end_thinking(self) -> None:
        """The answer began: the thinking block is complete (text mode: its summary line)."""
        thinking = self._thinking
        if thinking.closed or not thinking.chunks:
            return
        thinking.closed = True
        if self.mode == "text":
            lines = "".join(f"  {line}\n" for line in last_lines(thinking.text()))
            self._write_dim(f"({token_count(thinking.chunks)})\n{lines}")
            self._wrote_thinking = True
        elif self.mode == "live":
            # The block keeps its own display area above the answer's.
            self._closed_thinking = thinking_html(thinking.tail, thinking.chunks, partial=True)
            self._dirty = True

    def _flush_splitter(self) -> None:
        thought, text = self._splitter.flush()
        if thought:
            self._think(thought)
        if text:
            self._end_thinking()
            if self.mode == "text":
                self._write(text)
            else:
                self._block.append(text)
                self._block_chars += len(text)
                self._dirty = True

    def _streamed_html(self, reply: Any) -> str | None:
        """The reply's content as HTML from the blocks rendered while it streamed, if they
        make exactly the whole; None to render it afresh."""
        if self.mode != "live" or not self._exact:
            return None
        completion = reply.completion
        content = reply.content
        text = "".join(self._block)
        if (
            not content
            or len(completion.choices) != 1
            or completion.choices[0].message.refusal
            # A reference definition applies to the whole text, across blocks.
            or "]:" in content
            or sum(map(len, self._round_text)) + len(text) != len(content)
            or "".join(self._round_text) + text != content
        ):
            return None
        return "".join(self._round_html) + self._preview.html(text)

    def _track_tools(self, deltas: list[Any]) -> None:
        """Follow each forming call from its deltas alone, as the accumulator numbers them.

        Reading the accumulated completion instead would join every call's whole arguments on
        every chunk: quadratic in the length of the arguments.
        """
        for delta in deltas:
            index = delta.index
            if index is None:
                # A server that omits index: one call per id; fragments without id: the last.
                if delta.id and delta.id in self._forming_by_id:
                    index = self._forming_by_id[delta.id]
                elif delta.id or not self._forming:
                    index = max(self._forming, default=-1) + 1
                else:
                    index = max(self._forming)
            else:
                index = self._renumbered.get(index, index)
                known = self._forming.get(index)
                if delta.id and known is not None and known.id and delta.id != known.id:
                    # A server that numbers every call 0: a new id at a used index is a new
                    # call, and the fragments that follow at that index belong to it.
                    new = self._forming_by_id.get(delta.id)
                    if new is None:
                        new = max(self._forming) + 1
                    self._renumbered[delta.index] = index = new
            call = self._forming.get(index)
            if call is None:
                call = self._forming[index] = _FormingCall()
            if delta.id and not call.id:
                call.id = delta.id
                self._forming_by_id[delta.id] = index
            # A function's arguments, or a custom tool's input.
            body = delta.function if delta.function is not None else delta.custom
            if body is not None:
                if body.name and body.name != call.name:
                    call.name += body.name
                piece = body.input if delta.function is None else body.arguments
                if piece:
                    call.add(piece)
        self._forming_changed = True

    def _forming_status(self) -> tuple[str, str]:
        calls = [self._forming[i] for i in sorted(self._forming)]
        return "".join(c.html() for c in calls), "\n\n".join(c.text() for c in calls)

    def _maybe_freeze(self, text: str) -> None:
        if self._block_chars < self._next_try:
            return
        self._next_try = self._block_chars + RETRY_CHARS
        joined = "".join(self._block)
        self._block = [joined]
        self._preview.advance(joined)
        cut = self._preview.done
        if cut:
            html: str | None = "".join(self._preview.chunks)
        elif self._block_chars >= HARD_BLOCK_CHARS and joined.rfind("\n") > 0:
            cut = joined.rfind("\n") + 1
            html = None
            self._exact = False
        else:
            return
        head, tail = joined[:cut], joined[cut:]
        # The frozen text keeps its display area, shown at the next update (a burst of text
        # that ends before then is shown only in the finished reply); the rest continues in a
        # new area.
        self._frozen.append((head, html))
        self._round_text.append(head)
        self._round_html.append(html or "")
        self._preview = _Preview()
        self._next_try = BLOCK_CHARS
        self._block = [tail] if tail else []
        self._block_chars = len(tail)

    def _update(self) -> None:
        self._dirty = False
        closed, self._closed_thinking = self._closed_thinking, None
        if closed is not None:
            self._put(html_bundle(closed, f"Thinking ({token_count(self._thinking.chunks)})"))
            self._open_new_area = True
        for head, html in self._frozen:
            self._put(html_bundle(render_markdown(head) if html is None else html, head))
            self._open_new_area = True
        self._frozen.clear()
        text = "".join(self._block)
        if len(self._block) > 1:
            self._block = [text]
        if self._forming_changed:
            self._forming_changed = False
            self._status = self._forming_status()
        status_html, status_text = self._status
        thinking = self._thinking
        head_html = head_text = ""
        if thinking.chunks and not thinking.closed:
            head_html = thinking_html(thinking.tail, thinking.chunks, partial=True, ongoing=True)
            head_text = f"Thinking… ({token_count(thinking.chunks)})\n\n"
        # The cursor is our own chrome, after the rendered text.
        body = (
            head_html
            + self._preview.html(text)
            + '<span class="nbchat-cursor">▌</span>'
            + status_html
        )
        plain = head_text + text + (f"\n\n{status_text}" if status_text else "")
        self._put(html_bundle(body, plain))

    def _put(self, bundle: dict[str, str]) -> None:
        """Update the open display area, or open a new one."""
        if not self._handles or self._open_new_area:
            self._open_new_area = False
            self._handles.append(self._show(bundle))
        else:
            self._handles[-1].update(bundle, raw=True)
        self.updates += 1

    def _show(self, bundle: dict[str, str], metadata: dict[str, Any] | None = None) -> Any:
        display = self._display
        if display is None:
            from IPython.display import display as ipython_display

            display = ipython_display
        if metadata:
            return display(bundle, raw=True, display_id=True, metadata=metadata)
        return display(bundle, raw=True, display_id=True)

    def _wrap(self, out: TextIO) -> Wrapper:
        if self._wrapper is None:
            self._wrapper = Wrapper(terminal_width(out))
        return self._wrapper

    def _write(self, text: str) -> None:
        out = self._out or sys.stdout
        # A terminal obeys escape sequences: a reply must not retitle it or set its clipboard.
        out.write(self._wrap(out).feed(terminal_text(text)))
        out.flush()
        self._wrote_text = True

    def _write_dim(self, text: str) -> None:
        """Our own dimmed line (thinking) around the model's text, made inert."""
        out = self._out or sys.stdout
        tty = getattr(out, "isatty", lambda: False)()
        shown = self._wrap(out).feed(terminal_text(text))
        out.write(f"\x1b[2m{shown}\x1b[0m" if tty and shown else shown)
        out.flush()

    def _end_line(self) -> None:
        """Text mode: start a new line unless the cursor is at the start of one."""
        out = self._out or sys.stdout
        wrapper = self._wrap(out)
        held = wrapper.flush()
        if held or not wrapper.at_line_start:
            out.write(held + "\n")
            wrapper.feed("\n")
            out.flush()

    def _flush(self) -> None:
        out = self._out or sys.stdout
        held = self._wrap(out).flush()
        if held:
            out.write(held)
            out.flush()


_EMPTY = {"text/plain": ""}


def _ended_in_a_tool_round(reply: Any) -> bool:
    """The last completion asked for tools: the turn was stopped, interrupted or hit the limit."""
    choices = list(getattr(reply.completion, "choices", None) or [])
    return bool(choices) and bool(choices[0].message.tool_calls)


def _reasoning_piece(delta: Any) -> str:
    """The thinking a delta carries in ``reasoning_content`` or ``reasoning``."""
    extra = getattr(delta, "__pydantic_extra__", None)
    if not extra:
        return ""
    for name in REASONING_FIELDS:
        value = extra.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _tool_line(result: Any) -> str:
    mark = "✓" if getattr(result, "ok", True) else "✗"
    return f"{mark} {tool_result_text(result).removeprefix('[tool] ')}"
