"""A reply's ``url_citation`` annotations as numbered sources: the list (``reply.citations``)
and the reply's Markdown with a numbered link after each passage cited.

The numbers follow the sources' first appearance; a source cited twice keeps its number. The
links are Markdown for the one renderer, whose URL policy decides what stays a link (a
``javascript:`` or relative URL is shown as text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

__all__ = ["Citation", "citations_of", "cited_markdown", "cited_text"]


@dataclass(frozen=True)
class Citation:
    """One web source a reply cites: ``text`` is the passage (``start``…``end`` of the
    content) it backs; ``number`` its place in the list of sources."""

    number: int
    url: str
    title: str
    start: int | None
    end: int | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "url": self.url,
            "title": self.title,
            "start": self.start,
            "end": self.end,
            "text": self.text,
        }


def citations_of(message: Any) -> list[Citation]:
    """The url citations of a reply's message, in the order of the passages they back."""
    content = getattr(message, "content", None) or ""
    numbers: dict[str, int] = {}
    found: list[Citation] = []
    for note in getattr(message, "annotations", None) or ():
        citation = getattr(note, "url_citation", None)
        url = getattr(citation, "url", None)
        if getattr(note, "type", None) != "url_citation" or not isinstance(url, str):
            continue
        number = numbers.setdefault(url, len(numbers) + 1)
        start = getattr(citation, "start_index", None)
        end = getattr(citation, "end_index", None)
        text = content[start:end] if _in_range(start, end, len(content)) else ""
        title = getattr(citation, "title", None) or url
        found.append(Citation(number, url, title, start, end, text))
    return found


def _in_range(start: int | None, end: int | None, size: int) -> bool:
    return start is not None and end is not None and 0 <= start <= end <= size


def cited_markdown(content: str, citations: list[Citation]) -> str:
    """``content`` with ``[n]`` linked to its source after each passage cited (at the end of
    the passage; after the text when a citation's place is unknown)."""
    return _marked(content, citations, _link)


def cited_text(content: str, citations: list[Citation]) -> str:
    """``content`` with `` [n]`` after each passage cited, as plain text."""
    return _marked(content, citations, lambda number, url: f" [{number}]")


def _marked(content: str, citations: list[Citation], mark: Any) -> str:
    marks: dict[int, list[int]] = {}
    for citation in citations:
        end = citation.end
        at = end if _in_range(citation.start, end, len(content)) and end is not None else None
        place = len(content) if at is None else at
        if citation.number not in marks.get(place, []):
            marks.setdefault(place, []).append(citation.number)
    by_number = {citation.number: citation.url for citation in citations}
    pieces: list[str] = []
    last = 0
    for place in sorted(marks):
        pieces.append(content[last:place])
        pieces.append("".join(mark(n, by_number[n]) for n in marks[place]))
        last = place
    pieces.append(content[last:])
    return "".join(pieces)


def _link(number: int, url: str) -> str:
    # The destination is percent-encoded where Markdown would end it or read it otherwise
    # (spaces, brackets, parentheses, angle brackets, backslashes): a URL cannot break out of
    # its link. What stays a link is the renderer's decision.
    target = quote(url, safe=":/?#@!$&'*+,;=%~-._")
    # The brackets as character references: "\\[" would open display math, and a bare "[1]"
    # inside the link could be read as a reference of the model's own.
    return f" [&#91;{number}&#93;]({target})"
