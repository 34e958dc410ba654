"""An MCP tool's result as the tool message: text, images, embedded resources, structured content.

- Text parts are joined with blank lines; structured content is sent as compact JSON when the
  result has no text (servers that send both repeat the one in the other).
- Images become ``ImagePart``s (thumbnails under the call, image parts for a model that can
  see) and a line in the text saying what each is; audio and binary resources are named, not
  sent; a resource link is its name and URI; an embedded text resource is its URI and text.
- ``isError`` results raise MCPToolError with the server's own text, which the model sees.
- The text is cut at ``MAX_RESULT_CHARS`` characters, with a note saying how many were left out.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

from ..convert.tooloutput import ToolOutput
from .errors import MCPToolError

__all__ = ["MAX_RESULT_CHARS", "tool_output"]

#: A tool result longer than this many characters is cut, with a note (about 25k tokens).
MAX_RESULT_CHARS = 100_000
#: Most images of one result kept (each is also re-encoded for the model, at most 20 MB).
MAX_IMAGES = 8


def tool_output(result: Any, *, max_chars: int = MAX_RESULT_CHARS) -> ToolOutput:
    """The ToolOutput of a ``CallToolResult``; MCPToolError for an ``isError`` result."""
    pieces: list[str] = []
    images: list[Any] = []
    for part in getattr(result, "content", None) or ():
        pieces.append(_part_text(part, images))
    text = "\n\n".join(piece for piece in pieces if piece)
    structured = getattr(result, "structured_content", None)
    if structured is not None and not any(
        getattr(part, "type", None) == "text" for part in result.content or ()
    ):
        encoded = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
        text = f"{text}\n\n{encoded}" if text else encoded
    text = cut(text, max_chars)
    if getattr(result, "is_error", False):
        raise MCPToolError(text or "the tool reported an error and said nothing more")
    return ToolOutput(text, images)


def cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    left_out = len(text) - max_chars
    return (
        text[:max_chars] + f"\n[cut: the result has {len(text):,} characters; the first "
        f"{max_chars:,} are sent and {left_out:,} left out]"
    )


def _part_text(part: Any, images: list[Any]) -> str:
    kind = getattr(part, "type", None)
    if kind == "text":
        return str(part.text)
    if kind == "image":
        return _image(part.data, part.mime_type, images)
    if kind == "audio":
        return f"[audio, {part.mime_type}, {_size(part.data)}: not sent]"
    if kind == "resource_link":
        title = part.title or part.name
        described = f": {part.description}" if part.description else ""
        return f"[resource link: {title} <{part.uri}>{described}]"
    if kind == "resource":
        resource = part.resource
        text = getattr(resource, "text", None)
        if text is not None:
            return f"[resource {resource.uri}]\n{text}"
        mime = resource.mime_type or "application/octet-stream"
        if mime.startswith("image/"):
            return _image(resource.blob, mime, images, uri=str(resource.uri))
        return f"[resource {resource.uri}: {mime}, {_size(resource.blob)}: not sent]"
    return f"[a {kind or 'content'} part nbchat does not read]"


def _image(data: str, mime: str, images: list[Any], *, uri: str = "") -> str:
    from ..convert.images import ImageError, image_part

    where = f" {uri}" if uri else ""
    if len(images) >= MAX_IMAGES:
        return f"[image{where}, {mime}, {_size(data)}: not sent, more than {MAX_IMAGES} images]"
    try:
        part = image_part(f"data:{mime};base64,{data}", "auto")
    except ImageError as exc:
        repaired = _without_broken_chunks(data) if mime == "image/png" else None
        try:
            if repaired is None:
                raise exc
            part = image_part(f"data:{mime};base64,{repaired}", "auto")
        except ImageError:
            return f"[image{where}, {mime}, {_size(data)}: cannot be read: {exc}]"
    images.append(part)
    return f"[image {len(images)}{where}: {part.summary()}]"


def _without_broken_chunks(data: str) -> str | None:
    """A PNG without its optional chunks whose checksum is wrong (Pillow refuses those; the
    reference server's own image has a broken colour profile), or None if nothing was wrong."""
    try:
        raw = base64.b64decode(data, validate=False)
    except ValueError:
        return None
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    kept, position, dropped = [raw[:8]], 8, False
    while position + 12 <= len(raw):
        (length,) = struct.unpack(">I", raw[position : position + 4])
        end = position + 12 + length
        kind, body = raw[position + 4 : position + 8], raw[position + 8 : end - 4]
        (checksum,) = struct.unpack(">I", raw[end - 4 : end]) if end <= len(raw) else (None,)
        # Lower case first letter: an ancillary chunk, which a reader may skip.
        if checksum != zlib.crc32(kind + body) and kind[:1].islower():
            dropped = True
        else:
            kept.append(raw[position:end])
        position = end
    return base64.b64encode(b"".join(kept)).decode() if dropped else None


def _size(data: str) -> str:
    try:
        count = len(base64.b64decode(data, validate=False))
    except ValueError:
        count = len(data)
    return f"{count:,} bytes"
