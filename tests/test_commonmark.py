from __future__ import annotations

from nbchat.render.commonmark import Policy, render, render_blocks


def policy(*, allowed=lambda url: True) -> Policy:
    return Policy(
        allowed=allowed,
        code=lambda text, language: f"[code {language}:{text!r}]",
        math=lambda tex, display: f"[{'D' if display else 'i'}:{tex}]",
        inline_display=lambda tex: f"[d:{tex}]",
    )


def test_the_policy_decides_links_code_and_math():
    text = "[a](https://x.test) $x$ a $$y$$ b\n\n```py\n1\n```\n\n$$z$$\n"
    out = render(text, policy())
    assert '<a href="https://x.test"' in out and "[i:x]" in out and "[d:y]" in out
    assert "[code py:'1\\n']" in out and "[D:z]" in out and "<p>[D:z]" not in out
    refused = render(
        "[a](https://x.test) ![b](https://x.test/i.png)", policy(allowed=lambda u: False)
    )
    assert "href" not in refused and "[a](https://x.test)" in refused and "[image: b]" in refused


def test_blocks_are_character_offsets_of_the_text_given_and_split_its_html():
    text = "é **b**\n\n\\(x\\) ünï\n\n- i\n- j\n\n---\n"
    rendered = render_blocks(text, policy())
    starts = [block.start for block in rendered.blocks]
    assert starts == [0, text.index("\\("), text.index("- i"), text.index("---")]
    second = rendered.blocks[1]
    assert rendered.before(second) == render(text[: second.start], policy())
    assert rendered.after(second) == render(text[second.start :], policy())
    assert rendered.before(second) + rendered.after(second) == rendered.html


def test_events_past_what_we_know_show_their_text():
    # A NUL is replaced as CommonMark asks; raw HTML blocks and inline HTML are text.
    out = render("a\0b <i>x</i>\n\n<div>\n*y*\n</div>\n", policy())
    assert "\ufffd" in out and "<i>" not in out and "&lt;i&gt;" in out
    assert "<p>&lt;div&gt;\n*y*\n&lt;/div&gt;</p>\n" in out
