"""A round's images go to a model that can see as one user message after the tool messages
(never to one that cannot), undo skips that message, and each call is kept in the store."""

from __future__ import annotations

import base64
import io

import nbchat
from nbchat.conversation.toolround import images_message
from nbchat.conversation.toolrun import ToolResult
from nbchat.convert.images import image_part
from nbchat.convert.tooloutput import ToolOutput
from tests.fakeserver import FakeServer


def png_url() -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (9, 9, 9)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class Profile:
    def __init__(self, vision):
        self.vision = vision

    def supports(self, feature):
        return self.vision if feature == "vision" else None


def result(value, ok=True):
    return ToolResult("c1", "chart", {}, ok, "[image 1: PNG 4×4]", value=value)


def test_images_of_ok_results_make_one_user_message_for_a_model_that_can_see():
    output = ToolOutput("[image 1]", [image_part(png_url())])
    message = images_message([result(output)], Profile(True))
    assert message["role"] == "user"
    assert message["content"][0]["text"] == "The images chart returned (call c1):"
    assert message["content"][1]["type"] == "image_url"
    assert images_message([result(output)], Profile(False)) is None
    assert images_message([result(output, ok=False)], Profile(True)) is None
    assert images_message([result("text")], Profile(None)) is None


def test_the_loop_sends_the_images_after_the_tool_messages_and_undo_skips_them(monkeypatch):
    @nbchat.tool
    def chart() -> ToolOutput:
        """A chart."""
        return ToolOutput("[image 1: PNG 4×4]", [image_part(png_url())])

    server = FakeServer()
    server.reply(None, tool_calls=[{"id": "c1", "name": "chart", "arguments": {}}])
    server.reply("A dark square.")
    client = server.client()
    monkeypatch.setattr(client.profile, "supports", lambda feature: True)
    chat = nbchat.Chat("fake-model", client=client)
    chat.send("Draw", tools=[chart])
    roles = [m["role"] for m in server.last["messages"]]
    assert roles == ["user", "assistant", "tool", "user"]
    assert server.last["messages"][2]["content"] == "[image 1: PNG 4×4]"
    assert chat.undo()[0] == {"role": "user", "content": "Draw"}
    assert chat.messages == []
