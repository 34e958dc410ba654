"""An MCP tool result as the tool message: text, images (thumbnails; image parts for a model that
can see), resources, structured content, isError, and the 100,000-character bound. Checked on
the SDK's own types and on the npm reference server, which exercises all of them."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest

from nbchat.mcpclient.errors import MCPToolError
from nbchat.mcpclient.results import MAX_RESULT_CHARS, cut, tool_output

types = pytest.importorskip("mcp_types")


def png(width: int = 8, height: int = 8) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (0, 128, 255)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def result(*content, structured=None, error=False):
    return types.CallToolResult(
        content=list(content), structured_content=structured, is_error=error
    )


def test_text_parts_are_joined_and_structured_content_is_not_repeated():
    output = tool_output(
        result(
            types.TextContent(type="text", text="one"),
            types.TextContent(type="text", text="two"),
            structured={"a": 1},
        )
    )
    assert output.text == "one\n\ntwo" and output.images == []


def test_structured_content_alone_is_sent_as_compact_json():
    assert tool_output(result(structured={"temp": 21.5, "unit": "C"})).text == (
        '{"temp":21.5,"unit":"C"}'
    )


def test_images_become_parts_with_thumbnails_and_a_line_in_the_text():
    output = tool_output(
        result(types.ImageContent(type="image", data=png(), mime_type="image/png"))
    )
    assert output.text.startswith("[image 1: PNG 8×8")
    assert len(output.images) == 1 and output.images[0].thumbnail.startswith("data:image/")
    assert output.images[0].to_dict()["type"] == "image_url"


def test_a_broken_image_is_named_not_sent():
    output = tool_output(
        result(types.ImageContent(type="image", data="bm90IGFuIGltYWdl", mime_type="image/png"))
    )
    assert "cannot be read" in output.text and output.images == []


def test_resources_links_and_audio_are_described():
    text_resource = types.EmbeddedResource(
        type="resource",
        resource=types.TextResourceContents(
            uri="file:///notes.txt", mime_type="text/plain", text="hello"
        ),
    )
    blob = types.EmbeddedResource(
        type="resource",
        resource=types.BlobResourceContents(
            uri="file:///a.bin", mime_type="application/zip", blob="AAAA"
        ),
    )
    link = types.ResourceLink(type="resource_link", name="readme", uri="file:///readme.md")
    audio = types.AudioContent(type="audio", data="AAAA", mime_type="audio/wav")
    text = tool_output(result(text_resource, blob, link, audio)).text
    assert "[resource file:///notes.txt]\nhello" in text
    assert "[resource file:///a.bin: application/zip, 3 bytes: not sent]" in text
    assert "[resource link: readme <file:///readme.md>]" in text
    assert "[audio, audio/wav, 3 bytes: not sent]" in text


def test_is_error_results_raise_with_the_servers_own_words():
    with pytest.raises(MCPToolError, match=r"^Invalid timezone: 'Mars'$"):
        tool_output(
            result(types.TextContent(type="text", text="Invalid timezone: 'Mars'"), error=True)
        )
    with pytest.raises(MCPToolError, match="said nothing more"):
        tool_output(result(error=True))


def test_results_past_the_bound_are_cut_with_a_note_of_what_was_left_out():
    output = tool_output(result(types.TextContent(type="text", text="y" * 150_000)))
    assert output.text.startswith("y" * MAX_RESULT_CHARS)
    assert output.text.endswith(
        "[cut: the result has 150,000 characters; the first 100,000 are sent and 50,000 left out]"
    )
    assert cut("short", 10) == "short"


# -- the npm reference server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def everything():
    from nbchat.mcpclient.config import ServerEntry
    from nbchat.mcpclient.server import Server
    from tests.npmservers import everything_command

    command = everything_command()
    if command is None:
        pytest.skip("Node and npm (or the npm registry) are not available")
    server = Server(
        ServerEntry(
            name="everything", source=Path("mcp.json"), command=command, args=("stdio",), timeout=60
        )
    )
    yield server
    server.close()


def call(server, tool, arguments=None):
    from nbchat.mcpclient.results import tool_output

    return tool_output(server.call(tool, arguments or {}))


def test_the_reference_server_image_is_a_thumbnail_and_an_image_part(everything):
    output = call(everything, "get-tiny-image")
    assert len(output.images) == 1 and "[image 1: PNG" in output.text


def test_the_reference_server_resources_and_structured_content(everything):
    links = call(everything, "get-resource-links", {"count": 2}).text
    assert links.count("[resource link:") == 2
    reference = call(
        everything, "get-resource-reference", {"resourceType": "Text", "resourceId": 1}
    )
    assert "[resource " in reference.text
    structured = call(everything, "get-structured-content", {"location": "Chicago"})
    assert "temperature" in structured.text


def test_the_reference_server_sees_none_of_the_kernels_credentials(everything, monkeypatch):
    # The SDK passes a stdio server only a few safe variables and the entry's own env.
    assert os.environ.get("NBCHAT_STORE")  # set by conftest in this process
    shown = call(everything, "get-env").text
    assert "NBCHAT_STORE" not in shown and "PATH" in shown


def test_the_reference_server_error_and_arguments_checked_before_sending(everything):
    from nbchat.conversation.toolrun import run_tool_calls
    from nbchat.mcpclient.tools import server_tools

    tools = server_tools(everything)
    bad = {
        "id": "c",
        "type": "function",
        "function": {"name": "everything__get-sum", "arguments": '{"a": "one", "b": 2}'},
    }
    answer = run_tool_calls([bad], tools)[0]
    assert not answer.ok and "invalid arguments for everything__get-sum" in answer.content


def test_a_png_with_a_broken_optional_chunk_is_read_without_it():
    import struct
    import zlib

    raw = base64.b64decode(png())
    bad = b"iCCP" + b"junk profile"
    chunk = struct.pack(">I", len(bad) - 4) + bad + struct.pack(">I", zlib.crc32(bad) ^ 1)
    broken = raw[:33] + chunk + raw[33:]  # after the 8-byte signature and the IHDR chunk
    data = base64.b64encode(broken).decode()
    output = tool_output(result(types.ImageContent(type="image", data=data, mime_type="image/png")))
    assert len(output.images) == 1 and output.images[0].width == 8
