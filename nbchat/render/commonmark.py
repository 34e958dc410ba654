"""CommonMark (with GitHub tables and strikethrough, and math) as HTML that we write ourselves.

pulldown-cmark (through pyromark) parses; it is a Rust CommonMark parser that gives the
document as a flat stream of events with their source ranges, about fifty times faster than a
parser in Python. Every event becomes HTML here, so nothing a model writes reaches the page
as markup: raw HTML is text, links and images follow :func:`markdown.allowed_url`'s policy (a
refused one shows the source the model wrote), images never load, and math becomes MathML.

Math: ``$…$`` and ``$$…$$`` as pulldown-cmark reads them (no space just inside the dollars,
so "$5 and $6" stays money), but not when a digit follows the closing one ("$5-$10"); and
``\\(…\\)`` and ``\\[…\\]``, which CommonMark reads as escaped brackets: pairs of them inside
one block are found from the source ranges and parsed again as opaque placeholders.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pyromark

__all__ = ["OPTIONS", "Block", "Policy", "Rendered", "render", "render_blocks"]

OPTIONS = (
    pyromark.Options.ENABLE_TABLES
    | pyromark.Options.ENABLE_STRIKETHROUGH
    | pyromark.Options.ENABLE_MATH
)

# A placeholder for one \(…\) or \[…\]: private-use characters around its number. A text that
# already holds either character gets no bracket math (its brackets stay brackets).
_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
# Blocks whose inline content is one unit: a bracket pair must open and close inside one.
_LEAVES = frozenset({"Paragraph", "Heading", "TableCell", "Item", "CodeBlock", "HtmlBlock"})
# Characters a URL keeps as they are (markdown-it's and mdurl's set, plus an existing %XX).
_URL_SAFE = ";/?:@&=+$,-_.!~*'()#%"

# An event (a str, or a dict of one key) and its byte range {start, end}.
Event = tuple[Any, Any]


@dataclass(frozen=True, slots=True)
class Policy:
    """What the page may show: ``allowed(url)`` for link and image targets, ``code(text,
    language)`` for code blocks, ``math(tex, display)``, and ``inline_display(tex)`` for display
    math inside a paragraph."""

    allowed: Callable[[str], bool]
    code: Callable[[str, str | None], str]
    math: Callable[[str, bool], str]
    inline_display: Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Block:
    """One top-level block: where its source starts and ends in the text (characters), and
    the index of its first piece of HTML in :attr:`Rendered.pieces`."""

    start: int
    end: int
    piece: int


@dataclass(frozen=True, slots=True)
class Rendered:
    """A document's HTML (in pieces) and its top-level blocks."""

    pieces: list[str]
    blocks: list[Block]

    @property
    def html(self) -> str:
        return "".join(self.pieces)

    def before(self, block: Block) -> str:
        """The HTML of the blocks before ``block``."""
        return "".join(self.pieces[: block.piece])

    def after(self, block: Block) -> str:
        """The HTML of ``block`` and the blocks after it."""
        return "".join(self.pieces[block.piece :])


def render(text: str, policy: Policy) -> str:
    """``text`` as an HTML fragment."""
    return render_blocks(text, policy).html


def render_blocks(text: str, policy: Policy) -> Rendered:
    """``text`` as HTML, with where each top-level block is in the source and in the HTML."""
    original = text = text.replace("\0", "\ufffd")  # as CommonMark asks, for security
    maths: list[tuple[str, bool, str]] = []
    if ("\\(" in text or "\\[" in text) and _OPEN not in text and _CLOSE not in text:
        text, maths = _bracket_math(text)
    writer = _Writer(text, maths, policy)
    writer.write(pyromark.events_with_range(text, options=OPTIONS))
    # Byte offsets in the text parsed -> character offsets in the text given.
    places = sorted({b for start, end, _ in writer.blocks for b in (start, end)})
    chars = _char_offsets(text, original, maths, places)
    blocks = [Block(chars[start], chars[end], piece) for start, end, piece in writer.blocks]
    return Rendered(writer.out, blocks)


def _char_offsets(
    parsed: str, original: str, maths: Sequence[tuple[str, bool, str]], places: list[int]
) -> dict[int, int]:
    """Byte offsets (sorted) in ``parsed`` as character offsets in ``original``: the same text
    but for each placeholder, which stands for its math's source."""
    if not maths and parsed.isascii():
        return {place: place for place in places}
    source = parsed.encode()
    result, chars, last = {}, 0, 0
    for place in places:
        piece = source[last:place].decode(errors="replace")
        chars += len(piece)
        if maths and _OPEN in piece:
            for match in _PLACEHOLDER.finditer(piece):
                chars += len(maths[int(match.group(1))][2]) - len(match.group(0))
        result[place] = chars
        last = place
    return result


def _bracket_math(text: str) -> tuple[str, list[tuple[str, bool, str]]]:
    """``text`` with each ``\\(…\\)`` and ``\\[…\\]`` (escaped brackets, paired inside one
    block) replaced by a placeholder, and for each: its TeX, whether it is display math, and
    its source."""
    source = text.encode()
    spans: list[tuple[int, int, bool]] = []
    opened: tuple[int, bool] | None = None
    for event, span in pyromark.events_with_range(text, options=OPTIONS, merge_text=False):
        found: Any = event
        if isinstance(found, dict) and ("Start" in found or "End" in found):
            if _tag_name(found.get("Start", found.get("End"))) in _LEAVES:
                opened = None
            continue
        if not isinstance(found, dict) or "Text" not in found:
            continue
        value, start = found["Text"], span["start"]
        # An escaped bracket: its backslash was consumed, so the text starts right after it.
        if not value or value[0] not in "()[]" or source[start - 1 : start] != b"\\":
            continue
        mark = value[0]
        if mark in "([":
            opened = (start - 1, mark == "[")
        elif opened is not None and opened[1] == (mark == "]"):
            spans.append((opened[0], start + 1, opened[1]))
            opened = None
    if not spans:
        return text, []
    pieces: list[str] = []
    maths: list[tuple[str, bool, str]] = []
    last = 0
    for start, end, display in spans:
        pieces.append(source[last:start].decode())
        original = source[start:end].decode()
        pieces.append(f"{_OPEN}{len(maths)}{_CLOSE}")
        maths.append((original[2:-2], display, original))
        last = end
    pieces.append(source[last:].decode())
    return "".join(pieces), maths


def _tag_name(tag: Any) -> str:
    return tag if isinstance(tag, str) else next(iter(tag))


class _Writer:
    """One document's events written as HTML, in the shape markdown-it gives (newlines after
    block tags), so outputs read the same as before."""

    def __init__(
        self,
        text: str,
        maths: Sequence[tuple[str, bool, str]],
        policy: Policy,
    ) -> None:
        self.source = text.encode()
        self.maths = maths
        self.allowed = policy.allowed
        self.code = policy.code
        self.math = policy.math
        self.inline_display = policy.inline_display
        self.out: list[str] = []
        # (start byte, end byte, index in out) of each top-level block
        self.blocks: list[tuple[int, int, int]] = []
        self.aligns: list[str] = []
        self.cell = 0
        self.in_head = False
        self.body_open = False
        self.code_text: list[str] | None = None
        self.language: str | None = None
        self.depth = 0

    # -- the whole document -------------------------------------------------------------------

    def write(self, events: Iterator[Event]) -> None:
        """Write every event, taken one at a time: the document is never held as a list of
        events (a long reply would make enough objects to set off the cyclic collector)."""
        for event, span in events:
            self._event(event, span, events)

    def _event(self, event: Any, span: Any, events: Iterator[Event]) -> None:
        out = self.out
        if isinstance(event, str):
            if not self.depth:
                self.blocks.append((span["start"], span["end"], len(out)))
            out.append(_BARE.get(event, ""))
            if event == "Rule":
                self._block_break()
            return
        ((kind, value),) = event.items()
        if kind == "Text":
            if self.code_text is not None:
                self.code_text.append(value)
            else:
                out.append(self._text(value))
        elif kind == "Start":
            if not self.depth:
                self.blocks.append((span["start"], span["end"], len(out)))
            self.depth += 1
            if self._start(value, span, events):  # it took the events up to its End
                self.depth -= 1
        elif kind == "End":
            self.depth -= 1
            self._end(value)
        elif kind == "Code":
            out.append(f"<code>{html.escape(value)}</code>")
        elif kind == "InlineMath":
            end = span["end"]
            if self.source[end : end + 1].isdigit():
                # "$5-$10": a price range, not math (a digit right after the close)
                out.append(self._text(self._source(span["start"], end)))
            else:
                out.append(self.math(value, False))
        elif kind == "DisplayMath":
            out.append(self.inline_display(value))
        else:  # Html, InlineHtml and anything newer: shown as the text it is
            out.append(html.escape(value if isinstance(value, str) else str(value)))

    def _text(self, value: str) -> str:
        escaped = html.escape(value)
        if self.maths and _OPEN in escaped:
            return _PLACEHOLDER.sub(self._placeholder, escaped)
        return escaped

    def _placeholder(self, match: re.Match[str]) -> str:
        tex, display, _ = self.maths[int(match.group(1))]
        return self.inline_display(tex) if display else self.math(tex, False)

    def _block_break(self) -> None:
        """A block element starts: on a line of its own (after ``<li>`` text, say)."""
        out = self.out
        if len(out) > 1 and not out[-2].endswith("\n"):
            out.insert(len(out) - 1, "\n")

    # -- start and end tags -------------------------------------------------------------------

    def _start(self, tag: Any, span: Any, events: Iterator[Event]) -> bool:
        """Write a start tag; True if its children and End were taken from ``events`` too."""
        out = self.out
        name = _tag_name(tag)
        simple = _OPEN_TAGS.get(name)
        if simple is not None:
            out.append(simple)
            if name in _BLOCKS:
                self._block_break()
            return False
        if name == "Paragraph":
            return self._paragraph(events)
        elif name == "Heading":
            out.append(f"<h{tag['Heading']['level'][1:]}>")
            self._block_break()
        elif name == "List":
            start = tag["List"]
            out.append("<ul>\n" if start is None else f"<ol{_start_attr(start)}>\n")
            self._block_break()
        elif name == "CodeBlock":
            kind = tag["CodeBlock"]
            info = kind.get("Fenced", "").strip() if isinstance(kind, dict) else ""
            self.language = info.split(maxsplit=1)[0] if info else None
            self.code_text = []
        elif name == "HtmlBlock":
            out.append("<p>")
            self._block_break()
        elif name == "Table":
            self.aligns = list(tag["Table"])
            self.body_open = False
            out.append("<table>\n")
            self._block_break()
        elif name == "TableHead":
            self.in_head, self.cell = True, 0
            out.append("<thead>\n<tr>\n")
        elif name == "TableRow":
            self.cell = 0
            out.append("<tr>\n" if self.body_open else "<tbody>\n<tr>\n")
            self.body_open = True
        elif name == "TableCell":
            cell = "th" if self.in_head else "td"
            align = self.aligns[self.cell] if self.cell < len(self.aligns) else "None"
            style = f' style="text-align:{align.lower()}"' if align != "None" else ""
            out.append(f"<{cell}{style}>")
        elif name == "Link":
            return self._link(tag["Link"], span, events)
        elif name == "Image":
            return self._image(tag["Image"], events)
        # Anything else (a newer tag): its children are written, the tag is not.
        return False

    def _end(self, tag: Any) -> None:
        out = self.out
        name = _tag_name(tag)
        simple = _CLOSE_TAGS.get(name)
        if simple is not None:
            out.append(simple)
        elif name == "Heading":
            out.append(f"</h{tag['Heading'][1:]}>\n")
        elif name == "List":
            out.append("</ol>\n" if tag["List"] else "</ul>\n")
        elif name == "CodeBlock":
            code, self.code_text = "".join(self.code_text or ()), None
            out.append(self.code(code, self.language) + "\n")
            self._block_break()
        elif name == "HtmlBlock":
            if out and out[-1].endswith("\n"):
                out[-1] = out[-1][:-1]
            out.append("</p>\n")
        elif name == "TableHead":
            self.in_head = False
            out.append("</tr>\n</thead>\n")
        elif name == "TableCell":
            out.append("</th>\n" if self.in_head else "</td>\n")
            self.cell += 1
        elif name == "Table":
            out.append("</tbody>\n</table>\n" if self.body_open else "</table>\n")

    def _paragraph(self, events: Iterator[Event]) -> bool:
        """A paragraph; one that is a display formula only is written as the formula."""
        first = next(events, None)
        second = next(events, None) if first is not None and self._display(first[0]) else None
        if second is not None and second[0] == _END_PARAGRAPH:
            assert first is not None
            out = self.out
            out.append(self.math(self._display(first[0]) or "", True))
            self._block_break()
            return True
        self.out.append("<p>")
        self._block_break()
        for taken in (first, second):
            if taken is not None:
                self._event(taken[0], taken[1], events)
        return False

    def _display(self, event: Any) -> str | None:
        """The TeX of display math that could fill a paragraph alone."""
        if not isinstance(event, dict):
            return None
        if "DisplayMath" in event:
            return str(event["DisplayMath"])
        value = event.get("Text")
        if self.maths and isinstance(value, str):
            match = _PLACEHOLDER.fullmatch(value.strip())
            if match and self.maths[int(match.group(1))][1]:
                return self.maths[int(match.group(1))][0]
        return None

    def _link(self, link: dict[str, Any], span: Any, events: Iterator[Event]) -> bool:
        url = link["dest_url"]
        if link["link_type"] == "Email":
            url = f"mailto:{url}"
        if not self.allowed(url):
            # Shown as the source the model wrote; nothing inside it becomes markup.
            _until_end(events, "Link")
            self.out.append(html.escape(self._source(span["start"], span["end"])))
            return True
        title = link["title"]
        extra = f' title="{html.escape(title)}"' if title else ""
        self.out.append(
            f'<a href="{html.escape(_normal_url(url))}"{extra} target="_blank" '
            'rel="noopener noreferrer nofollow">'
        )
        return False

    def _image(self, image: dict[str, Any], events: Iterator[Event]) -> bool:
        # Never an <img>: a remote image would be fetched as soon as the output is shown.
        alt = "".join(self._plain(event) for event in _until_end(events, "Image")) or "image"
        label = f"[image: {html.escape(alt)}]"
        url = image["dest_url"]
        if self.allowed(url):
            label = (
                f'<a href="{html.escape(_normal_url(url))}" target="_blank" '
                f'rel="noopener noreferrer nofollow">{label}</a>'
            )
        self.out.append(label)
        return True

    def _plain(self, event: Any) -> str:
        """An event inside an image description as plain text."""
        if isinstance(event, str):
            return "\n" if event in ("SoftBreak", "HardBreak") else ""
        value = event.get("Text", event.get("Code", event.get("InlineMath", "")))
        if not isinstance(value, str):
            return ""
        return _PLACEHOLDER.sub(self._original, value) if self.maths else value

    def _source(self, start: int, end: int) -> str:
        text = self.source[start:end].decode(errors="replace")
        return _PLACEHOLDER.sub(self._original, text) if self.maths else text

    def _original(self, match: re.Match[str]) -> str:
        return self.maths[int(match.group(1))][2]


def _until_end(events: Iterator[Event], name: str) -> list[Any]:
    """The events up to the End that closes a Start of ``name`` just taken (that End taken
    too, not returned)."""
    inside, depth = [], 1
    for event, _ in events:
        if isinstance(event, dict):
            if _tag_name(event.get("Start", "")) == name:
                depth += 1
            elif _tag_name(event.get("End", "")) == name:
                depth -= 1
                if not depth:
                    break
        inside.append(event)
    return inside


def _start_attr(start: int) -> str:
    return "" if start == 1 else f' start="{int(start)}"'


def _normal_url(url: str) -> str:
    return quote(url, safe=_URL_SAFE)


_END_PARAGRAPH = {"End": "Paragraph"}
_BARE = {"SoftBreak": "\n", "HardBreak": "<br />\n", "Rule": "<hr />\n"}
_OPEN_TAGS = {
    "BlockQuote": "<blockquote>\n",
    "Item": "<li>",
    "Emphasis": "<em>",
    "Strong": "<strong>",
    "Strikethrough": "<s>",
}
_BLOCKS = frozenset({"BlockQuote"})
_CLOSE_TAGS = {
    "Paragraph": "</p>\n",
    "BlockQuote": "</blockquote>\n",
    "Item": "</li>\n",
    "Emphasis": "</em>",
    "Strong": "</strong>",
    "Strikethrough": "</s>",
    "TableRow": "</tr>\n",
    "Link": "</a>",
}
