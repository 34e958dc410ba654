"""Every hostile payload through every output path that shows outside text: nothing active."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest

from nbchat.conversation.chat import Chat, Reply
from nbchat.conversation.toolrun import ToolResult
from nbchat.protocol.exceptions import APIConnectionError, BadRequestError, IncompleteStreamError
from nbchat.protocol.types import ChatCompletion, ChatCompletionChunk
from nbchat.render.bundles import (
    error_bundle,
    footer_html,
    history_bundle,
    message_bundle,
    reply_bundle,
    request_bundle,
    tool_call_html,
)
from nbchat.render.live import LiveView
from nbchat.render.logprobs import logprobs_html, logprobs_summary, logprobs_table
from nbchat.render.markdown import (
    code_block,
    inline_code,
    markdown_bundle,
    render_inline,
    render_markdown,
    terminal_text,
)
from nbchat.transport.prepared import PreparedRequest
from tests.hostile import PAYLOADS, active_content, assert_inert

CASES = list(PAYLOADS.items())
IDS = [name for name, _ in CASES]


def completion(payload: str, **message) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": payload,
            "model": payload,
            "system_fingerprint": payload,
            "service_tier": payload,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", **message},
                    "finish_reason": payload,
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        }
    )


def html_of(bundle: dict[str, str]) -> str:
    assert "text/markdown" not in bundle
    assert set(bundle) <= {"text/html", "text/plain"}
    return bundle.get("text/html", "")


# -- the renderer and the chrome helpers ------------------------------------------------------


@pytest.mark.parametrize(("name", "payload"), CASES, ids=IDS)
def test_renderer_and_helpers(name, payload):
    assert_inert(render_markdown(payload), "render_markdown")
    assert_inert(render_inline(payload), "render_inline")
    assert_inert(html_of(markdown_bundle(payload)), "markdown_bundle")
    assert_inert(code_block(payload, language=payload), "code_block")
    assert_inert(inline_code(payload), "inline_code")
    assert "\x1b" not in terminal_text(payload + "\x1b]0;title\x07")


# -- replies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "payload"), CASES, ids=IDS)
def test_replies_refusals_tool_calls_and_footer(name, payload):
    calls = [
        {"id": payload, "type": "function", "function": {"name": payload, "arguments": payload}}
    ]
    shown = completion(payload, content=payload, refusal=payload, tool_calls=calls)
    assert_inert(html_of(reply_bundle(Reply(completion=shown, notes=[payload]))), "reply")
    assert_inert(footer_html(shown), "footer")
    assert_inert(tool_call_html(payload, payload, payload), "tool call")
    many = shown.model_copy(
        update={"choices": [shown.choices[0], shown.choices[0].model_copy(update={"index": 1})]}
    )
    assert_inert(html_of(reply_bundle(Reply(completion=many))), "n>1 choices")


@pytest.mark.parametrize(("name", "payload"), CASES, ids=IDS)
def test_tool_results(name, payload):
    results = [
        ToolResult(tool_call_id=payload, name=payload, arguments=payload, ok=True, content=payload),
        ToolResult(
            tool_call_id=payload,
            name=payload,
            arguments={payload: payload},
            ok=False,
            content=payload,
        ),
    ]
    reply = Reply(completion=completion(payload, content=payload), tool_results=results)
    page = html_of(reply_bundle(reply))
    assert_inert(page, "tool results")
    assert page.count("<details") == page.count("</details>") == 2


# -- the live view -------------------------------------------------------------------------------


class Display:
    def __init__(self):
        self.bundles = []

    def __call__(self, bundle, raw=True, display_id=True, metadata=None):
        self.bundles.append(bundle)
        return SimpleNamespace(
            update=lambda bundle, raw=True, metadata=None: self.bundles.append(bundle)
        )


def chunk(delta) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate({"choices": [{"index": 0, "delta": delta}]})


@pytest.mark.parametrize(("name", "payload"), CASES, ids=IDS)
def test_live_view_while_text_and_tool_calls_form(name, payload):
    display = Display()
    view = LiveView(mode="live", rate=0, display=display)
    # In small pieces, so that each update shows a different prefix of the payload.
    for i in range(0, len(payload), 3):
        view.on_chunk(chunk({"content": payload[i : i + 3]}), None)
    first = {"index": 0, "id": payload, "function": {"name": payload, "arguments": ""}}
    view.on_chunk(chunk({"tool_calls": [first]}), None)
    for i in range(0, len(payload), 2):
        piece = {"index": 0, "function": {"arguments": payload[i : i + 2]}}
        view.on_chunk(chunk({"tool_calls": [piece]}), None)
    view.on_tool_results([SimpleNamespace(name=payload, ok=False)])
    view.finish(Reply(completion=completion(payload, content=payload)))
    assert display.bundles
    for bundle in display.bundles:
        assert_inert(html_of(bundle), "live view")


@pytest.mark.parametrize(("name", "payload"), CASES, ids=IDS)
def test_reasoning_in_every_spelling_live_and_finished(name, payload):
    for field in ("reasoning_content", "reasoning", None):
        display = Display()
        view = LiveView(mode="live", rate=0, display=display)
        content = f"<think>{payload}</think>{payload}" if field is None else payload
        for i in range(0, len(payload), 3):
            piece = payload[i : i + 3]
            delta = {"content": f"<think>{piece}" if i == 0 else piece} if field is None else {}
            view.on_chunk(chunk({field: piece} if field else delta), None)
        if field is None:
            view.on_chunk(chunk({"content": "</think>" + payload}), None)
        else:
            view.on_chunk(chunk({"content": payload}), None)
        message = {"content": content} if field is None else {"content": content, field: payload}
        shown = completion(payload, **message)
        view.finish(Reply(completion=shown))
        assert any("nbchat-thinking" in html_of(b) for b in display.bundles)
        for bundle in display.bundles:
            assert_inert(html_of(bundle), f"live reasoning ({field or 'think'})")
        assert_inert(html_of(reply_bundle(Reply(completion=shown))), "reply with reasoning")
    out = io.StringIO()
    view = LiveView(mode="text", out=out)
    view.on_chunk(chunk({"reasoning_content": payload + "\x1b]0;t\x07"}), None)
    view.finish(Reply(completion=completion(payload, content="a", reasoning_content=payload)))
    assert "\x1b" not in out.getvalue()


def test_text_display_writes_no_escape_sequences():
    out = io.StringIO()
    view = LiveView(mode="text", out=out)
    view.on_chunk(chunk({"content": "a\x1b]52;c;ZXZpbA==\x07\x9b2J\rb"}), None)
    view.finish(Reply(completion=completion("m\x1b[31m", content="a")))
    assert not any(ch in out.getvalue() for ch in "\x1b\x07\x9b\r")


# -- history, requests, errors, logprobs ---------------------------------------------------------


@pytest.mark.parametrize(("name", "payload"), CASES, ids=IDS)
def test_history(name, payload):
    chat = Chat("m")
    chat.add({"role": "user", "content": payload})
    chat.add(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": payload},
                {"type": "image_url", "image_url": {"url": "https://evil.test/a.png"}},
            ],
        }
    )
    call = {"id": payload, "type": "function", "function": {"name": payload, "arguments": payload}}
    chat.add({"role": "assistant", "content": payload, "tool_calls": [call]})
    chat.add({"role": "tool", "tool_call_id": payload, "content": payload})
    chat.add({"role": "assistant", "content": payload}, interrupted=True)
    assert_inert(html_of(history_bundle(chat)), "history")
    assert_inert(html_of(message_bundle({"role": payload, "content": payload})), "message")


@pytest.mark.parametrize(("name", "payload"), CASES, ids=IDS)
def test_requests_raw_and_dry_runs(name, payload):
    body = {"model": payload, "messages": [{"role": "user", "content": payload}]}
    prepared = PreparedRequest(
        method="POST", url="http://x.test/v1/" + payload, headers={"x-h": payload}, body=body
    )
    assert_inert(html_of(request_bundle(prepared, title=payload)), "dry run")
    response = completion(payload, content=payload).to_dict()
    assert_inert(html_of(request_bundle(response, url=payload, title="Response")), "--raw")


@pytest.mark.parametrize(("name", "payload"), CASES, ids=IDS)
def test_error_cards(name, payload):
    error = BadRequestError(
        payload, status_code=400, type=payload, code=payload, param=payload, request_id=payload
    )
    assert_inert(html_of(error_bundle(error)), "error card")
    assert_inert(html_of(error_bundle(APIConnectionError(payload))), "connection card")
    assert_inert(html_of(error_bundle(IncompleteStreamError(payload))), "stream card")


@pytest.mark.parametrize(("name", "payload"), CASES, ids=IDS)
def test_logprobs_views(name, payload):
    tokens = [
        {
            "token": payload[i : i + 4],
            "logprob": -0.5 * (i % 3) - (9999 if i == 4 else 0),
            "bytes": list(payload[i : i + 4].encode()),
            "top_logprobs": [{"token": payload, "logprob": -1.0, "bytes": None}],
        }
        for i in range(0, len(payload), 4)
    ]
    source = {"content": tokens}
    assert_inert(logprobs_html(source)._repr_html_(), "logprobs_html")
    assert_inert(logprobs_table(source)._repr_html_(), "logprobs_table")
    assert_inert(logprobs_summary(source)._repr_html_(), "logprobs_summary")


@pytest.mark.parametrize(("name", "payload"), CASES, ids=IDS)
def test_config_card(name, payload):
    from nbchat.notebook.configview import config_bundle
    from nbchat.notebook.settings import Chat as Settings

    settings = Settings(model=payload, system=payload, request={"user": payload})
    assert_inert(html_of(config_bundle(settings)), "config")


# -- the checker itself: it must find what it is for ---------------------------------------------


@pytest.mark.parametrize(
    "html",
    [
        "<script>x</script>",
        "<p onclick=x>a</p>",
        '<a href="javascript:alert(1)">x</a>',
        '<a href="  JAVA\tSCRIPT:alert(1)">x</a>',
        '<a href="jav&#x61;script:x">x</a>',
        '<a href="/files/x">x</a>',
        '<img src="https://evil.test/a.png">',
        '<img srcset="https://evil.test/a.png 1x">',
        '<img src="data:image/svg+xml;base64,PHN2Zz4=">',
        '<div style="background:url(https://evil.test)">',
        '<math href="javascript:x"><mi>x</mi></math>',
        "<svg><circle/></svg>",
        "<iframe></iframe>",
        '<meta http-equiv="refresh">',
        "<base href=x>",
        "<form></form>",
        "<style>p{}</style>",
        "<object></object>",
        "<embed>",
    ],
)
def test_the_checker_finds_active_content(html):
    assert active_content(html)


def test_the_checker_allows_links_thumbnails_and_mathml():
    assert not active_content(
        '<a href="https://ok.test">x</a><a href="mailto:a@b.test">m</a>'
        '<img src="data:image/png;base64,iVBORw0KGgo=" alt="image">'
        '<math display="inline"><mi>x</mi></math><div style="color:var(--jp-x, red)">y</div>'
    )


def test_payloads_still_show_as_text():
    # Inert is not enough: the reader must see what the model wrote.
    page = render_markdown(PAYLOADS["script"])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    page = render_markdown(PAYLOADS["javascript link"])
    assert "[click](javascript:alert(1))" in page
    page = html_of(markdown_bundle(json.dumps({"a": "<b>"})))
    assert "&lt;b&gt;" in page


# -- where notebooks are read later: nbconvert's HTML export --------------------------------------

_NOTEBOOK_CODE = r"""
from IPython.display import display
from nbchat.conversation.chat import Chat, Reply
from nbchat.protocol.exceptions import BadRequestError
from nbchat.protocol.types import ChatCompletion
from nbchat.render.bundles import error_bundle, history_bundle, reply_bundle, request_bundle
from nbchat.render.logprobs import logprobs_html
from tests.hostile import PAYLOADS

def reply(**message):
    choice = {"index": 0, "finish_reason": "length", "message": {"role": "assistant", **message}}
    payload = message.get("content", "m")
    data = {"id": payload, "model": payload, "system_fingerprint": payload, "choices": [choice]}
    return Reply(completion=ChatCompletion.model_validate(data))

chat = Chat("m")
for payload in PAYLOADS.values():
    call = {"id": payload, "type": "function", "function": {"name": payload, "arguments": payload}}
    display(reply_bundle(reply(content=payload, refusal=payload, tool_calls=[call])), raw=True)
    display(error_bundle(BadRequestError(payload, status_code=400, code=payload)), raw=True)
    display(request_bundle({"messages": [{"role": "user", "content": payload}]}), raw=True)
    display(logprobs_html({"content": [{"token": payload, "logprob": -0.1}]}))
    chat.add({"role": "user", "content": payload})
display(history_bundle(chat), raw=True)
text = "Euler: $e^{i\\pi} + 1 = 0$\n\n| a | b |\n|---|---|\n| `<` | 2 |"
display(reply_bundle(reply(content=text)), raw=True)
"""


def test_nbconvert_html_export_of_hostile_outputs_is_inert(tmp_path):
    import collections
    import os
    import subprocess
    import sys
    from pathlib import Path

    import nbformat

    root = Path(__file__).resolve().parents[1]
    paths = []
    for name, cells in (("empty", []), ("hostile", [nbformat.v4.new_code_cell(_NOTEBOOK_CODE)])):
        notebook = nbformat.v4.new_notebook(cells=cells)
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        nbformat.write(notebook, tmp_path / f"{name}.ipynb")
        paths.append(str(tmp_path / f"{name}.ipynb"))
    # One nbconvert run for both notebooks: its start-up is most of this test's time.
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute", *paths],
        check=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        timeout=300,
    )
    empty = (tmp_path / "empty.html").read_text(encoding="utf-8")
    page = (tmp_path / "hostile.html").read_text(encoding="utf-8")
    assert page.count('class="nbchat-output') >= 4 * len(PAYLOADS)
    assert "Traceback" not in page
    # The template has scripts of its own (MathJax and its configuration): what the outputs
    # added is what the export has beyond the export of an empty notebook.
    added = collections.Counter(active_content(page)) - collections.Counter(active_content(empty))
    assert not added, list(added)[:10]
    # What users expect still shows: a table, code with "<", math as MathML.
    assert "<td><code>&lt;</code></td>" in page
    assert "<math " in page and "<mi>π</mi>" in page
