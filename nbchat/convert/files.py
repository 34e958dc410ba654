"""Files in, ``file`` content parts out: a PDF (or other document) sent as its data with its
name, or the id of a file uploaded before (``file-…``).

The API reads at most :data:`MAX_FILE_BYTES` of files in one request; a file past it (or files
past it together) is a :class:`FileInputError` before anything is sent.
"""

from __future__ import annotations

import base64
import binascii
import html
import mimetypes
import os
import re
from dataclasses import dataclass
from typing import Any

from ..protocol.exceptions import NbchatError
from .sizes import human_bytes, read_file

__all__ = [
    "MAX_FILE_BYTES",
    "FileInputError",
    "FilePart",
    "check_total",
    "estimate_file_tokens",
    "file_part",
]

#: The most file content the API takes in one request (all files together): 32 MB.
MAX_FILE_BYTES = 32_000_000
#: Prompt tokens counted per PDF page (its text and the image of the page): an upper estimate.
TOKENS_PER_PAGE = 1_500
#: Tokens counted for a file sent by id, whose size nbchat does not know.
UNKNOWN_FILE_TOKENS = 5_000
_FILE_ID = re.compile(r"^file-[A-Za-z0-9_-]+$")
_PAGE = re.compile(rb"/Type\s*/Page\b")


class FileInputError(NbchatError, ValueError):
    """An object that cannot be sent as a file; nothing was sent."""


@dataclass(frozen=True, repr=False)
class FilePart:
    """One file ready to send: its name and bytes (or the id of an uploaded file)."""

    filename: str | None
    data: bytes | None = None
    file_id: str | None = None
    media_type: str = "application/octet-stream"

    def to_dict(self) -> dict[str, Any]:
        """The ``file`` content part of a user message (the data as a base64 data URL, as
        OpenAI's examples send it)."""
        if self.file_id is not None:
            return {"type": "file", "file": {"file_id": self.file_id}}
        encoded = base64.b64encode(self.data or b"").decode("ascii")
        file = {"filename": self.filename, "file_data": f"data:{self.media_type};base64,{encoded}"}
        return {"type": "file", "file": file}

    @property
    def nbytes(self) -> int:
        return len(self.data or b"")

    @property
    def pages(self) -> int | None:
        """A PDF's page count (read from its objects), else None."""
        if self.data is None or not self.data.startswith(b"%PDF"):
            return None
        return len(_PAGE.findall(self.data)) or None

    @property
    def tokens(self) -> int:
        return _tokens(self.data, self.media_type)

    def summary(self) -> str:
        if self.file_id is not None:
            return f"uploaded file {self.file_id}"
        pages = self.pages
        count = f", {pages} page{'s' if pages != 1 else ''}" if pages else ""
        return f"{self.filename} ({human_bytes(self.nbytes)}{count})"

    def __repr__(self) -> str:
        return f"FilePart({self.summary()})"

    def _repr_html_(self) -> str:
        return f"<div><small>📄 {html.escape(self.summary())}</small></div>"


def file_part(obj: Any, *, filename: str | None = None) -> FilePart:
    """Turn ``obj`` into a :class:`FilePart`: a path (str or ``os.PathLike``), bytes (with
    ``filename``, or named by their kind), a binary file object, or the id of an uploaded
    file (``"file-abc123"``). Raises FileInputError."""
    if isinstance(obj, FilePart):
        return obj
    if isinstance(obj, str) and _FILE_ID.match(obj) and not os.path.exists(obj):
        return FilePart(filename=None, file_id=obj)
    if isinstance(obj, str | os.PathLike):
        path = os.fspath(obj)
        if isinstance(path, bytes):
            path = path.decode()
        data = read_file(path, limit=MAX_FILE_BYTES, what="input", error=FileInputError)
        return _from_bytes(data, filename or os.path.basename(path))
    if isinstance(obj, bytes | bytearray | memoryview):
        return _from_bytes(bytes(obj), filename)
    read = getattr(obj, "read", None)
    if callable(read):
        data = read(MAX_FILE_BYTES + 1)
        if not isinstance(data, bytes | bytearray):
            raise FileInputError("the file object must be opened in binary mode ('rb')")
        name = filename or os.path.basename(str(getattr(obj, "name", "") or "")) or None
        return _from_bytes(bytes(data), name)
    raise FileInputError(
        f"cannot send a {type(obj).__name__} as a file: pass a path, bytes, a binary file "
        "object or an uploaded file's id (file-…)"
    )


def _from_bytes(data: bytes, filename: str | None) -> FilePart:
    if len(data) > MAX_FILE_BYTES:
        raise FileInputError(
            f"{filename or 'the file'} is {human_bytes(len(data))}, over the API's "
            f"{human_bytes(MAX_FILE_BYTES)} limit for the files of a request"
        )
    if not data:
        raise FileInputError(f"{filename or 'the file'} is empty")
    pdf = data.startswith(b"%PDF")
    if filename is None:
        filename = "document.pdf" if pdf else "file.bin"
    media_type = "application/pdf" if pdf else mimetypes.guess_type(filename)[0]
    return FilePart(filename, data, media_type=media_type or "application/octet-stream")


def check_total(parts: list[FilePart]) -> None:
    """Refuse files that are over the API's limit together."""
    total = sum(part.nbytes for part in parts)
    if total > MAX_FILE_BYTES:
        raise FileInputError(
            f"the files are {human_bytes(total)} together, over the API's "
            f"{human_bytes(MAX_FILE_BYTES)} limit for the files of a request"
        )


def _tokens(data: bytes | None, media_type: str) -> int:
    if data is None:
        return UNKNOWN_FILE_TOKENS
    if data.startswith(b"%PDF"):
        pages = len(_PAGE.findall(data)) or 1
        return pages * TOKENS_PER_PAGE
    return max(1, len(data) // 4)


def estimate_file_tokens(file: Any) -> int:
    """Prompt tokens of a ``file`` part's ``file`` object (as sent): an upper estimate."""
    if not isinstance(file, dict) or not isinstance(file.get("file_data"), str):
        return UNKNOWN_FILE_TOKENS
    head, _, encoded = file["file_data"].rpartition(",")
    try:
        data = base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        return len(encoded) // 4
    return _tokens(data, head)
