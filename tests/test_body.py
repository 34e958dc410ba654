from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from nbchat.protocol.exceptions import (
    APIResponseValidationError,
    ResponseDecodingError,
    ResponseTooLargeError,
)
from nbchat.transport.body import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_STREAM_BYTES,
    aiter_decoded,
    aread_body,
    iter_decoded,
    read_body,
    size_text,
)

TEXT = ("秋风起, the wind of autumn. " * 400).encode()
URL = "http://server.test/v1/chat/completions"


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def response(
    data: bytes | Iterator[bytes], encoding: str | None, *, size: int = 13
) -> httpx.Response:
    """A response as a transport hands it over: headers, and a body not read yet."""
    stream = pieces(data, size) if isinstance(data, bytes) else data
    headers = {"content-encoding": encoding} if encoding else {}
    return httpx.Response(200, headers=headers, content=stream, request=httpx.Request("POST", URL))


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def zeros_gzip(mebibytes: int) -> Iterator[bytes]:
    """gzip of ``mebibytes`` MiB of zeros, made a piece at a time (about 1 KiB per MiB).

    After a full flush the compressor's output for another MiB of zeros is the same bytes, so
    one piece repeated makes any size without compressing it all. The trailer is never reached
    by a reader that stops at its limit.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(2**20)
    yield compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    for _ in range(mebibytes - 2):
        yield piece
    yield piece + compressor.flush()


ENCODED = {
    "gzip": ("gzip", gzip.compress(TEXT)),
    "x-gzip": ("x-gzip", gzip.compress(TEXT)),
    "deflate": ("deflate", zlib.compress(TEXT)),
    "raw deflate": ("deflate", raw_deflate(TEXT)),  # as some servers send deflate
    "gzip then deflate": ("gzip, deflate", zlib.compress(gzip.compress(TEXT))),
    "identity": ("identity", TEXT),
    "upper case": ("GZIP", gzip.compress(TEXT)),
    "none": (None, TEXT),
}


@pytest.mark.parametrize("case", list(ENCODED))
@pytest.mark.parametrize("size", [1, 7, 4096, 10**6])
def test_each_encoding_decodes_to_the_same_bytes_whatever_the_reads(case: str, size: int) -> None:
    encoding, encoded = ENCODED[case]
    assert read_body(response(encoded, encoding, size=size), None) == TEXT
    assert b"".join(iter_decoded(response(encoded, encoding, size=size))) == TEXT


def test_a_gzip_body_of_several_members_is_read_whole() -> None:
    body = gzip.compress(b"first ") + gzip.compress(b"second")
    for size in (1, 2, 3, len(body)):
        assert read_body(response(body, "gzip", size=size), None) == b"first second"


def test_bytes_after_the_end_of_compressed_data_are_ignored_without_being_kept() -> None:
    garbage = (bytes([7]) * 2**16 for _ in range(200))  # 12.5 MiB after the end
    body = iter([zlib.compress(b"ok"), *garbage])
    tracemalloc.start()
    try:
        assert read_body(response(body, "deflate"), None) == b"ok"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20


def test_an_empty_body_that_claims_gzip_is_empty() -> None:
    assert read_body(response(b"", "gzip"), None) == b""


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_body_that_is_not_in_its_encoding_is_a_one_line_decoding_error(encoding: str) -> None:
    with pytest.raises(ResponseDecodingError) as info:
        read_body(response(b'{"choices": []}', encoding), None)
    message = str(info.value)
    assert f"claims Content-Encoding {encoding}" in message or f"its {encoding} data" in message
    assert "\n" not in message
    assert isinstance(info.value, APIResponseValidationError)
    assert info.value.request is not None and str(info.value.request.url) == URL


def test_a_gzip_body_cut_short_is_a_decoding_error() -> None:
    with pytest.raises(ResponseDecodingError, match="ends in the middle of its gzip data"):
        read_body(response(gzip.compress(TEXT)[:-30], "gzip"), None)


def test_a_decoding_error_in_a_stream_is_ours_too() -> None:
    with pytest.raises(ResponseDecodingError):
        list(iter_decoded(response(b"data: {}\n\n", "gzip")))


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
def test_encodings_nbchat_did_not_ask_for_are_refused_by_name(encoding: str) -> None:
    with pytest.raises(ResponseDecodingError) as info:
        read_body(response(b"\x00" * 10, encoding), None)
    assert "did not ask for" in str(info.value)
    assert encoding.split(", ")[-1] in str(info.value)


def test_nbchat_asks_only_for_what_it_decodes_in_slices() -> None:
    assert ACCEPT_ENCODING == "gzip, deflate"


def test_a_body_within_the_limit_is_read_and_one_past_it_is_refused() -> None:
    assert read_body(response(TEXT, None), len(TEXT)) == TEXT
    with pytest.raises(ResponseTooLargeError) as info:
        read_body(response(TEXT, None), len(TEXT) - 1)
    assert info.value.limit == len(TEXT) - 1
    assert "max_response_bytes" in str(info.value)


def test_the_limit_counts_decoded_bytes_not_the_bytes_on_the_wire() -> None:
    encoded = gzip.compress(TEXT)
    assert len(encoded) < 1000 < len(TEXT)
    with pytest.raises(ResponseTooLargeError):
        read_body(response(encoded, "gzip"), 1000)


def test_the_response_is_closed_whether_it_is_read_or_refused() -> None:
    read = response(TEXT, None)
    read_body(read, None)
    refused = response(TEXT, None)
    with pytest.raises(ResponseTooLargeError):
        read_body(refused, 10)
    assert read.is_closed and refused.is_closed


def test_a_gzip_bomb_is_refused_at_the_limit_holding_no_more_than_the_limit() -> None:
    # 5 GiB of zeros in about 5 MB of gzip, read through the default limit of 32 MiB.
    sent = 0

    def bomb() -> Iterator[bytes]:
        nonlocal sent
        for piece in zeros_gzip(5 * 1024):
            sent += len(piece)
            yield piece

    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLargeError, match="32 MiB"):
            read_body(response(bomb(), "gzip"), DEFAULT_MAX_RESPONSE_BYTES)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < DEFAULT_MAX_RESPONSE_BYTES + 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert sent < 100_000  # reading stopped within the first 35 KB of the 5 MB


def test_decoded_pieces_of_a_bomb_are_small() -> None:
    stream = iter_decoded(response(zeros_gzip(64), "gzip"))
    sizes = [len(next(stream)) for _ in range(100)]
    stream.close()
    assert max(sizes) <= 64 * 1024


def test_a_response_httpx_read_already_is_taken_as_it_is() -> None:
    # httpx.MockTransport responses built from bytes are read (and decoded) when built.
    built = httpx.Response(
        200,
        content=gzip.compress(b"hello"),
        headers={"content-encoding": "gzip"},
        request=httpx.Request("POST", URL),
    )
    assert read_body(built, None) == b"hello"
    with pytest.raises(ResponseTooLargeError):
        read_body(httpx.Response(200, content=b"hello", request=httpx.Request("POST", URL)), 4)


async def _apieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for piece in pieces(data, size):
        await asyncio.sleep(0)
        yield piece


def _aresponse(data: bytes, encoding: str | None) -> httpx.Response:
    headers = {"content-encoding": encoding} if encoding else {}
    return httpx.Response(
        200, headers=headers, content=_apieces(data, 11), request=httpx.Request("POST", URL)
    )


def test_async_reading_decodes_limits_and_refuses_alike() -> None:
    async def run() -> None:
        assert await aread_body(_aresponse(gzip.compress(TEXT), "gzip"), None) == TEXT
        joined = b"".join(
            [p async for p in aiter_decoded(_aresponse(zlib.compress(TEXT), "deflate"))]
        )
        assert joined == TEXT
        with pytest.raises(ResponseTooLargeError):
            await aread_body(_aresponse(TEXT, None), 100)
        with pytest.raises(ResponseDecodingError):
            await aread_body(_aresponse(b"not gzip", "gzip"), None)
        with pytest.raises(ResponseDecodingError):
            await aread_body(_aresponse(b"x", "br"), None)

    asyncio.run(run())


def test_limits_are_shown_as_people_write_them() -> None:
    assert size_text(DEFAULT_MAX_RESPONSE_BYTES) == "32 MiB"
    assert size_text(DEFAULT_MAX_STREAM_BYTES) == "32 MiB"
    assert size_text(2**30) == "1 GiB"
    assert size_text(64 * 1024) == "64 KiB"
    assert size_text(1000) == "1,000 bytes"
