from __future__ import annotations

from nbchat.convert.fences import is_inside_fence
from nbchat.render.markdown import sanitize_markdown


def test_remote_images_become_links():
    assert sanitize_markdown("![chart](https://x.test/a.png)") == "[🖼 chart](https://x.test/a.png)"
    assert (
        sanitize_markdown("![ref][1]\n\n[1]: http://x.test") == "[🖼 ref][1]\n\n[1]: http://x.test"
    )


def test_raw_html_is_shown_not_run():
    assert sanitize_markdown("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)>"
    assert sanitize_markdown("a <script>b</script>") == "a &lt;script>b&lt;/script>"


def test_code_spans_and_fences_are_untouched():
    text = "Use `<div>` and `![x](y)`\n```html\n<b>![i](u)</b>\n```\n<i>"
    assert sanitize_markdown(text) == (
        "Use `<div>` and `![x](y)`\n```html\n<b>![i](u)</b>\n```\n&lt;i>"
    )


def test_tilde_fences_and_longer_closing_fences():
    text = "~~~~\n<x>\n~~~\n<y>\n~~~~~\n<z>"
    assert sanitize_markdown(text) == "~~~~\n<x>\n~~~\n<y>\n~~~~~\n&lt;z>"


def test_plain_markdown_is_unchanged():
    text = "# Title\n\n- a **b** [link](http://x.test)\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    assert sanitize_markdown(text) == text


def test_is_inside_fence():
    assert is_inside_fence("text\n```py\ncode")
    assert not is_inside_fence("text\n```py\ncode\n```\nmore")
