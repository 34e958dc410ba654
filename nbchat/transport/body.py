"""Response bodies read within limits: Content-Encoding is decoded here, a slice at a time, and
a body of lines (a Batch API file) is split with each line and the whole held to a limit.

A small gzip or deflate body that inflates to gigabytes is stopped at the limit, holding no
more than the limit; an encoding nbchat did not ask for, or a body not in its encoding, is an
error of ours instead of httpx's.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

import httpx

from ..protocol.exceptions import ResponseDecodingError, ResponseTooLargeError
from .drive import Emit, Flow, adrive, aiterate, drive, iterate

__all__ = [
    "ACCEPT_ENCODING",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_STREAM_BYTES",
    "BodyReader",
    "Close",
    "Decoder",
    "RawPieces",
    "aiter_decoded",
    "aiter_lines",
    "aread_body",
    "decoded_flow",
    "decoder_for",
    "iter_decoded",
    "read_body",
    "read_flow",
    "size_text",
    "too_large",
]

#: What nbchat asks for (and all it decodes): zlib can inflate these in bounded slices.
ACCEPT_ENCODING = "gzip, deflate"
#: The most decoded bytes of a body read whole (a completion, an error, the model list).
DEFAULT_MAX_RESPONSE_BYTES = 32 * 2**20
#: The most decoded bytes of one stream: some 130,000 chunks of text, more than the longest
#: replies models give. Parsed chunks take up to 20 times their bytes (top logprobs are the
#: heaviest), so this also bounds what a hostile stream can make the kernel hold.
DEFAULT_MAX_STREAM_BYTES = 32 * 2**20
#: The most decoded bytes of a file read from the server a line at a time (a Batch API output:
#: a completion per row, a few kilobytes each); only one line is held at a time.
DEFAULT_MAX_FILE_BYTES = 2**30

# Decoded bytes produced per step: the most memory decoding takes beyond what the caller keeps.
_STEP = 64 * 1024
# Encodings that do compress but that nbchat neither asks for nor decodes: brotli and zstd can
# expand a few bytes into gigabytes in one call of their Python bindings.
_REFUSED = frozenset({"br", "zstd", "compress", "x-compress"})


def size_text(size: int) -> str:
    """``33554432`` → ``32 MiB``: limits as people write them."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size:,} bytes"


def too_large(
    what: str,
    limit: int,
    option: str,
    request: httpx.Request | None,
    *,
    past: str = "is larger than",
) -> Exception:
    return ResponseTooLargeError(
        f"The server's {what} {past} the {size_text(limit)} limit ({option}); "
        "reading stopped there.",
        limit=limit,
        request=request,
    )


class Decoder:
    """Identity: the bytes as they came."""

    def decode(self, data: bytes) -> Iterable[bytes]:
        # A tuple, not a generator: a stream without an encoding takes this once per read.
        return (data,) if data else ()

    def flush(self) -> Iterable[bytes]:
        return ()

    @property
    def complete(self) -> bool:
        """False when the data stopped in the middle of its encoding."""
        return True

    def incomplete(self) -> Exception:
        """The error for a body that is not ``complete``."""
        return ResponseDecodingError("The server's response ends in the middle of its encoding.")


class _Zlib(Decoder):
    """gzip (every member of it) or deflate (zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, name: str, request: httpx.Request | None) -> None:
        self._name = name
        self._request = request
        self._gzip = name in ("gzip", "x-gzip")
        self._inflate = self._new()
        # deflate: until the first output, a zlib header error may mean raw deflate; the
        # bytes fed until then are kept to start again from.
        self._raw_possible = not self._gzip
        self._fed = b""
        # A member ended; bytes after it (at most one, while a next member's magic is split).
        self._ended = False
        self._after = b""
        # The data ended for good: whatever follows is ignored, as httpx and browsers do.
        self._finished = False
        self._started = False

    def _new(self) -> zlib._Decompress:
        return zlib.decompressobj(zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS)

    def decode(self, data: bytes) -> Iterator[bytes]:
        self._started = self._started or bool(data)
        if self._raw_possible:
            self._fed += data
            if len(self._fed) > _STEP:
                self._raw_possible = False  # its zlib header was read long ago
        try:
            yield from self._decode(data)
        except zlib.error as exc:
            if not self._raw_possible:
                raise self._error(exc) from None
            # Not zlib-wrapped: start again as raw deflate on every byte so far.
            self._raw_possible = False
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                yield from self._decode(self._fed)
            except zlib.error as again:
                raise self._error(again) from None
        if not self._raw_possible:
            self._fed = b""

    def _decode(self, data: bytes) -> Iterator[bytes]:
        while not self._finished:
            if self._ended:
                data = self._after + data
                if self._gzip and data == b"\x1f":
                    self._after = data  # the next member's magic, split between reads
                    return
                self._after = b""
                if not data:
                    return
                if not (self._gzip and data[:2] == b"\x1f\x8b"):
                    self._finished = True
                    return
                self._inflate = self._new()
                self._ended = False
            inflate = self._inflate
            out = inflate.decompress(data, _STEP)
            data = inflate.unconsumed_tail
            if out:
                self._raw_possible = False
                yield out
            if inflate.eof:
                self._ended = True
                data = inflate.unused_data
            elif not data and len(out) < _STEP:
                return

    def flush(self) -> Iterator[bytes]:
        if self._ended or self._finished:
            return
        try:
            rest = self._inflate.flush()
        except zlib.error as exc:
            raise self._error(exc) from None
        if rest:
            yield rest

    @property
    def complete(self) -> bool:
        """False for data that stopped inside a member: cut short, or never this encoding."""
        return self._ended or self._finished or not self._started

    def incomplete(self) -> Exception:
        return ResponseDecodingError(
            f"The server's response ends in the middle of its {self._name} data (cut short, "
            f"or not {self._name} at all).",
            request=self._request,
        )

    def _error(self, exc: zlib.error) -> Exception:
        return ResponseDecodingError(
            f"The server's response claims Content-Encoding {self._name} but is not "
            f"{self._name} data ({exc}).",
            request=self._request,
        )


class _Chain(Decoder):
    """Several encodings (``Content-Encoding: gzip, deflate``), undone last first."""

    def __init__(self, decoders: list[Decoder]) -> None:
        self._decoders = decoders

    def decode(self, data: bytes) -> Iterator[bytes]:
        return self._through(0, self._decoders[0].decode(data))

    def _through(self, at: int, pieces: Iterable[bytes]) -> Iterator[bytes]:
        if at == len(self._decoders) - 1:
            yield from pieces
            return
        following = self._decoders[at + 1]
        for piece in pieces:
            yield from self._through(at + 1, following.decode(piece))

    def flush(self) -> Iterator[bytes]:
        for at, decoder in enumerate(self._decoders):
            yield from self._through(at, decoder.flush())

    @property
    def complete(self) -> bool:
        return all(decoder.complete for decoder in self._decoders)

    def incomplete(self) -> Exception:
        return next(d for d in self._decoders if not d.complete).incomplete()


def decoder_for(response: httpx.Response) -> Decoder:
    """The decoder for the response's Content-Encoding; one nbchat refuses is an error."""
    header = response.headers.get("content-encoding", "")
    names = [name.strip().lower() for name in header.split(",") if name.strip()]
    request = _request_of(response)
    decoders: list[Decoder] = []
    for name in reversed(names):
        if name in ("gzip", "x-gzip", "deflate"):
            decoders.append(_Zlib(name, request))
        elif name in _REFUSED:
            raise ResponseDecodingError(
                f"The server's response is encoded with {name}, which nbchat did not ask for "
                f"and does not decode (it accepts {ACCEPT_ENCODING}).",
                request=request,
            )
        # identity, and tokens that are no encoding at all, pass the bytes as httpx does.
    if not decoders:
        return Decoder()
    return decoders[0] if len(decoders) == 1 else _Chain(decoders)


def _request_of(response: httpx.Response) -> httpx.Request | None:
    try:
        return response.request
    except RuntimeError:
        return None


class BodyReader:
    """Decoded bytes gathered up to ``limit`` (None: no limit); past it, ResponseTooLargeError."""

    def __init__(self, response: httpx.Response, limit: int | None, option: str) -> None:
        self._response = response
        self._limit = limit
        self._option = option
        self._pieces: list[bytes] = []
        self._size = 0
        self._decoder = decoder_for(response)

    def feed(self, raw: bytes) -> None:
        for piece in self._decoder.decode(raw):
            self._add(piece)

    def finish(self) -> bytes:
        for piece in self._decoder.flush():
            self._add(piece)
        if not self._decoder.complete:
            raise self._decoder.incomplete()
        return b"".join(self._pieces)

    def add_decoded(self, body: bytes) -> bytes:
        self._add(body)
        return body

    def _add(self, piece: bytes) -> None:
        self._size += len(piece)
        if self._limit is not None and self._size > self._limit:
            self._pieces.clear()
            raise too_large("response", self._limit, self._option, _request_of(self._response))
        self._pieces.append(piece)


class RawPieces:
    """The operation that reads the next raw piece of a response's body (``b""`` at its end)."""

    __slots__ = ("_pieces", "response")

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._pieces: Any = None

    def run(self) -> bytes:
        if self._pieces is None:
            self._pieces = self.response.iter_raw()
        return next(self._pieces, b"")

    async def arun(self) -> bytes:
        if self._pieces is None:
            self._pieces = self.response.aiter_raw()
        return await anext(self._pieces, b"")


class Close:
    """The operation that closes a response (giving its connection back)."""

    __slots__ = ("response",)

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def run(self) -> None:
        self.response.close()

    async def arun(self) -> None:
        await self.response.aclose()


def read_flow(
    response: httpx.Response, limit: int | None, option: str = "max_response_bytes"
) -> Flow[bytes]:
    """The whole decoded body, read a slice at a time; the response is closed afterwards."""
    try:
        reader = BodyReader(response, limit, option)
        if response.is_stream_consumed:
            # Built from bytes (httpx.MockTransport): httpx read and decoded it already.
            return reader.add_decoded(response.content)
        pieces = RawPieces(response)
        while raw := (yield pieces):
            reader.feed(raw)
        return reader.finish()
    finally:
        yield Close(response)


def read_body(
    response: httpx.Response, limit: int | None, option: str = "max_response_bytes"
) -> bytes:
    """``read_flow`` in this thread."""
    return drive(read_flow(response, limit, option))


def aread_body(
    response: httpx.Response, limit: int | None, option: str = "max_response_bytes"
) -> Awaitable[bytes]:
    """``read_flow`` on the running loop."""
    return adrive(read_flow(response, limit, option))


def decoded_flow(
    response: httpx.Response,
    each: Callable[[bytes], Iterable[Any]] = lambda piece: (piece,),
    *,
    until: Callable[[], bool] = lambda: False,
) -> Flow[None]:
    """Emits ``each(piece)`` for every decoded piece of the body (at most 64 KiB, more only if
    the transport read it whole) as it is read; stops early once ``until()`` is true."""
    if response.is_stream_consumed:
        yield Emit(each(response.content))
        return
    decoder = decoder_for(response)
    pieces = RawPieces(response)
    while raw := (yield pieces):
        for piece in decoder.decode(raw):
            yield Emit(each(piece))
            if until():
                return
    for piece in decoder.flush():
        yield Emit(each(piece))


def iter_decoded(response: httpx.Response) -> Iterator[bytes]:
    """The decoded body in pieces (``decoded_flow`` in this thread)."""
    return iterate(decoded_flow(response))


def aiter_decoded(response: httpx.Response) -> AsyncIterator[bytes]:
    """The decoded body in pieces (``decoded_flow`` on the running loop)."""
    return aiterate(decoded_flow(response))


_LONG_LINE = "has a line longer than"


async def aiter_lines(
    response: httpx.Response,
    *,
    what: str,
    max_line_bytes: int | None,
    line_option: str,
    max_bytes: int | None,
    option: str,
) -> AsyncGenerator[bytes, None]:
    """The decoded body's lines, without their line ends, read as they arrive.

    A line longer than ``max_line_bytes``, or a body past ``max_bytes`` in all (None: no
    limit), raises ResponseTooLargeError as soon as it passes: no more than one line and one
    decoded slice are held at a time, however large or however encoded the body is. ``what``
    names the body in the error, ``line_option`` and ``option`` the limits.
    """
    request = _request_of(response)
    line_limit = max_line_bytes if max_line_bytes is not None else float("inf")
    total_limit = max_bytes if max_bytes is not None else float("inf")
    partial: list[bytes] = []
    partial_size = 0
    total = 0
    async for piece in aiter_decoded(response):
        total += len(piece)
        if total > total_limit:
            raise too_large(what, int(total_limit), option, request)
        start = 0
        while (end := piece.find(b"\n", start)) >= 0:
            line = piece[start:end]
            if partial:
                partial.append(line)
                line = b"".join(partial)
                partial, partial_size = [], 0
            if len(line) > line_limit:
                raise too_large(what, int(line_limit), line_option, request, past=_LONG_LINE)
            yield line.removesuffix(b"\r")
            start = end + 1
        if start < len(piece):
            partial.append(piece[start:])
            partial_size += len(piece) - start
            if partial_size > line_limit:
                raise too_large(what, int(line_limit), line_option, request, past=_LONG_LINE)
    if partial:
        yield b"".join(partial).removesuffix(b"\r")
