from __future__ import annotations

import io
import json
import sys
import threading
import time

import httpx
import pytest
from IPython.testing import globalipapp

from nbchat import Client
from nbchat.conversation import sessions as _sessions
from nbchat.conversation.chat import Chat
from nbchat.notebook.panel import SEND_MARK, ChatPanel, panel
from nbchat.protocol.exceptions import RateLimitError
from nbchat.render.bundles import error_bundle
from tests.fakeserver import SECRET, FakeServer, sse_events

pytest.importorskip("ipywidgets")


class ModelServer(FakeServer):
    """The fake server, also answering GET /models."""

    def __init__(self, models=("fake-model", "other-model"), **kw):
        super().__init__(**kw)
        self.models = models

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/models"):
            if self.models is None:
                return httpx.Response(404, json={"error": {"message": "no such route"}})
            data = [{"id": m, "object": "model"} for m in self.models]
            return httpx.Response(200, json={"object": "list", "data": data})
        return super().handle(request)


class GatedStream:
    """A streamed reply that pauses after ``open_events`` events until ``gate`` is set."""

    def __init__(self, text: str, *, open_events: int = 3) -> None:
        self.gate = threading.Event()
        self.paused = threading.Event()
        self.text = text
        self.open_events = open_events
        self.requests: list[dict] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(json.loads(request.content))
        completion = {
            "id": "c1",
            "created": 1,
            "model": "slow-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12},
        }
        events = list(sse_events(completion, piece=4))

        def body():
            for i, event in enumerate(events):
                if i == self.open_events:
                    self.paused.set()
                    self.gate.wait(5)
                yield event

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    def client(self) -> Client:
        return Client(
            api_key=SECRET,
            base_url="http://gated.test/v1",
            max_retries=0,
            transport=httpx.MockTransport(self.handle),
        )


def make_panel(server=None, **kw) -> tuple[ChatPanel, ModelServer]:
    server = server or ModelServer()
    chat = Chat(client=server.client(), model="fake-model")
    return ChatPanel(chat=chat, shell=None, list_models=False, **kw), server


def shown(p: ChatPanel) -> str:
    return "\n".join(json.dumps(o["data"], ensure_ascii=False) for o in p.conversation.outputs)


def test_sending_streams_the_reply_into_the_conversation_and_footer():
    p, server = make_panel()
    server.reply("Hi there, friend.")
    p.prompt.value = "Say hello"
    thread = p.send()
    assert thread is not None and p.wait(5)
    assert server.last["messages"] == [{"role": "user", "content": "Say hello"}]
    assert server.last["stream"] is True
    assert "Hi there, friend." in shown(p)
    assert "Say hello" in shown(p)
    assert "10 prompt + 5 completion = 15 tokens" in p.footer.value
    assert p.prompt.value == ""
    assert not p.send_button.disabled and p.stop_button.disabled
    assert p.chat.messages[-1] == {"role": "assistant", "content": "Hi there, friend."}


def test_enter_mark_from_the_front_end_sends_the_prompt_without_the_mark():
    p, server = make_panel()
    server.reply("ok")
    p.prompt.value = "line one\nline two" + SEND_MARK
    assert p.wait(5)
    assert server.last["messages"][-1]["content"] == "line one\nline two"
    assert p.prompt.value == ""


def test_a_newline_alone_does_not_send():
    p, server = make_panel()
    p.prompt.value = "first line\n"
    assert not p.busy and server.requests == []


def test_empty_prompt_is_not_sent_and_says_why():
    p, server = make_panel()
    assert p.send("   ") is None
    assert server.requests == []
    assert "Write a message" in p.status.value


def test_reply_streams_live_before_it_finishes_and_stop_keeps_the_partial_marked():
    gated = GatedStream("The quick brown fox jumps over the lazy dog")
    chat = Chat(client=gated.client(), model="slow-model")
    p = ChatPanel(chat=chat, shell=None, list_models=False, updates_per_second=0)
    p.send("Tell me")
    assert gated.paused.wait(5)
    time.sleep(0.05)
    live = json.dumps([o["data"] for o in p.live.outputs], ensure_ascii=False)
    assert "The quic" in live and "▌" in live
    assert p.busy and not p.stop_button.disabled and p.send_button.disabled
    p.stop()
    gated.gate.set()
    assert p.wait(5)
    assert chat.interrupted == [1]
    assert chat.messages[-1]["role"] == "assistant"
    assert chat.messages[-1]["content"].startswith("The quick")
    assert chat.messages[-1]["content"] != "The quick brown fox jumps over the lazy dog"
    assert chat.last_reply.interrupted
    assert "Interrupted" in shown(p)
    assert "Stopped" in p.status.value
    assert p.live.outputs == ()


def test_send_while_answering_is_refused():
    gated = GatedStream("slow reply here")
    p = ChatPanel(chat=Chat(client=gated.client(), model="m"), shell=None, list_models=False)
    p.send("one")
    assert gated.paused.wait(5)
    assert p.send("two") is None
    assert "Still answering" in p.status.value
    gated.gate.set()
    assert p.wait(5)
    assert len(gated.requests) == 1


def test_controls_become_request_fields():
    p, server = make_panel()
    server.reply('{"a": 1}')
    p.model.value = "other-model"
    p.temperature_on.value = True
    p.temperature.value = 0.3
    p.max_tokens.value = 64
    p.json_mode.value = True
    p.logprobs.value = True
    p.system.value = "Answer in JSON."
    p.send("go")
    assert p.wait(5)
    body = server.last
    assert body["model"] == "other-model"
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 64
    assert body["response_format"] == {"type": "json_object"}
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    assert body["messages"][0] == {"role": "system", "content": "Answer in JSON."}
    assert p.chat.system == "Answer in JSON."


def test_controls_left_alone_send_no_optional_fields():
    p, server = make_panel()
    server.reply("ok")
    assert p.temperature.disabled
    p.send("go")
    assert p.wait(5)
    for field in ("temperature", "max_tokens", "response_format", "logprobs"):
        assert field not in server.last


def test_errors_show_as_the_magic_error_card_and_leave_history_alone():
    p, server = make_panel()
    server.error(429, "Slow down", type="rate_limit_error", code="rate_limit_exceeded")
    p.send("hello")
    assert p.wait(5)
    assert p.chat.messages == []
    outputs = [o["data"] for o in p.conversation.outputs]
    cards = [d for d in outputs if "text/html" in d]
    assert len(cards) == 1
    html = cards[0]["text/html"]
    assert "RateLimitError" in html and "Slow down" in html and "429" in html
    expected = error_bundle(RateLimitError("Slow down", status_code=429))["text/html"]
    assert html.split("<table>")[0] == expected.split("<table>")[0]
    assert SECRET not in json.dumps(outputs)
    assert "hello" in shown(p)
    assert "RateLimitError" in p.status.value
    # The card stays after the next, successful exchange.
    server.reply("better")
    p.send("again")
    assert p.wait(5)
    text = shown(p)
    assert text.index("RateLimitError") < text.index("better")


def test_missing_model_is_an_error_card_not_a_crash():
    server = ModelServer()
    p = ChatPanel(chat=Chat(client=server.client()), shell=None, list_models=False)
    p.send("hi")
    assert p.wait(5)
    assert "No model is set" in shown(p)
    assert server.requests == []


def test_model_picker_lists_the_server_models():
    p, _ = make_panel()
    assert p.load_models() == ["fake-model", "other-model"]
    assert p.model.options == ("fake-model", "other-model")
    assert p.model.value == "fake-model"


def test_model_picker_stays_free_text_when_the_server_cannot_list():
    p, _ = make_panel(ModelServer(models=None))
    assert p.load_models() == []
    assert p.model.options == ()
    p.model.value = "anything-typed"
    assert p.request_fields()["model"] == "anything-typed"


def test_model_picker_fills_in_the_background():
    server = ModelServer()
    p = ChatPanel(chat=Chat(client=server.client()), shell=None)
    deadline = time.monotonic() + 5
    while not p.model.options and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.model.options == ("fake-model", "other-model")


def test_attached_images_become_image_parts_with_thumbnails():
    from PIL import Image

    p, server = make_panel()
    server.reply("A red square.")
    p.attach(Image.new("RGB", (40, 30), "red"))
    assert "<img" in p.thumbnails.value
    p.send("What is this?")
    assert p.wait(5)
    content = server.last["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["type"] == "image_url"
    assert content[1]["image_url"]["url"].startswith("data:image/")
    assert p.attachments == [] and p.thumbnails.value == ""
    assert "<img" in shown(p)


def test_uploaded_files_are_attached():
    from PIL import Image

    p, _ = make_panel()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buffer, format="PNG")
    p._on_upload({"new": ({"name": "b.png", "content": memoryview(buffer.getvalue())},)})
    assert len(p.attachments) == 1
    assert p.attachments[0].to_dict()["type"] == "image_url"


def test_a_bad_upload_says_which_file():
    p, _ = make_panel()
    p._on_upload({"new": ({"name": "notes.txt", "content": memoryview(b"not an image")},)})
    assert p.attachments == []
    assert "notes.txt" in p.status.value


def test_explore_toggle_opens_the_explorer_for_the_last_reply():
    p, server = make_panel()
    tokens = [
        {"token": "Hi", "logprob": -0.05, "top_logprobs": [{"token": "Hi", "logprob": -0.05}]},
        {"token": "!", "logprob": -2.0, "top_logprobs": [{"token": ".", "logprob": -0.3}]},
    ]
    server.reply("Hi!", logprobs=tokens)
    p.logprobs.value = True
    p.send("hi")
    assert p.wait(5)
    p.explore_button.value = True
    (explorer_widget,) = p.explorer_area.children
    assert explorer_widget is p.explorer.widget
    assert [t.token for t in p.explorer.tokens] == ["Hi", "!"]
    p.explore_button.value = False
    assert p.explorer_area.children == ()


def test_explore_without_logprobs_says_how_to_get_them():
    p, server = make_panel()
    server.reply("plain")
    p.send("hi")
    assert p.wait(5)
    p.explore_button.value = True
    (note,) = p.explorer_area.children
    assert "no logprobs" in note.value


def test_missing_ipywidgets_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with pytest.raises(ImportError, match=r"pip install 'nbchat\[notebooks\]'"):
        make_panel()


def test_panel_repr_and_display_bundle():
    p, _ = make_panel()
    assert repr(p) == "ChatPanel(session='default', messages=0)"
    bundle = p._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    js = p._keys.outputs[0]["data"]["application/javascript"]
    assert "nbchat-prompt" in js and "\\ue000" in js


@pytest.fixture
def shell(monkeypatch):
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    ip.run_line_magic("config", "Chat.display = 'final'")
    ip.run_line_magic("config", "Chat.model = 'fake-model'")
    server = ModelServer()
    client = server.client()
    monkeypatch.setattr(_sessions, "client_for", lambda settings: client)
    _sessions._sessions.clear()
    ip.server = server
    yield ip
    _sessions._sessions.clear()
    ip.run_line_magic("unload_ext", "nbchat")
    ip.config.pop("Chat", None)


def test_panel_and_magic_share_the_session(shell):
    p = panel("shared")
    try:
        assert p.chat is _sessions.session("shared")
        assert p.model.value == "fake-model"
        shell.server.reply("From the magic.")
        shell.run_cell("%%chat --session shared\nHello from a cell")
        # The panel redraws after every cell.
        assert "From the magic." in shown(p)
        assert "Hello from a cell" in shown(p)
        shell.server.reply("From the panel.")
        p.send("And from the panel")
        assert p.wait(5)
        assert [m["content"] for m in shell.server.last["messages"]] == [
            "Hello from a cell",
            "From the magic.",
            "And from the panel",
        ]
        assert _sessions.session("shared").messages[-1]["content"] == "From the panel."
        assert shown(p).index("From the magic.") < shown(p).index("From the panel.")
        shell.run_cell("%chat --session shared reset")
        assert "From the panel." not in shown(p)
    finally:
        p.close()


def test_image_variables_of_the_notebook_are_offered(shell):
    from PIL import Image

    shell.user_ns["photo"] = Image.new("RGB", (20, 20), "green")
    p = panel("imgs")
    try:
        assert "photo" in p.image_var.options
        p.image_var.value = "photo"
        p.attach_variable()
        assert len(p.attachments) == 1
    finally:
        p.close()
        shell.user_ns.pop("photo", None)
