"""Model-written Markdown made safe to show: no remote images fetched, no raw HTML run.

Images become links and ``<`` outside code becomes ``&lt;``; code spans and fences are untouched.
"""

from __future__ import annotations

import re

from ..convert.fences import FENCE, closes_fence

__all__ = ["sanitize_markdown"]
_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")
_IMAGE = re.compile(r"!\[")


def sanitize_markdown(text: str) -> str:
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        match = FENCE.match(line)
        if fence is not None:
            out.append(line)
            if closes_fence(match, line, fence):
                fence = None
            continue
        if match:
            fence = match.group(1)
            out.append(line)
            continue
        out.append(_sanitize_line(line))
    return "".join(out)


def _sanitize_line(line: str) -> str:
    if "<" not in line and "![" not in line:
        return line
    pieces: list[str] = []
    last = 0
    for span in _CODE_SPAN.finditer(line):
        pieces.append(_sanitize_prose(line[last : span.start()]))
        pieces.append(span.group(0))
        last = span.end()
    pieces.append(_sanitize_prose(line[last:]))
    return "".join(pieces)


def _sanitize_prose(text: str) -> str:
    return _IMAGE.sub("[🖼 ", text.replace("<", "&lt;"))
