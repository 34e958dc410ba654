from __future__ import annotations

from nbchat.convert.citations import citations_of, cited_markdown, cited_text
from nbchat.protocol.types import ChatCompletionMessage
from nbchat.render.markdown import render_markdown


def message(content: str, *notes: tuple[str, int | None, int | None, str]):
    return ChatCompletionMessage.model_validate(
        {
            "content": content,
            "annotations": [
                {
                    "type": "url_citation",
                    "url_citation": {"url": url, "start_index": s, "end_index": e, "title": t},
                }
                for url, s, e, t in notes
            ]
            + [{"type": "file_citation", "file_id": "f"}],
        }
    )


TEXT = "Rain is likely. Winds are strong."


def test_sources_are_numbered_by_first_use_and_keep_their_number() -> None:
    cites = citations_of(
        message(
            TEXT,
            ("https://a.example/x", 0, 15, "A"),
            ("https://b.example/y", 16, 33, "B"),
            ("https://a.example/x", 16, 33, "A again"),
        )
    )
    assert [(c.number, c.url, c.text) for c in cites] == [
        (1, "https://a.example/x", "Rain is likely."),
        (2, "https://b.example/y", "Winds are strong."),
        (1, "https://a.example/x", "Winds are strong."),
    ]


def test_numbered_links_follow_the_passages_they_cite() -> None:
    cites = citations_of(
        message(TEXT, ("https://a.example/x", 0, 15, "A"), ("https://b.example/y", 16, 33, "B"))
    )
    assert cited_text(TEXT, cites) == "Rain is likely. [1] Winds are strong. [2]"
    html = render_markdown(cited_markdown(TEXT, cites))
    assert html.startswith('<p>Rain is likely. <a href="https://a.example/x"')
    assert '>[1]</a> Winds are strong. <a href="https://b.example/y"' in html
    assert "<math" not in html


def test_a_citation_without_a_place_goes_after_the_text() -> None:
    cites = citations_of(message(TEXT, ("https://a.example/", 10, 999, "far"), ("u", None, 2, "")))
    assert cites[0].text == "" and cites[1].title == "u"
    assert cited_text(TEXT, cites) == TEXT + " [1] [2]"


def test_a_hostile_url_stays_text_and_cannot_break_out_of_its_link() -> None:
    cites = citations_of(
        message(
            TEXT,
            ("javascript:alert(1)", 0, 15, "x"),
            ("/files/secret.txt", 0, 15, "y"),
            ("https://e.example/a) <script>alert(1)</script> [x](", 16, 33, "z"),
        )
    )
    html = render_markdown(cited_markdown(TEXT, cites))
    assert "javascript:" not in html.replace("javascript:alert%281%29", "")
    assert 'href="javascript' not in html and 'href="/files' not in html
    assert "<script>" not in html
    assert 'href="https://e.example/a%29%20%3Cscript%3E' in html
