from __future__ import annotations

import dataclasses
import html
import io
import json
import subprocess
import sys
import threading
import time

import httpx
import pytest
from IPython.testing import globalipapp

from nbchat import Client
from nbchat.conversation import sessions as _sessions
from nbchat.conversation.chat import Chat
from nbchat.notebook import panel as panel_module
from nbchat.notebook.panel import SEND_MARK, ChatPanel, panel
from nbchat.notebook.widgets import WIDGET_VIEW
from nbchat.protocol.exceptions import RateLimitError
from nbchat.render.bundles import error_bundle
from tests import hostile
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
    live = "".join(p.live_html())
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
    assert p.live_html() == [] and p.live.children == ()


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
    cards = [d for d in outputs if "RateLimitError" in d.get("text/html", "")]
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


def test_missing_ipywidgets_gives_an_install_hint():
    # In a fresh interpreter: the classes import without ipywidgets, making one says why not.
    code = (
        "import sys; sys.modules['ipywidgets'] = None\n"
        "import nbchat\n"
        "for make in (nbchat.panel, lambda: nbchat.explore([])):\n"
        "    try:\n"
        "        make()\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stdout.splitlines()
    assert lines == [
        "The chat panel needs ipywidgets: pip install 'nbchat[notebooks]' (or ipywidgets)",
        "The logprobs explorer needs ipywidgets: pip install 'nbchat[notebooks]' (or ipywidgets)",
    ]


def test_panel_repr_and_display_bundle():
    p, _ = make_panel()
    assert repr(p) == "ChatPanel(session='default', messages=0)"
    bundle = p._repr_mimebundle_()
    assert bundle[WIDGET_VIEW]["model_id"] == p.model_id
    assert bundle["text/plain"] == repr(p)
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


# -- the panel is a widget --------------------------------------------------------------------


def test_the_panel_is_a_vbox_that_composes_in_layouts():
    import ipywidgets as w

    p, _ = make_panel()
    assert isinstance(p, w.VBox)
    assert p.widget is p
    assert "nbchat-panel" in p._dom_classes
    assert p.conversation in _all_children(p) and p.prompt in _all_children(p)
    plot = w.HTML("plot")
    row = w.HBox([p, plot])
    assert row.children == (p, plot)
    # The repr walks no children (ipywidgets' own lists every trait, children included).
    assert len(repr(p)) < 60


def _all_children(widget):
    found = []
    for child in getattr(widget, "children", ()):
        found += [child, *_all_children(child)]
    return found


def test_widget_messages_still_reach_the_front_end(monkeypatch):
    # Widget.send carries ipywidgets' custom messages (focus(), blur()); the panel's send() takes
    # them through instead of sending them to the model.
    p, server = make_panel()
    sent = []
    monkeypatch.setattr(p, "_send", lambda msg, buffers=None: sent.append(msg))
    p.focus()
    assert sent == [{"method": "custom", "content": {"do": "focus"}}]
    assert server.requests == [] and not p.busy


def test_close_closes_the_panel_and_every_widget_in_it():
    p, _ = make_panel()
    inner = _all_children(p)
    p.close()
    assert p.comm is None
    assert all(child.comm is None for child in inner)


def test_sidecar_opens_the_panel_in_the_side_area():
    from sidecar import Sidecar

    server = ModelServer()
    p = panel("side", client=server.client(), sidecar=True)
    try:
        assert isinstance(p.sidecar, Sidecar)
        assert p.sidecar.title == "nbchat · side"
        (shown_there,) = p.sidecar.outputs
        assert shown_there["data"][WIDGET_VIEW]["model_id"] == p.model_id
    finally:
        p.close()
    assert p.sidecar is None
    titled = panel("side", client=server.client(), sidecar="My chat")
    try:
        assert titled.sidecar.title == "My chat"
    finally:
        titled.close()


def test_sidecar_missing_gives_an_install_hint_and_makes_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "sidecar", None)
    _sessions._sessions.pop("nowhere", None)
    with pytest.raises(ImportError, match=r"pip install sidecar"):
        panel("nowhere", sidecar=True)
    assert "nowhere" not in _sessions.names()


# -- everything outside is shown inert ----------------------------------------------------------

PAYLOADS = list(hostile.PAYLOADS.values())


def panel_html(p: ChatPanel) -> str:
    bundles = [o["data"] for o in p.conversation.outputs]
    # Only HTML that nbchat built: Markdown would be rendered (raw HTML and all) by the front end.
    assert all("text/html" in b and "text/markdown" not in b for b in bundles)
    parts = [b["text/html"] for b in bundles] + p.live_html()
    parts += [p.footer.value, p.status.value, p.title.value, p.thumbnails.value]
    return "\n".join(parts)


def test_hostile_replies_model_names_and_refusals_are_inert_in_the_panel():
    p, server = make_panel()
    for payload in PAYLOADS:
        server.reply(payload, model=payload)
        p.send(payload)
        assert p.wait(5)
        hostile.assert_inert(panel_html(p), payload)
    server.reply(None, refusal=PAYLOADS[0])
    p.send("refuse")
    assert p.wait(5)
    assert len(p.conversation.outputs) == 2 * (len(PAYLOADS) + 1)
    hostile.assert_inert(panel_html(p), "refusal")


def test_hostile_tool_calls_are_inert_in_the_panel():
    p, server = make_panel()
    calls = [
        {"id": hostile.PAYLOADS["tool call id"], "name": name, "arguments": {"q": payload}}
        for name, payload in hostile.PAYLOADS.items()
    ]
    server.reply(None, tool_calls=calls)
    p.send("call them all")
    assert p.wait(5)
    markup = panel_html(p)
    assert "onerror=alert(1)" in markup  # the payloads are there, as text
    hostile.assert_inert(markup, "tool calls")


def test_history_from_cells_is_shown_with_the_history_renderer_and_inert():
    from nbchat.render.bundles import message_bundle

    p, _ = make_panel()
    for payload in PAYLOADS:
        p.chat.add({"role": "user", "content": payload})
        call = {
            "id": payload,
            "type": "function",
            "function": {"name": payload, "arguments": payload},
        }
        p.chat.add({"role": "assistant", "content": payload, "tool_calls": [call]})
        p.chat.add({"role": "tool", "tool_call_id": payload, "content": payload})
    p.chat.add({"role": "assistant", "content": PAYLOADS[1]}, interrupted=True)
    p.refresh()
    expected = [message_bundle(m) for m in p.chat.messages[:-1]]
    expected.append(message_bundle(p.chat.messages[-1], interrupted=True))
    assert [o["data"] for o in p.conversation.outputs] == expected
    hostile.assert_inert(panel_html(p), "history")


def test_hostile_error_messages_and_upload_names_are_inert():
    p, server = make_panel()
    for payload in PAYLOADS:
        server.error(500, payload, type=payload, code=payload, param=payload)
        p.send("hello")
        assert p.wait(5)
        p._on_upload({"new": ({"name": payload, "content": memoryview(b"not an image")},)})
        hostile.assert_inert(panel_html(p), payload)
    assert "InternalServerError" in shown(p)


def test_only_our_own_thumbnails_are_shown_as_images():
    from PIL import Image

    p, server = make_panel()
    server.reply("ok")
    part = p.attach(Image.new("RGB", (10, 10), "red"))
    assert "<img" in p.thumbnails.value
    hostile.assert_inert(p.thumbnails.value, "thumbnail")
    p.attachments = [dataclasses.replace(part, thumbnail="https://evil.test/x.png")]
    p._show_thumbnails()
    assert "<img" not in p.thumbnails.value and "[image]" in p.thumbnails.value
    p.attachments = [part]
    p.send("What is it?")
    assert p.wait(5)
    assert "<img" in shown(p)
    hostile.assert_inert(panel_html(p), "sent thumbnail")


# -- the worker never dies --------------------------------------------------------------------


def test_a_failure_while_showing_the_reply_becomes_a_card_and_the_panel_stays_usable(
    monkeypatch,
):
    p, server = make_panel()
    server.reply("first")

    def broken(reply):
        raise RuntimeError("renderer <b>broke</b>")

    monkeypatch.setattr(panel_module, "reply_bundle", broken)
    p.send("one")
    assert p.wait(5)
    assert "RuntimeError" in p.status.value
    assert "renderer &lt;b&gt;broke&lt;/b&gt;" in shown(p)
    assert not p.send_button.disabled and p.stop_button.disabled
    # The exchange itself happened and is shown from the history.
    assert p.chat.messages[-1]["content"] == "first"
    assert "first" in shown(p)
    monkeypatch.undo()
    server.reply("second")
    p.send("two")
    assert p.wait(5)
    assert "second" in shown(p) and p.status.value == ""


def test_a_failure_while_redrawing_is_shown_instead_of_killing_the_thread(monkeypatch):
    p, server = make_panel()
    server.reply("fine")

    def broken(*args, **kwargs):
        raise ValueError("no history today")

    monkeypatch.setattr(panel_module, "footer_text", broken)
    p.send("one")
    assert p.wait(5)
    assert "no history today" in shown(p)
    assert "ValueError" in p.status.value
    assert not p.send_button.disabled


def test_a_stop_before_anything_arrived_does_not_show_an_older_reply_again():
    gated = GatedStream("slow reply here")
    chat = Chat(client=gated.client(), model="m")
    p = ChatPanel(chat=chat, shell=None, list_models=False)
    p.send("one")
    assert gated.paused.wait(5)
    p.stop()
    gated.gate.set()
    assert p.wait(5)
    first = shown(p)
    assert first.count("Interrupted") == 1
    p._stop.set()  # Stop pressed again before the next request goes out
    p._run("two", "two", [])
    assert shown(p).count("Interrupted") == 1


# -- panel and cells share a conversation, one send at a time ----------------------------------


def test_a_cell_waits_for_the_panel_and_the_panel_for_a_cell(shell, monkeypatch):
    gated = GatedStream("The same conversation.")
    client = gated.client()
    monkeypatch.setattr(_sessions, "client_for", lambda settings: client)
    p = panel("together")
    try:
        p.send("from the panel")
        assert gated.paused.wait(5)
        seen = []

        def release():
            time.sleep(0.3)
            seen.append(len(gated.requests))
            gated.gate.set()

        threading.Thread(target=release).start()
        # The cell blocks until the panel's reply is complete, then sends after it.
        shell.run_cell("%%chat --session together\nfrom a cell")
        assert p.wait(5)
        assert seen == [1]
        chat = _sessions.session("together")
        assert [m["role"] for m in chat.messages] == ["user", "assistant"] * 2
        assert chat.messages[0]["content"] == "from the panel"
        assert chat.messages[2]["content"] == "from a cell"
        assert gated.requests[1]["messages"][:2] == chat.messages[:2]

        # And the other way round: a send running elsewhere holds the panel's reply back.
        gated.gate.clear()
        gated.paused.clear()
        elsewhere = threading.Thread(
            target=chat.send, args=("from elsewhere",), kwargs={"model": "fake-model"}
        )
        elsewhere.start()
        assert gated.paused.wait(5)
        p.send("from the panel again")
        time.sleep(0.2)
        assert len(gated.requests) == 3 and p.busy
        gated.gate.set()
        elsewhere.join(5)
        assert p.wait(5)
        contents = [m["content"] for m in chat.messages if m["role"] == "user"]
        assert contents == [
            "from the panel",
            "from a cell",
            "from elsewhere",
            "from the panel again",
        ]
        # Still usable, and showing every turn.
        p.refresh()
        for text in contents:
            assert text in shown(p)
        assert not p.send_button.disabled
    finally:
        p.close()


def test_a_send_that_lands_while_the_panel_records_its_exchange_is_not_taken_for_it(monkeypatch):
    # The panel records its exchange after its send returns; a cell that was waiting for the
    # conversation must not send in between (its turn would be hidden under the panel's).
    p, server = make_panel()
    server.reply("Panel reply.")
    server.reply("Cell reply.")
    remember = ChatPanel._remember
    others: list[threading.Thread] = []

    def slow_remember(self, start, bundles):
        other = threading.Thread(target=self.chat.send, args=("from a cell",))
        other.start()
        others.append(other)
        time.sleep(0.2)  # long enough for the other send to finish, if it could start
        remember(self, start, bundles)

    monkeypatch.setattr(ChatPanel, "_remember", slow_remember)
    p.prompt.value = "from the panel"
    assert p.send() is not None and p.wait(5)
    others[0].join(5)
    p.refresh(force=True)
    assert [m["content"] for m in p.chat.messages] == [
        "from the panel", "Panel reply.", "from a cell", "Cell reply."
    ]  # fmt: skip
    assert "from a cell" in shown(p) and "Cell reply." in shown(p)


# -- what a viewer without widgets shows ---------------------------------------------------------


def test_display_adds_a_fallback_that_follows_the_conversation(shell):
    from IPython.display import display
    from IPython.utils.capture import capture_output

    p = panel("shown")
    try:
        shell.server.reply("Earlier answer.")
        shell.run_cell("%%chat --session shown\nEarlier question")
        with capture_output() as captured:
            display(p)
            shell.server.reply("Panel <b>answer</b>.")
            p.send("Panel question")
            assert p.wait(5)
        first, record, *updates = captured.outputs
        # The widget itself, and the conversation for viewers that cannot show it.
        assert first.data[WIDGET_VIEW]["model_id"] == p.model_id
        assert first.data["text/plain"].startswith("nbchat panel on conversation 'shown'")
        display_id = record.transient["display_id"]
        assert record.data[WIDGET_VIEW]["model_id"] == ""
        assert "Earlier answer." in record.data["text/plain"]
        assert "Panel question" not in record.data["text/plain"]
        # Updated in place once the panel's exchange is done.
        (update,) = updates
        assert update.update and update.transient["display_id"] == display_id
        assert "Panel question" in update.data["text/plain"]
        assert "Panel <b>answer</b>." in update.data["text/plain"]
    finally:
        p.close()


def test_a_panel_in_the_sidecar_leaves_a_note_and_the_fallback_in_the_cell(shell):
    from IPython.display import display
    from IPython.utils.capture import capture_output

    p = panel("aside", sidecar=True)
    try:
        with capture_output() as captured:
            display(p)
        note, record = captured.outputs
        assert WIDGET_VIEW not in note.data
        assert "side area" in note.data["text/plain"]
        assert record.data[WIDGET_VIEW]["model_id"] == ""
    finally:
        p.close()


def test_an_html_export_shows_the_conversation_inert_where_the_widget_was(shell):
    import nbformat
    from nbconvert import HTMLExporter

    p = panel("exported")
    try:
        shell.server.reply(hostile.PAYLOADS["img onerror"] + " The visible answer.")
        p.send("Show me")
        assert p.wait(5)
        from IPython.display import display
        from IPython.utils.capture import capture_output

        with capture_output() as captured:
            display(p)
    finally:
        p.close()
    cell = nbformat.v4.new_code_cell("nbchat.panel('exported')")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data=out.data, metadata={})
        for out in captured.outputs
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    page, _ = HTMLExporter().from_notebook_node(notebook)
    body = page.split("<body", 1)[1]
    assert "The visible answer." in body and "Show me" in body
    assert "nbchat panel on conversation 'exported'" in html.unescape(body)
    # Past nbconvert's own scripts, nothing of the reply is active.
    cells = body.split('class="jp-Cell ', 1)[1]
    hostile.assert_inert(cells.split("</main>", 1)[0], "HTML export")


def test_the_panel_shows_the_thinking_and_the_notes_of_a_reply():
    p, server = make_panel()
    seen_live: list[str] = []

    def watch(change):
        # Every area of the live turn, and every value each one takes.
        for area in change["new"]:
            seen_live.append(area.value)
            area.observe(lambda value: seen_live.append(value["new"]), "value")

    p.live.observe(watch, "children")
    server.reply("Four.", reasoning="two and two", model="other-model")
    p.prompt.value = "2+2?"
    p.send()
    assert p.wait(5)
    page = shown(p)
    assert "nbchat-thinking" in page and "two and two" in page
    assert page.index("nbchat-thinking") < page.index("Four.")
    # The note on who answered is in the panel, not only in reply.notes.
    assert p.chat.last_reply.notes
    assert "other-model answered" in page
    assert any("Thinking…" in s for s in seen_live)
    assert p.chat.messages[-1] == {"role": "assistant", "content": "Four."}


def test_tools_given_to_the_panel_run_and_those_needing_approval_are_refused():
    import nbchat

    ran = []

    @nbchat.tool
    def lookup(word: str) -> str:
        """Look a word up."""
        ran.append(word)
        return f"{word}: a word"

    @nbchat.tool(confirm=True)
    def delete(path: str) -> str:
        """Delete a file."""
        ran.append(path)
        return "deleted"

    p, server = make_panel(tools=[lookup, delete])
    server.reply(
        None,
        tool_calls=[
            {"id": "c1", "name": "lookup", "arguments": {"word": "tea"}},
            {"id": "c2", "name": "delete", "arguments": {"path": "/x"}},
        ],
    )
    server.reply("Done.")
    p.prompt.value = "Go"
    assert p.send() is not None and p.wait(5)
    assert ran == ["tea"]
    assert [t["function"]["name"] for t in server.requests[0]["tools"]] == ["lookup", "delete"]
    told = [m["content"] for m in server.last["messages"] if m["role"] == "tool"]
    assert told[0] == "tea: a word" and "chat panel cannot ask" in told[1]


# -- layout, headings, icons ----------------------------------------------------------------------

# What the panel's chrome once showed as icons: boxes where no emoji font is installed.
EMOJI = "💬🧑⏹⏳✅❌🔧💭🖼🚫\ufe0f"


def test_the_live_turn_streams_inside_the_scrolling_conversation():
    p, _ = make_panel()
    (inner,) = p.scroller.children
    assert inner.children == (p.conversation, p.live)
    # A fixed height: a reply streaming in does not grow the panel.
    assert p.scroller.layout.height and not p.scroller.layout.max_height
    assert p.scroller.layout.flex_flow == "column-reverse"


def test_turns_are_headed_alike_from_the_panel_and_from_cells_and_nothing_is_an_emoji():
    p, server = make_panel()
    server.reply("From the panel.").reply("From a cell.")
    p.send("panel question")
    assert p.wait(5)
    p.chat.send("cell question")
    p.refresh()
    page = shown(p)
    assert page.count("<strong>You</strong>") == 2
    assert page.count("<strong>Assistant</strong>") == 2
    chrome = page + p.title.value + p.status.value + p.footer.value
    chrome += "".join(b.description for b in (p.send_button, p.stop_button, p.explore_button))
    assert not [c for c in EMOJI if c in chrome]
    assert 'class="fa fa-comments"' in p.title.value
    assert p.send_button.icon == "paper-plane" and p.stop_button.icon == "stop"


def test_a_stopped_reply_is_said_to_be_kept_once():
    gated = GatedStream("The quick brown fox jumps over the lazy dog")
    p = ChatPanel(chat=Chat(client=gated.client(), model="m"), shell=None, list_models=False)
    p.send("Tell me")
    assert gated.paused.wait(5)
    p.stop()
    gated.gate.set()
    assert p.wait(5)
    html = "".join(o["data"]["text/html"] for o in p.conversation.outputs)
    page = html + p.status.value
    assert page.count("kept") == 1 and "Interrupted" in html
    assert not [c for c in EMOJI if c in page]


def test_max_tokens_is_off_until_checked_or_set_and_says_so_on_screen():
    p, _ = make_panel()
    assert not p.max_tokens_on.value and p.max_tokens.disabled
    assert p.max_tokens_on.description == "max tokens"
    assert "max_tokens" not in p.request_fields()
    p.max_tokens_on.value = True
    assert not p.max_tokens.disabled
    assert p.request_fields()["max_tokens"] == p.max_tokens.value
    p.max_tokens_on.value = False
    p.max_tokens.value = 77
    # Setting a limit (from Python, or typing it) turns it on.
    assert p.max_tokens_on.value and p.request_fields()["max_tokens"] == 77


def test_the_controls_may_shrink_and_wrap_for_a_narrow_side_area():
    p, _ = make_panel()
    assert p.model.layout.min_width == "0" and p.model.layout.flex
    for button in (p.send_button, p.stop_button):
        assert button.layout.min_width and button.layout.flex == "0 0 auto"
    assert p.prompt.layout.min_width == "0"


def test_an_empty_conversation_says_so_until_the_first_turn_streams_in():
    gated = GatedStream("The first reply, streaming")
    p = ChatPanel(chat=Chat(client=gated.client(), model="m"), shell=None, list_models=False)
    assert "No messages yet" in shown(p)
    p.send("Hello")
    assert gated.paused.wait(5)
    assert "No messages yet" not in shown(p)
    gated.gate.set()
    assert p.wait(5)
    assert "No messages yet" not in shown(p) and "The first reply" in shown(p)


def test_the_panel_footer_shows_the_counted_tokens_of_a_reply_without_usage():
    p, server = make_panel()
    server.reply("no usage here")
    reply = p.chat.send("x")
    reply.completion.usage = None
    reply.output_chunks = 7
    p.refresh(force=True)
    assert "~7 completion tokens (counted" in p.footer.value
