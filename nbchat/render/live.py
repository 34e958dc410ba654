"""The live output of a streaming reply: one display area updated in place, coalesced.

Updates are limited to a rate (20 a second by default). Long replies are split into frozen
blocks so that each update re-sends only the tail: total rendering work grows linearly.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..convert.fences import is_inside_fence
from ..protocol.listener import ChatListener
from .bundles import reply_bundle
from .markdown import sanitize_markdown

__all__ = ["LiveView"]

# Past this many characters the live block is frozen at the next paragraph break.
BLOCK_CHARS = 4000
# Inside a long code fence there may be no paragraph break: freeze at a newline past this.
HARD_BLOCK_CHARS = 16000


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
        self._status = ""
        self._wrote_text = False
        self._open_new_area = False

    # -- listener hooks -----------------------------------------------------------------------

    def on_chunk(self, chunk: Any, stream: Any) -> None:
        for choice in chunk.choices or ():
            if choice.index != 0:
                continue
            delta = choice.delta
            text = delta.content or delta.refusal
            if delta.tool_calls:
                self._status = self._forming_tools(stream)
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
        self._status = " · ".join(lines)
        if self.mode == "text":
            self._write("\n" + self._status + "\n")
            return
        # A new round starts a fresh block for its text.
        self._block, self._block_chars = [], 0
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

    def _forming_tools(self, stream: Any) -> str:
        completion = stream.completion
        calls = completion.choices[0].message.tool_calls if completion.choices else None
        shown = [
            f"🔧 {call.function.name}({_tail(call.function.arguments, 80)}" for call in calls or ()
        ]
        return "\n\n".join(shown)

    def _maybe_freeze(self, text: str) -> None:
        joined = "".join(self._block)
        cut = joined.rfind("\n\n")
        if cut <= 0 or is_inside_fence(joined[:cut]):
            if self._block_chars < HARD_BLOCK_CHARS:
                return
            cut = joined.rfind("\n")
            if cut <= 0:
                return
        head, tail = joined[: cut + 1], joined[cut + 1 :]
        self._block = [head]
        self._update()
        # The frozen block keeps its display area; the rest continues in a new one.
        self._open_new_area = True
        self._block = [tail] if tail else []
        self._block_chars = len(tail)

    def _update(self) -> None:
        self._dirty = False
        text = "".join(self._block)
        if len(self._block) > 1:
            self._block = [text]
        status = f"\n\n{self._status}" if self._status else ""
        bundle = {
            "text/markdown": sanitize_markdown(text) + status + " ▌",
            "text/plain": text + status,
        }
        if not self._handles or self._open_new_area:
            self._open_new_area = False
            self._handles.append(self._show(bundle))
        else:
            self._handles[-1].update(bundle, raw=True)
        self.updates += 1

    def _show(self, bundle: dict[str, str]) -> Any:
        display = self._display
        if display is None:
            from IPython.display import display as ipython_display

            display = ipython_display
        return display(bundle, raw=True, display_id=True)

    def _write(self, text: str) -> None:
        out = self._out or sys.stdout
        out.write(text)
        out.flush()
        self._wrote_text = True


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]
