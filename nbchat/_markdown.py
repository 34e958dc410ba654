"""Model-written Markdown made safe to show: no remote images fetched, no raw HTML run.

Images become links and ``<`` outside code becomes ``&lt;``; code spans and fences are untouched.
"""

from __future__ import annotations

import re

__all__ = ["FENCE", "closes_fence", "is_inside_fence", "sanitize_markdown"]

FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
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


def is_inside_fence(text: str) -> bool:
    """True when ``text`` ends inside an open code fence."""
    fence: str | None = None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is not None:
            if closes_fence(match, line, fence):
                fence = None
        elif match:
            fence = match.group(1)
    return fence is not None


def closes_fence(match: re.Match[str] | None, line: str, fence: str) -> bool:
    """True when ``line`` (with ``match``, FENCE matched on it) closes the open ``fence``."""
    return (
        match is not None
        and match.group(1)[0] == fence[0]
        and len(match.group(1)) >= len(fence)
        and not line.strip().strip(fence[0])
    )


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
