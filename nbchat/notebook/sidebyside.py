"""Several replies to one prompt side by side (``nbchat.compare``): one column per model in one
display area, each with tokens, latency and finish reason; model text is escaped, never run.
"""

from __future__ import annotations

import html
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from ..protocol.listener import ChatListener
from ..render.bundles import MUTED, RULE, footer_text
from .frontend import choose_mode, frontend

__all__ = ["Column", "SideBySide", "view_mode"]

_MODES = ("auto", "live", "final", "text", "off")


def view_mode(mode: str | bool = "auto") -> str:
    """``auto``: live in a Jupyter kernel, text elsewhere."""
    return choose_mode(
        mode, _MODES, what="display", auto=lambda: "live" if frontend() == "jupyter" else "text"
    )


@dataclass
class Column:
    """One model's reply as it forms."""

    label: str
    text: str = ""
    status: str = "waiting"
    footer: str = ""
    error: str = ""
    started: float = 0.0
    first_token: float | None = None
    chunks: int = 0


class _ColumnListener(ChatListener):
    def __init__(self, view: SideBySide, column: Column) -> None:
        self._view = view
        self._column = column

    def on_request(self, body: dict[str, Any]) -> None:
        self._column.status = "sent"
        self._column.started = time.perf_counter()

    def on_chunk(self, chunk: Any, stream: Any) -> None:
        if self._view.stopping.is_set():
            # Ctrl-C reached the main thread: end this stream too, keeping what arrived.
            raise KeyboardInterrupt
        column = self._column
        for choice in chunk.choices or ():
            if choice.index != 0:
                continue
            piece = choice.delta.content or choice.delta.refusal
            if piece:
                if column.first_token is None:
                    column.first_token = time.perf_counter() - column.started
                column.text += piece
                column.chunks += 1
                column.status = "streaming"
                self._view.dirty = True


class SideBySide:
    """The columns of one comparison; ``refresh()`` from the thread that owns the display."""

    def __init__(
        self,
        labels: list[str],
        *,
        mode: str | bool = "auto",
        rate: float = 10.0,
        display: Callable[..., Any] | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.mode = view_mode(mode)
        self.columns = [Column(label) for label in labels]
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.stopping = threading.Event()
        self.dirty = False
        self.updates = 0
        self._display = display
        self._out = out
        self._handle: Any = None
        self._last = float("-inf")
        self._printed: set[int] = set()

    def listener(self, position: int) -> ChatListener:
        return _ColumnListener(self, self.columns[position])

    def finish(self, position: int, reply: Any = None, error: BaseException | None = None) -> None:
        """Column ``position`` is done: its final text and footer, or its error."""
        column = self.columns[position]
        if reply is not None:
            completion = reply.completion
            if reply.content is not None:
                column.text = reply.content
            column.footer = footer_text(
                completion,
                time_to_first_token=reply.time_to_first_token,
                elapsed=reply.elapsed or None,
                counted_tokens=reply.output_chunks,
            )
            column.status = "interrupted" if reply.interrupted else "done"
        if error is not None:
            column.error = _one_line(error)
            column.status = "error"
        self.dirty = True
        if self.mode == "text":
            self._print(position)

    def refresh(self, *, force: bool = False) -> None:
        if self.mode != "live" or not (self.dirty or force):
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        self.dirty = False
        bundle = self.bundle()
        if self._handle is None:
            from IPython.display import display as ipython_display

            show = self._display or ipython_display
            self._handle = show(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        self.updates += 1

    def close(self) -> None:
        if self.mode in ("live", "final"):
            if self.mode == "final":
                self.mode = "live"
            self.refresh(force=True)
        elif self.mode == "text":
            for position in range(len(self.columns)):
                self._print(position)

    def bundle(self) -> dict[str, str]:
        cells = []
        plain = []
        for column in self.columns:
            cursor = " ▌" if column.status in ("sent", "streaming") else ""
            body = html.escape(column.text) + cursor
            below = html.escape(column.footer or _STATUS.get(column.status, ""))
            # The theme's colours, as every nbchat output has them (fixed greys read at 3:1
            # on the dark theme): the footer is the text colour, faded as reply footers are.
            error = (
                f"<div style='border-left:3px solid {_ERROR};padding-left:0.4em'>"
                f"{html.escape(column.error)}</div>"
                if column.error
                else ""
            )
            cells.append(
                f"<div style='flex:1 1 0;min-width:12em;border:1px solid {RULE};"
                "border-radius:4px;padding:0.5em'>"
                f"<div style='font-weight:bold;margin-bottom:0.3em'>{html.escape(column.label)}"
                "</div>"
                f"<div style='white-space:pre-wrap;word-wrap:break-word'>{body}</div>{error}"
                f"<div class='nbchat-footer' style='{MUTED};margin-top:0.4em'>{below}</div>"
                "</div>"
            )
            plain.append(_plain_block(column))
        return {
            "text/html": "<div style='display:flex;gap:0.75em;align-items:flex-start;"
            "flex-wrap:wrap'>" + "".join(cells) + "</div>",
            "text/plain": "\n\n".join(plain),
        }

    def _print(self, position: int) -> None:
        column = self.columns[position]
        if position in self._printed or column.status in ("waiting", "sent", "streaming"):
            return
        self._printed.add(position)
        out = self._out or sys.stdout
        out.write(_plain_block(column) + "\n\n")
        out.flush()


_ERROR = "var(--jp-error-color1, #d32f2f)"

_STATUS = {
    "waiting": "waiting…",
    "sent": "waiting for the first token…",
    "streaming": "",
    "interrupted": "interrupted",
}


def _plain_block(column: Column) -> str:
    lines = [f"── {column.label} ──", column.text]
    if column.error:
        lines.append(column.error)
    if column.footer:
        lines.append(column.footer)
    elif column.status == "interrupted":
        lines.append("(interrupted)")
    return "\n".join(line for line in lines if line)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
