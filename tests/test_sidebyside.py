from __future__ import annotations

import io

import pytest

from nbchat.conversation.chat import Reply
from nbchat.notebook.sidebyside import SideBySide, view_mode
from nbchat.protocol.types import ChatCompletion, ChatCompletionChunk
from tests.loopserver import completion


class Handle:
    def __init__(self, bundle):
        self.bundles = [bundle]

    def update(self, bundle, raw=False):
        self.bundles.append(bundle)


def chunk(text: str) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}}],
        }
    )


def reply(text: str) -> Reply:
    return Reply(completion=ChatCompletion.model_validate(completion("m", text)), elapsed=0.5)


def test_columns_stream_into_one_area_and_finish_with_their_footers():
    handles = []

    def show(bundle, raw=False, display_id=False):
        handles.append(Handle(bundle))
        return handles[-1]

    view = SideBySide(["model-a", "model-b"], mode="live", rate=0, display=show)
    listener = view.listener(0)
    listener.on_request({})
    listener.on_chunk(chunk("Hel"), None)
    view.refresh()
    listener.on_chunk(chunk("lo"), None)
    view.refresh()
    view.finish(0, reply=reply("Hello"))
    view.finish(1, error=RuntimeError("model-b is not served here"))
    view.close()
    assert len(handles) == 1  # one display area, updated in place
    first, last = handles[0].bundles[0], handles[0].bundles[-1]
    assert "Hel ▌" in first["text/html"]
    assert "model-a" in last["text/html"] and "model-b" in last["text/html"]
    assert "finish: stop" in last["text/html"] and "7 tokens" in last["text/html"]
    assert "RuntimeError: model-b is not served here" in last["text/html"]
    assert "── model-a ──\nHello" in last["text/plain"]


def test_model_text_is_escaped_never_interpreted():
    view = SideBySide(["<b>label</b>"], mode="off")
    view.finish(0, reply=reply("<script>alert(1)</script><img src=x onerror=y>"))
    html = view.bundle()["text/html"]
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;label" in html


def test_text_mode_prints_each_reply_when_it_finishes():
    out = io.StringIO()
    view = SideBySide(["a", "b"], mode="text", out=out)
    view.finish(1, reply=reply("second first"))
    assert out.getvalue().startswith("── b ──\nsecond first\nm · finish: stop")
    view.finish(0, reply=reply("then this"))
    view.close()
    assert out.getvalue().count("── a ──") == 1


def test_a_stop_ends_the_streams_at_their_next_chunk():
    view = SideBySide(["a"], mode="off")
    view.stopping.set()
    with pytest.raises(KeyboardInterrupt):
        view.listener(0).on_chunk(chunk("x"), None)


def test_auto_is_text_outside_a_kernel():
    assert view_mode(True) == "text"
    assert view_mode(False) == "off"
    with pytest.raises(ValueError):
        view_mode("3d")
