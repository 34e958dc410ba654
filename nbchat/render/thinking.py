"""A reasoning model's thinking as it streams and as it is shown: a collapsed "Thinking" block.

``ThinkSplitter`` parts a streamed content into thinking and answer at a leading ``<think>``
block, piece by piece in bounded work; the block's HTML and plain text are built here.
"""

from __future__ import annotations

import re
from typing import Any

from .markdown import escape, render_markdown

__all__ = [
    "ThinkSplitter",
    "last_lines",
    "reasoning_tokens",
    "thinking_html",
    "thinking_text",
    "token_count",
]

_OPEN = "<think>"
_CLOSE = "</think>"
# What follows the closing tag and is not part of the answer (as convert/reasoning.py has it).
_AFTER_CLOSE = re.compile(r"\A[ \t]*\n?")
# The live block shows the last characters of the thinking only: each update costs the same.
LIVE_TAIL_CHARS = 600
# Text mode and text/plain: the last few lines, each shortened.
TEXT_LINES = 3
TEXT_LINE_CHARS = 100
_MUTED = "font-size:0.85em;opacity:0.75"


class ThinkSplitter:
    """Feed content pieces; get back ``(thinking, answer)`` pieces, as ``split_think`` would
    part the whole. Holds back at most a few characters while a tag may be forming."""

    __slots__ = ("_held", "_state")

    def __init__(self) -> None:
        # start: a leading <think> may still come; think: inside the block; after: just past
        # it, leading blank space dropped; answer: everything else is answer.
        self._state = "start"
        self._held = ""

    @property
    def thinking(self) -> bool:
        return self._state == "think"

    @property
    def answering(self) -> bool:
        """Past any thinking block, with nothing held back: the text is all answer now."""
        return self._state == "answer" and not self._held

    def feed(self, piece: str) -> tuple[str, str]:
        text = self._held + piece
        self._held = ""
        if self._state == "start":
            head = text.lstrip()
            if len(head) < len(_OPEN) and _OPEN.startswith(head.lower()):
                self._held = text
                return "", ""
            if not head.lower().startswith(_OPEN):
                self._state = "answer"
                return "", text
            self._state = "think"
            text = head[len(_OPEN) :]
        if self._state == "think":
            at = text.lower().find(_CLOSE)
            if at < 0:
                # Keep back what could be the start of the closing tag.
                keep = len(_CLOSE) - 1
                self._held = text[-keep:] if len(text) > keep else text
                return text[:-keep] if len(text) > keep else "", ""
            self._state = "after"
            thought, text = text[:at], text[at + len(_CLOSE) :]
            _, answer = self._after(text)
            return thought, answer
        if self._state == "after":
            return self._after(text)
        return "", text

    def flush(self) -> tuple[str, str]:
        """At the end of the stream: what was held back (an unclosed block is all thinking)."""
        held, self._held = self._held, ""
        if self._state == "think":
            return held, ""
        if self._state == "start":
            self._state = "answer"
            return "", held
        return "", ""

    def _after(self, text: str) -> tuple[str, str]:
        if not text.strip(" \t\n"):
            self._held = text
            return "", ""
        self._state = "answer"
        return "", _AFTER_CLOSE.sub("", text, count=1).lstrip("\n")


def reasoning_tokens(completion: Any, counted: int = 0) -> tuple[int, bool]:
    """``(tokens, exact)``: the server's ``reasoning_tokens`` if it sent them, else ``counted``."""
    usage = getattr(completion, "usage", None)
    details = getattr(usage, "completion_tokens_details", None)
    reported = getattr(details, "reasoning_tokens", None)
    if reported:
        return int(reported), True
    return counted, False


def token_count(tokens: int, exact: bool = False) -> str:
    """ "~12 tokens" (counted chunks) or "12 tokens" (the server's figure); "" for none."""
    if not tokens:
        return ""
    return f"{'' if exact else '~'}{tokens:,} token{'' if tokens == 1 else 's'}"


def last_lines(text: str) -> list[str]:
    """The last few non-blank lines of the thinking, each shortened: what text mode shows."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    shown = lines[-TEXT_LINES:]
    return [
        line if len(line) <= TEXT_LINE_CHARS else line[: TEXT_LINE_CHARS - 1] + "…"
        for line in shown
    ]


def thinking_html(
    text: str,
    tokens: int = 0,
    *,
    exact: bool = False,
    partial: bool = False,
    ongoing: bool = False,
) -> str:
    """The collapsed block. ``partial``: ``text`` is the last characters only (the live view);
    ``ongoing``: the model is still thinking."""
    count = token_count(tokens, exact)
    label = "Thinking…" if ongoing else "Thinking"
    summary = label + (f' <span style="{_MUTED}">{escape(count)}</span>' if count else "")
    if partial:
        shown = text if len(text) <= LIVE_TAIL_CHARS else "…" + text[-LIVE_TAIL_CHARS:]
        # A tail cut anywhere is not Markdown any more: shown as escaped text.
        body = f'<div style="white-space:pre-wrap;{_MUTED}">{escape(shown)}</div>'
    else:
        body = f'<div style="{_MUTED}">{render_markdown(text)}</div>'
    return (
        f'<details class="nbchat-thinking" style="margin:0.2em 0 0.4em">'
        f"<summary>{summary}</summary>{body}</details>"
    )


def thinking_text(text: str, tokens: int = 0, *, exact: bool = False) -> str:
    """A short plain form: a heading line and the last few lines of the thinking."""
    count = token_count(tokens, exact)
    head = "[thinking" + (f", {count}" if count else "") + "]"
    return "\n".join([head, *(f"  {line}" for line in last_lines(text))])
