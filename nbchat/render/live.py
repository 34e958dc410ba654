"""The live output of a streaming reply: one display area updated in place, coalesced.

Updates are limited to a rate (20 a second by default). Long replies are split into frozen
blocks so that each update re-sends only the tail, and tool calls that form are tracked by their
last characters only: total rendering work grows linearly. Everything shown goes through the
one renderer (markdown.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..convert.fences import is_inside_fence
from ..protocol.listener import ChatListener
from .bundles import reply_bundle
from .markdown import escape, html_bundle, inline_code, render_markdown, terminal_text

__all__ = ["LiveView"]

# Past this many characters the live block is frozen at the next paragraph break.
BLOCK_CHARS = 4000
# Inside a long code fence there may be no paragraph break: freeze at a newline past this.
HARD_BLOCK_CHARS = 16000
# How much of a forming tool call's arguments the live view shows: the last characters.
TOOL_TAIL_CHARS = 80


class _Preview:
    """One display area's text rendered as it grows: finished paragraphs are rendered once.

    A preview only: paragraphs are rendered apart (a loose list may show as several lists);
    the finished reply is rendered whole.
    """

    __slots__ = ("done", "done_chars")

    def __init__(self) -> None:
        self.done: list[str] = []
        self.done_chars = 0

    def html(self, text: str) -> str:
        cut = text.rfind("\n\n", self.done_chars)
        # Past a blank line outside a code fence, the text before it will not change.
        if cut >= self.done_chars and not is_inside_fence(text[self.done_chars : cut]):
            self.done.append(render_markdown(text[self.done_chars : cut + 2]))
            self.done_chars = cut + 2
        return "".join(self.done) + render_markdown(text[self.done_chars :])


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
            f'<div class="nbchat-tool-forming">🔧 {inline_code(f"{self.name}({shown}")}{size}</div>'
        )

    def text(self) -> str:
        shown = self.tail if self.chars <= TOOL_TAIL_CHARS else "…" + self.tail[-TOOL_TAIL_CHARS:]
        return f"🔧 {self.name}({shown}"


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
    ) -> None:
        if mode not in ("live", "final", "text"):
            raise ValueError(f"display mode must be live, final or text, not {mode!r}")
        self.mode = mode
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._display = display
        self._clock = clock
        self._out = out
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
        # Display areas frozen since the last update, not shown in full yet: (text, preview).
        self._frozen: list[tuple[str, _Preview]] = []
        self._preview = _Preview()

    # -- listener hooks -----------------------------------------------------------------------

    def on_chunk(self, chunk: Any, stream: Any) -> None:
        for choice in chunk.choices or ():
            if choice.index != 0:
                continue
            delta = choice.delta
            text = delta.content or delta.refusal
            if delta.tool_calls:
                self._track_tools(delta.tool_calls)
                self._dirty = True
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
        if self.mode == "live" and self._dirty:
            self._update()

    def on_tool_results(self, results: list[Any]) -> None:
        lines = []
        for result in results:
            mark = "✅" if getattr(result, "ok", True) else "❌"
            lines.append(f"{mark} {result.name} ran")
        status = " · ".join(lines)
        self._status = (f'<div class="nbchat-tool-status">{escape(status)}</div>', status)
        self._forming, self._forming_by_id, self._renumbered = {}, {}, {}
        self._forming_changed = False
        if self.mode == "text":
            self._write("\n" + status + "\n")
            return
        # A new round starts a fresh block for its text.
        self._block, self._block_chars = [], 0
        self._preview = _Preview()
        self._dirty = True
        if self.mode == "live":
            self._update()

    def finish(self, reply: Any) -> None:
        """Replace the live area with the finished reply."""
        bundle = reply_bundle(reply)
        if self.mode == "text":
            plain = bundle["text/plain"]
            if self._wrote_text:
                # The text is on the screen already: add what follows it (tool calls,
                # warnings, notes, the footer).
                self._write("\n")
                if reply.content:
                    plain = plain.replace(reply.content, "", 1).strip("\n")
            self._write(plain + "\n")
            return
        if not self._handles:
            self._show(bundle)
            return
        self._handles[0].update(bundle, raw=True)
        for handle in self._handles[1:]:
            handle.update({"text/plain": ""}, raw=True)
        self.updates += 1

    # -- internals ----------------------------------------------------------------------------

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
            function = delta.function
            if function is not None:
                if function.name and function.name != call.name:
                    call.name += function.name
                if function.arguments:
                    call.add(function.arguments)
        self._forming_changed = True

    def _forming_status(self) -> tuple[str, str]:
        calls = [self._forming[i] for i in sorted(self._forming)]
        return "".join(c.html() for c in calls), "\n\n".join(c.text() for c in calls)

    def _maybe_freeze(self, text: str) -> None:
        if "\n" not in text and self._block_chars - len(text) > BLOCK_CHARS:
            # No new place to cut since the last try.
            return
        joined = "".join(self._block)
        cut = joined.rfind("\n\n")
        if cut > 0 and not is_inside_fence(joined[:cut]):
            cut += 2
        elif self._block_chars >= HARD_BLOCK_CHARS and joined.rfind("\n") > 0:
            cut = joined.rfind("\n") + 1
        else:
            self._block = [joined]
            return
        head, tail = joined[:cut], joined[cut:]
        # The frozen text keeps its display area, rendered at the next update (a burst of text
        # that ends before then is rendered only once, in the finished reply); the rest
        # continues in a new area.
        self._frozen.append((head, self._preview))
        self._preview = _Preview()
        self._block = [tail] if tail else []
        self._block_chars = len(tail)

    def _update(self) -> None:
        self._dirty = False
        for head, preview in self._frozen:
            self._put(html_bundle(preview.html(head), head))
            self._open_new_area = True
        self._frozen.clear()
        text = "".join(self._block)
        if len(self._block) > 1:
            self._block = [text]
        if self._forming_changed:
            self._forming_changed = False
            self._status = self._forming_status()
        status_html, status_text = self._status
        # The cursor is our own chrome, after the rendered text.
        body = self._preview.html(text) + '<span class="nbchat-cursor">▌</span>' + status_html
        self._put(html_bundle(body, text + (f"\n\n{status_text}" if status_text else "")))

    def _put(self, bundle: dict[str, str]) -> None:
        """Update the open display area, or open a new one."""
        if not self._handles or self._open_new_area:
            self._open_new_area = False
            self._handles.append(self._show(bundle))
        else:
            self._handles[-1].update(bundle, raw=True)
        self.updates += 1

    def _show(self, bundle: dict[str, str]) -> Any:
        if self._display is not None:
            return self._display(bundle, raw=True, display_id=True)
        from IPython.display import display

        return display(bundle, raw=True, display_id=True)

    def _write(self, text: str) -> None:
        out = self._out or sys.stdout
        # A terminal obeys escape sequences: a reply must not retitle it or set its clipboard.
        out.write(terminal_text(text))
        out.flush()
        self._wrote_text = True
