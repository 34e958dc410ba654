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
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_core.state_core import StateCore
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.texmath import texmath_plugin

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
    """True for an absolute http, https or mailto URL (after markdown-it's normalisation)."""
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
        return _parser().render(text)
    return _render_memo(text)


# The live view renders a short reply at its last update and the finished reply renders the
# same text again; the history and the panel re-render the same messages: remember a few.
_MEMO_CHARS = 100_000


@lru_cache(maxsize=32)
def _render_memo(text: str) -> str:
    return _parser().render(text)


def settled_length(text: str) -> int:
    """How much of ``text`` is settled: whole top-level blocks that nothing appended can change.

    ``render_markdown(text)`` equals ``render_markdown(text[:n]) + render_markdown(text[n:])``
    for ``n = settled_length(text)``, and stays so however the text goes on, unless a reference
    definition (``[x]: url``) appears, which applies to the whole text: check for ``]:`` before
    relying on it. The cut falls after a blank line, before a complete line that starts a new
    top-level block, as markdown-it's own block parser sees them. 0 if there is none.
    """
    return _settle(text)[0]


def render_settled(text: str) -> tuple[int, str]:
    """``(n, html)``: ``n = settled_length(text)`` and ``html = render_markdown(text[:n])``,
    from the one block parse that found the cut."""
    n, tokens, env = _settle(text)
    if not n:
        return 0, ""
    line = text.count("\n", 0, n)
    end = next(
        i for i, t in enumerate(tokens) if t.level == 0 and t.map is not None and t.map[0] >= line
    )
    head = tokens[:end]
    md = _parser()
    # The core rules after the block stage (inline parsing, text joining), as parse() runs them.
    state = StateCore(text[:n], md, env, head)
    for rule in _after_block(md):
        rule(state)
    return n, md.renderer.render(head, md.options, env)


def _settle(text: str) -> tuple[int, list[Token], dict[str, Any]]:
    env: dict[str, Any] = {}
    if "\r" in text or "\0" in text:
        # markdown-it normalises these, so its line numbers would not match ours.
        return 0, [], env
    tokens = _block_parser().parse(text, env)
    if env.get("references"):
        return 0, tokens, env
    complete = text.count("\n")  # lines 0..complete-1 end with a newline
    # A $$ or \[ that opens no math block yet may open one once its end arrives, and take in
    # the lines after it: nothing at or after it is settled.
    limit = complete
    if "$$" in text or "\\[" in text:
        covered: set[int] = set()
        for token in tokens:
            if token.map and (token.type.startswith("math_block") or token.type == "fence"):
                covered.update(range(*token.map))
        for number, line in enumerate(text.split("\n")):
            if number not in covered and _MATH_OPENER.match(line):
                limit = min(limit, number)
                break
    starts = [t.map for t in tokens if t.level == 0 and t.map is not None and t.nesting >= 0]
    settled_line = 0
    for (_, end), (start, _) in pairwise(starts):
        # A blank line between, and the next block's first line all there.
        if end < start and start <= limit and start < complete:
            settled_line = start
    if not settled_line:
        return 0, tokens, env
    offset = 0
    for _ in range(settled_line):
        offset = text.index("\n", offset) + 1
    return offset, tokens, env


@lru_cache(maxsize=1)
def _after_block(md: MarkdownIt) -> list[Any]:
    names = md.get_active_rules()["core"]
    return md.core.ruler.getRules("")[names.index("block") + 1 :]


# A line that could open display math that is not closed on the same line, inside list items
# and quotes too.
_MATH_OPENER = re.compile(r"[ \t>*+\-\d.)]*(?:\$\$(?!.*\$\$\s*$)|\\\[(?!.*\\\]\s*$))")


def render_inline(text: str) -> str:
    """Markdown from outside as a safe inline HTML fragment (no paragraphs or blocks)."""
    return _parser().renderInline(text)


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
# The parser and its render rules


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return _syntax()


@lru_cache(maxsize=1)
def _block_parser() -> MarkdownIt:
    """The same syntax without the inline stage: where the top-level blocks are, cheaply."""
    md = _syntax()
    md.disable(["inline", "text_join"])
    return md


def _syntax() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    # $…$ and $$…$$ as in JupyterLab's Markdown, but "$5 and $6" stays money; models also
    # write \(…\) and \[…\], which CommonMark would otherwise read as escaped brackets.
    md.use(dollarmath_plugin, allow_space=False, allow_digits=False, double_inline=True)
    md.use(texmath_plugin, delimiters="brackets")
    # markdown-it asks this of every link, autolink, image and reference definition before
    # making one; a refusal leaves the source as text.
    md.validateLink = allowed_url  # type: ignore[method-assign]
    rules = md.add_render_rule
    rules("link_open", _link_open)
    rules("image", _image)
    rules("math_inline", _math_inline)
    rules("math_inline_double", _math_inline_display)
    rules("math_block", _math_block)
    rules("math_block_label", _math_block)
    rules("math_block_eqno", _math_block)
    rules("fence", _fence)
    rules("code_block", _fence)
    return md


def _link_open(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    href = tokens[idx].attrGet("href") or ""
    title = tokens[idx].attrGet("title")
    extra = f' title="{escape(title)}"' if title else ""
    return f'<a href="{escape(href)}"{extra} target="_blank" rel="noopener noreferrer nofollow">'


def _image(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    # Never an <img>: a remote image would be fetched as soon as the output is shown.
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    href = token.attrGet("src") or ""
    label = f"🖼 {escape(alt)}"
    if not allowed_url(str(href)):
        return label
    return (
        f'<a href="{escape(href)}" target="_blank" rel="noopener noreferrer nofollow">{label}</a>'
    )


def _fence(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else None
    return code_block(token.content, language)


def _math_inline(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    return math_html(tokens[idx].content, display=False)


def _math_block(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    return math_html(tokens[idx].content, display=True)


def _math_inline_display(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    # $$…$$ inside a paragraph: display math, in a <span> since a <div> cannot be in a <p>.
    tex = tokens[idx].content
    body = tex_to_mathml(tex, display=True) or f"<code>{escape(tex)}</code>"
    return f'<span class="nbchat-math" style="display:block;overflow-x:auto">{body}</span>'


def math_html(tex: str, *, display: bool = False) -> str:
    """TeX as MathML the browser typesets; TeX it cannot read is shown as its source."""
    mathml = tex_to_mathml(tex, display=display)
    if display:
        body = mathml or f"<code>{escape(tex.strip())}</code>"
        return f'<div class="nbchat-math" style="margin:0.5em 0;overflow-x:auto">{body}</div>\n'
    return mathml or f"<code>{escape(tex)}</code>"
