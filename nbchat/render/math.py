"""TeX from a reply as MathML that we serialise ourselves: typeset by the browser, no script.

latex2mathml parses the TeX; its element tree is re-emitted through an allowlist of MathML
elements and attributes, so ``\\href``, ``\\style`` or ``\\text{<script>}`` cannot become markup.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import Any

__all__ = ["MATHML_ATTRIBUTES", "MATHML_ELEMENTS", "tex_to_mathml"]

# MathML Core's presentation elements (what Chromium, Firefox and Safari draw natively).
MATHML_ELEMENTS = frozenset(
    {
        "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub", "msubsup",
        "mfrac", "msqrt", "mroot", "mover", "munder", "munderover", "mtable", "mtr", "mtd",
        "mstyle", "mpadded", "mphantom", "menclose", "merror", "mmultiscripts", "mprescripts",
        "none",
    }
)  # fmt: skip
# Layout attributes only: no href, no style, no class or id, no event handlers.
MATHML_ATTRIBUTES = frozenset(
    {
        "accent", "accentunder", "columnalign", "columnlines", "columnspacing", "columnspan",
        "depth", "displaystyle", "fence", "form", "height", "largeop", "linethickness", "lspace",
        "mathbackground", "mathcolor", "mathsize", "mathvariant", "maxsize", "minsize",
        "movablelimits", "notation", "rowalign", "rowlines", "rowspacing", "rowspan", "rspace",
        "scriptlevel", "separator", "stretchy", "symmetric", "voffset", "width",
    }
)  # fmt: skip
# Attribute values are lengths, numbers, keywords and colour names or #hex: nothing that a
# browser could read as a URL or a script.
_VALUE = re.compile(r"[A-Za-z0-9#.%+\- ]{0,64}")
# Longer "formulas" are shown as their source: typesetting them is slow and rarely wanted.
_MAX_TEX = 4000


def tex_to_mathml(tex: str, *, display: bool = False) -> str | None:
    """``tex`` as a ``<math>`` element, or None if it is not TeX that can be typeset."""
    if len(tex) > _MAX_TEX or not tex.strip():
        return None
    return _convert(tex, display)


@lru_cache(maxsize=512)
def _convert(tex: str, display: bool) -> str | None:
    # The live view re-renders the same formulas many times while a reply streams: cache.
    from latex2mathml.converter import convert_to_element

    out: list[str] = []
    try:
        root = convert_to_element(tex, display="block" if display else "inline")
        _emit(root, out, top=True, tex=tex)
    except Exception:
        # latex2mathml raises many kinds of error on TeX it cannot read (half-typed formulas
        # while streaming among them, nesting deep enough to exhaust recursion); the caller
        # shows the source instead.
        return None
    return "".join(out)


def _emit(element: Any, out: list[str], *, top: bool = False, tex: str = "") -> None:
    tag = str(element.tag).rsplit("}", 1)[-1]
    if tag not in MATHML_ELEMENTS:
        # An element we do not know: keep its content, drop the element.
        _emit_children(element, out)
        return
    if top:
        mode = "block" if element.get("display") == "block" else "inline"
        alt = html.escape(" ".join(tex.split()), quote=True)
        out.append(
            f'<math xmlns="http://www.w3.org/1998/Math/MathML" display="{mode}" alttext="{alt}">'
        )
    else:
        attrs = "".join(
            f' {name}="{html.escape(value, quote=True)}"'
            for name, value in element.attrib.items()
            if name in MATHML_ATTRIBUTES and _VALUE.fullmatch(value)
        )
        out.append(f"<{tag}{attrs}>")
    _emit_children(element, out)
    out.append(f"</{tag}>")


def _emit_children(element: Any, out: list[str]) -> None:
    # latex2mathml leaves character references (&#x0222B;) in its text nodes: decode, escape.
    if element.text:
        out.append(html.escape(html.unescape(element.text), quote=False))
    for child in element:
        _emit(child, out)
        if child.tail:
            out.append(html.escape(html.unescape(child.tail), quote=False))
