"""The one renderer for text that a model or a server wrote: CommonMark in, inert HTML out.

Raw HTML shows as text, links keep only http/https/mailto, images never load, code shows exactly;
our own chrome escapes what it interpolates with :func:`escape` and builds code with
:func:`code_block`.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from itertools import pairwise

from . import commonmark
from .math import tex_to_mathml

__all__ = [
    "allowed_url",
    "code_block",
    "escape",
    "html_bundle",
    "inline_code",
    "markdown_bundle",
    "math_html",
    "output_html",
    "render_inline",
    "render_markdown",
    "render_settled",
    "render_split",
    "settled_length",
    "terminal_text",
    "thumbnail",
]

# Link targets that may stay links. Everything else (javascript:, vbscript:, data:, file:,
# relative paths that would open files of the Jupyter server) is shown as plain text.
_SCHEMES = ("http:", "https:", "mailto:")
# nbchat's own image thumbnails are the only images ever shown, always inline base64 data.
_THUMBNAIL = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}")


def escape(value: object) -> str:
    """Any value as HTML text, quotes included, safe in element content and attribute values."""
    return html.escape(str(value), quote=True)


def allowed_url(url: str) -> bool:
    """True for an absolute http, https or mailto URL."""
    lowered = url.strip().lower()
    return lowered.startswith(_SCHEMES) and len(lowered) > len(lowered.split(":", 1)[0]) + 1


def code_block(text: str, language: str | None = None) -> str:
    """Text shown exactly, in a ``<pre>`` block (for JSON, arguments, tool results)."""
    cls = f' class="language-{escape(language)}"' if language else ""
    # The frontends style inline <code> with a background of its own: not inside our block.
    code = f'<code{cls} style="background:none;padding:0">'
    return f'<pre class="nbchat-code"{_PRE_STYLE}>{code}{escape(text)}</code></pre>'


def inline_code(text: str) -> str:
    """Text shown exactly, inline (a tool name with its arguments, an id)."""
    return f"<code>{escape(text)}</code>"


def thumbnail(src: str, *, alt: str = "image", max_height: int = 64) -> str:
    """One of nbchat's own image thumbnails (a base64 data URL); anything else is refused."""
    if not _THUMBNAIL.fullmatch(src):
        raise ValueError("a thumbnail must be a base64 data:image/png|jpeg|gif|webp URL")
    return (
        f'<img src="{src}" alt="{escape(alt)}" '
        f'style="max-height:{int(max_height)}px;margin-right:4px">'
    )


def render_markdown(text: str) -> str:
    """Markdown from outside as a safe HTML fragment (block level)."""
    if len(text) > _MEMO_CHARS:
        return _render(text)
    return _render_memo(text)


# The live view renders a short reply at its last update and the finished reply renders the
# same text again; the history and the panel re-render the same messages: remember a few.
_MEMO_CHARS = 100_000


@lru_cache(maxsize=32)
def _render_memo(text: str) -> str:
    return _render(text)


def _render(text: str) -> str:
    return commonmark.render(text, _policy())


@lru_cache(maxsize=1)
def _policy() -> commonmark.Policy:
    return commonmark.Policy(allowed_url, code_block, _math, _math_inline_display)


def settled_length(text: str) -> int:
    """How much of ``text`` is settled: whole top-level blocks that nothing appended can change.

    ``render_markdown(text)`` equals ``render_markdown(text[:n]) + render_markdown(text[n:])``
    for ``n = settled_length(text)``, and stays so however the text goes on, unless a reference
    definition (``[x]: url``) appears, which applies to the whole text: none is looked for then.
    The cut falls after a blank line, before a complete line that starts a new top-level block,
    as the parser sees them. 0 if there is none.
    """
    return render_settled(text)[0]


def render_settled(text: str) -> tuple[int, str]:
    """``(n, html)``: ``n = settled_length(text)`` and ``html = render_markdown(text[:n])``,
    from one parse of ``text``."""
    n, settled, _ = render_split(text)
    return n, settled


def render_split(text: str) -> tuple[int, str, str]:
    """``(n, settled, rest)``: ``n = settled_length(text)``, ``settled =
    render_markdown(text[:n])`` and ``rest = render_markdown(text[n:])``, from one parse."""
    if "\r" in text or "\0" in text or "]:" in text:
        return 0, "", render_markdown(text)
    rendered = commonmark.render_blocks(text, _policy())
    complete = text.rfind("\n") + 1  # the lines before this are whole
    cut, settled = 0, None
    for before, after in pairwise(rendered.blocks):
        line = text.rfind("\n", 0, after.start) + 1  # where the next block's first line starts
        if line >= complete:
            break  # that line may still be arriving
        blank = text.rfind("\n", 0, line - 1) + 1
        if before.end <= line and not text[blank : line - 1].strip(" \t"):
            cut, settled = line, after
    if settled is None:
        return 0, "", rendered.html
    return cut, rendered.before(settled), rendered.after(settled)


def render_inline(text: str) -> str:
    """Markdown from outside as a safe inline HTML fragment (no paragraphs or blocks): one
    paragraph's content, or the text itself when it would make other blocks."""
    rendered = render_markdown(text)
    inner = rendered.removeprefix("<p>").removesuffix("</p>\n")
    if rendered.startswith("<p>") and "<p>" not in inner and "</p>" not in inner:
        return inner
    return escape(text)


def markdown_bundle(
    text: str, *, plain: str | None = None, before: str = "", after: str = ""
) -> dict[str, str]:
    """A display bundle of outside Markdown: our HTML (``before``/``after`` are our own chrome,
    already escaped) and the text itself as ``text/plain``."""
    body = f"{before}{render_markdown(text)}{after}"
    return html_bundle(body, text if plain is None else plain)


def html_bundle(body: str, plain: str) -> dict[str, str]:
    """``text/html`` built by nbchat (see :func:`output_html`) and ``text/plain``."""
    return {"text/html": output_html(body), "text/plain": plain}


def output_html(body: str) -> str:
    """Our HTML in the one container every nbchat output uses.

    Its classes tell MathJax (JupyterLab's ``mathjax_ignore``, nbconvert's MathJax 2
    ``tex2jax_ignore``) to leave the text alone: math is already MathML, and a ``$`` in a
    reply or a token is text, not TeX.
    """
    return f'<div class="nbchat-output tex2jax_ignore mathjax_ignore">{body}</div>'


def terminal_text(text: str) -> str:
    """Outside text for a terminal: control characters (escape sequences, carriage returns,
    C1 controls) removed, so a reply cannot move the cursor, retitle the window or write to
    the clipboard; newlines and tabs stay."""
    return text.replace("\r\n", "\n").translate(_CONTROLS)


_CONTROLS = dict.fromkeys(
    [c for c in range(0x20) if c not in (0x09, 0x0A)] + [0x7F, *range(0x80, 0xA0)]
)


_PRE_STYLE = (
    ' style="white-space:pre-wrap;word-break:break-word;padding:0.4em 0.6em;'
    "background:var(--jp-layout-color2, rgba(127,127,127,0.1));"
    'color:var(--jp-content-font-color1, inherit)"'
)


# ---------------------------------------------------------------------------------------------
# Math


def _math(tex: str, display: bool) -> str:
    return math_html(tex, display=display)


# A wide formula scrolls sideways; overflow-x alone would make overflow-y scroll too, and
# MathML's box is often a pixel taller than its line.
_MATH_BOX = "overflow-x:auto;overflow-y:hidden;padding:0.15em 0"


def _math_inline_display(tex: str) -> str:
    # $$…$$ inside a paragraph: display math, in a <span> since a <div> cannot be in a <p>.
    body = tex_to_mathml(tex, display=True) or f"<code>{escape(tex)}</code>"
    return f'<span class="nbchat-math" style="display:block;{_MATH_BOX}">{body}</span>'


def math_html(tex: str, *, display: bool = False) -> str:
    """TeX as MathML the browser typesets; TeX it cannot read is shown as its source."""
    mathml = tex_to_mathml(tex, display=display)
    if display:
        body = mathml or f"<code>{escape(tex.strip())}</code>"
        return f'<div class="nbchat-math" style="margin:0.5em 0;{_MATH_BOX}">{body}</div>\n'
    return mathml or f"<code>{escape(tex)}</code>"
