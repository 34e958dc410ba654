"""Where fenced code blocks open and close in Markdown, as CommonMark's fence rules say.

Prompt interpolation skips fenced code; the live view splits long replies outside fences.
"""

from __future__ import annotations

import re

__all__ = ["FENCE", "closes_fence", "is_inside_fence"]

FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")


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
