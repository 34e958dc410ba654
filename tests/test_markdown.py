from __future__ import annotations

import pytest

from nbchat.convert.fences import is_inside_fence
from nbchat.render.markdown import (
    allowed_url,
    code_block,
    escape,
    markdown_bundle,
    render_inline,
    render_markdown,
    thumbnail,
)


def test_raw_html_is_shown_as_text():
    out = render_markdown("a <script>alert(1)</script>\n\n<img src=x onerror=alert(1)>")
    assert "<script" not in out and "<img" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out


def test_only_http_https_mailto_links_stay_links():
    out = render_markdown("[a](https://x.test) [b](javascript:alert(1)) <mailto:me@x.test>")
    assert '<a href="https://x.test"' in out and 'href="mailto:me@x.test"' in out
    assert "javascript" not in out.split("[b]")[0]
    assert "[b](javascript:alert(1))" in out


def test_images_become_links_and_never_load():
    out = render_markdown("![chart](https://x.test/a.png)")
    assert "<img" not in out
    assert '<a href="https://x.test/a.png"' in out and "chart" in out


def test_code_shows_its_text_exactly():
    out = render_markdown("Use `<div>`\n\n```html\n<b>x</b>\n```")
    assert "<code>&lt;div&gt;</code>" in out
    assert "&lt;b&gt;x&lt;/b&gt;" in out and "&amp;lt;" not in out


def test_tables_lists_emphasis_render():
    out = render_markdown("# T\n\n- a **b** ~~c~~\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    for tag in ("<h1>", "<li>", "<strong>", "<s>", "<table>", "<td>1</td>"):
        assert tag in out


def test_render_inline_has_no_paragraph():
    assert render_inline("**x**") == "<strong>x</strong>"


def test_escape_and_code_block():
    assert escape("<a href='x'>&") == "&lt;a href=&#x27;x&#x27;&gt;&amp;"
    block = code_block("</code></pre><script>", language='json" onload="x')
    assert "<script" not in block and 'onload="' not in block


def test_markdown_bundle_has_html_and_plain_text_only():
    bundle = markdown_bundle("**hi** <b>")
    assert set(bundle) == {"text/html", "text/plain"}
    assert bundle["text/plain"] == "**hi** <b>"
    assert "<strong>hi</strong>" in bundle["text/html"]


def test_allowed_url():
    assert allowed_url("https://x.test") and allowed_url("mailto:a@b.test")
    for url in ("javascript:alert(1)", "data:text/html,x", "vbscript:x", "/files/x", "https:"):
        assert not allowed_url(url)


def test_thumbnail_accepts_only_base64_images():
    assert thumbnail("data:image/png;base64,iVBORw0KGgo=").startswith('<img src="data:image/png')
    with pytest.raises(ValueError):
        thumbnail("https://x.test/a.png")
    with pytest.raises(ValueError):
        thumbnail('data:image/png;base64,AA" onerror="x')


def test_is_inside_fence():
    assert is_inside_fence("text\n```py\ncode")
    assert not is_inside_fence("text\n```py\ncode\n```\nmore")


def test_math_becomes_mathml_the_browser_typesets():
    out = render_markdown("Euler: $e^{i\\pi} + 1 = 0$\n\n$$\n\\frac{a}{b}\n$$\n\nand \\(x < y\\)")
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline"' in out
    assert 'display="block"' in out and "<mfrac>" in out
    assert "<mo>&lt;</mo>" in out
    assert 'alttext="e^{i\\pi} + 1 = 0"' in out


def test_dollars_that_are_money_stay_text():
    for text in ("It costs $5 and $6.", "costs $5-$10 now", "$3.50/$4.00", "$ x $"):
        out = render_markdown(text)
        assert "<math" not in out and text in out, text


def test_bracket_math_is_math_only_where_the_brackets_are_escapes_in_one_block():
    def maths(text):
        return render_markdown(text).count("<math")

    assert maths("\\(a*b\\) and *\\(c*d\\)*") == 2  # the TeX is not read as emphasis
    assert 'alttext="a*b"' in render_markdown("\\(a*b\\)")
    assert maths("`\\(x\\)` \\\\(y\\\\)") == 0  # code, and escaped backslashes
    assert maths("\\(x\n\n\\)") == 0  # a blank line ends the block
    assert maths("| \\(a | b\\) |\n|---|---|\n| 1 | 2 |") == 0  # two cells
    display = render_markdown("ünï\n\n\\[\nx^2\n\\]\n\nb \\[y\\]")
    assert display.count('display="block"') == 2 and "<p>ünï</p>" in display
    # Text that already holds the placeholder characters gets no bracket math, and stays text.
    assert render_markdown("\ue000 \\(x\\)") == "<p>\ue000 (x)</p>\n"


def test_a_refused_link_shows_its_source_and_nothing_inside_becomes_markup():
    out = render_markdown("[**b** \\(x\\)](javascript:alert(1)) ![i](data:x) <b@c.test>")
    assert out.startswith("<p>[**b** \\(x\\)](javascript:alert(1)) [image: i] ")
    assert 'href="mailto:b@c.test"' in out and "<strong>" not in out


def test_tex_that_cannot_be_typeset_shows_its_source():
    assert render_markdown("$x^$") == "<p><code>x^</code></p>\n"


def test_mathml_keeps_no_links_styles_or_markup_from_tex():
    out = render_markdown(
        "$\\href{javascript:alert(1)}{x}$ $\\style{background:url(https://e.test)}{y}$ "
        "$\\text{<script>}$"
    )
    assert "href=" not in out and "style=" not in out and "<script" not in out
    assert "<mtext>&lt;script&gt;</mtext>" in out


def test_outputs_are_kept_away_from_mathjax():
    # A "$" in a reply is text: JupyterLab's and nbconvert's MathJax skip these classes.
    page = markdown_bundle("$5 and $6")["text/html"]
    assert page.startswith('<div class="nbchat-output tex2jax_ignore mathjax_ignore">')


def test_code_block_shows_tabs_and_angle_brackets_exactly():
    block = code_block("\tif a < b:\n\t\treturn '&'")
    assert "\tif a &lt; b:\n\t\treturn &#x27;&amp;&#x27;" in block


def test_reference_links_and_autolinks_follow_the_policy():
    out = render_markdown(
        "[ok][1] [bad][2] <https://x.test>\n\n[1]: https://ok.test\n[2]: vbscript:x"
    )
    assert '<a href="https://ok.test"' in out and '<a href="https://x.test"' in out
    # A refused link shows the source the model wrote; its definition is not shown.
    assert "[bad][2]" in out and "vbscript" not in out


def test_terminal_text_drops_control_characters():
    from nbchat.render.markdown import terminal_text

    assert terminal_text("a\x1b[31mb\r\nc\x07\x9bd\te") == "a[31mb\ncd\te"


def test_settled_blocks_render_exactly_as_the_whole_however_the_text_goes_on():
    import random

    from nbchat.render.markdown import render_settled, settled_length

    pieces = [
        "para *em* `c`", "- item", "  continued", "1. one", "> quote", ">", "```", "```py", "~~~",
        "    indented", "\tTabbed", "$$", "$$x$$", "\\[", "\\]", "| a | b |", "|---|---|", "# H",
        "---", "===", "", "", "", "* star", " - sp", "   ```", "````", "text $x$", "10. ten",
        "a\\", "  - nested", "> $$", "- \\[", "ünï *cödé* \\(x\\) é", "\\(a", "b\\)", "<!--",
        "-->", "<div>", "[l](https://x.test) ![i](https://x.test/i.png)", "[bad](javascript:x)",
        "| é | \\(x\\) |",
    ]  # fmt: skip
    rng = random.Random(3)
    cuts = 0
    for _ in range(400):
        text = "\n".join(rng.choice(pieces) for _ in range(rng.randint(3, 40))) + "\n"
        whole = render_markdown(text)
        for end in {len(text), *(rng.randint(0, len(text)) for _ in range(4))}:
            cut = settled_length(text[:end])
            if cut:
                cuts += 1
                assert render_markdown(text[:cut]) + render_markdown(text[cut:]) == whole
                assert render_settled(text[:end]) == (cut, render_markdown(text[:cut]))
    assert cuts > 100


def test_nothing_settles_inside_an_open_fence_or_with_references():
    from nbchat.render.markdown import settled_length

    assert settled_length("a\n\nb\n\nc\n") == len("a\n\nb\n\n")
    assert settled_length("a\n\nb") == 0  # the line after may still be arriving
    assert settled_length("```\na\n\nb\n\nc\n") == 0
    # Display math is inline content: it never spans a blank line, so the blocks settle.
    assert settled_length("$$\na\n\nb\n\nc\n") == len("$$\na\n\nb\n\n")
    assert settled_length("a\n\n[r]: https://x.test\n\nb\n\nc\n") == 0
