"""render/math.py: TeX as MathML written through an allowlist, so no TeX becomes markup."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from nbchat.render.math import MATHML_ATTRIBUTES, MATHML_ELEMENTS, tex_to_mathml


def tags(mathml: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every start tag of ``mathml`` with its attributes, as a browser's parser reads them."""
    found: list[tuple[str, dict[str, str | None]]] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    parser = Tags()
    parser.feed(mathml)
    parser.close()
    return found


def test_a_formula_becomes_one_math_element_with_its_source_as_alt_text():
    out = tex_to_mathml(r"\frac{a}{b} + x^2")
    assert out is not None
    assert out.startswith('<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline"')
    assert 'alttext="\\frac{a}{b} + x^2"' in out
    assert "<mfrac>" in out and "<msup>" in out and out.endswith("</math>")


def test_display_math_is_a_block():
    out = tex_to_mathml(r"\sum_{i=1}^n i", display=True)
    assert out is not None and 'display="block"' in out


@pytest.mark.parametrize(
    "tex",
    [
        r"\href{javascript:alert(1)}{x}",
        r"\text{<script>alert(1)</script>}",
        r"\style{background:url(x)}{y}",
        r"\class{evil}{z}",
        r"x \mathrm{<img src=x onerror=alert(1)>}",
    ],
)
def test_nothing_in_the_tex_becomes_markup(tex):
    out = tex_to_mathml(tex)
    if out is None:
        return  # not typeset: the caller shows the source as text
    allowed = MATHML_ATTRIBUTES | {"xmlns", "display", "alttext"}
    for name, attributes in tags(out):
        assert name in MATHML_ELEMENTS, name
        assert set(attributes) <= allowed, attributes
        for key, value in attributes.items():
            if key != "alttext":  # the source, escaped: text to a browser
                assert "javascript" not in (value or "") and "url(" not in (value or "")


@pytest.mark.parametrize("tex", ["", "   ", "x" * 4001])
def test_empty_or_very_long_tex_is_not_typeset(tex):
    assert tex_to_mathml(tex) is None


@pytest.mark.parametrize(
    "tex",
    [
        "\\frac{",  # half typed, as a stream shows it
        "{" * 1500 + "x" + "}" * 1500,  # nested deeper than the parser goes
    ],
)
def test_tex_the_parser_cannot_read_is_not_typeset(tex):
    assert len(tex) <= 4000
    assert tex_to_mathml(tex) is None
