from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc

import httpx
import pytest

from nbchat import APIConnectionError, AsyncClient, ResponseTooLargeError
from nbchat.transport import batches
from tests.fakebatch import FakeBatchAPI
from tests.fakeserver import SECRET


def test_an_upload_is_multipart_with_purpose_batch_and_the_clients_auth():
    api = FakeBatchAPI()

    async def main():
        async with api.client() as client:
            return await batches.upload_batch_file(client, b'{"custom_id": "row-0"}\n')

    file_id = asyncio.run(main())
    assert file_id == "file-1"
    upload = api.uploads[0]
    assert upload["purpose"] == b"batch"
    assert upload["filename"] == "nbchat-batch.jsonl"
    assert api.files["file-1"] == b'{"custom_id": "row-0"}\n'


def test_a_batch_is_created_polled_cancelled_and_its_file_read_line_by_line():
    api = FakeBatchAPI(steps=2)
    line = {
        "custom_id": "row-0",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    }

    async def main():
        async with api.client() as client:
            file_id = await batches.upload_batch_file(client, json.dumps(line).encode())
            batch = await batches.create_batch(
                client, file_id, endpoint="/v1/chat/completions", metadata={"k": "v"}
            )
            first = await batches.retrieve_batch(client, batch["id"])
            done = await batches.retrieve_batch(client, batch["id"])
            lines = [text async for text in batches.file_lines(client, done["output_file_id"])]
            cancelled = await batches.cancel_batch(client, batch["id"])
            return batch, first, done, lines, cancelled

    batch, first, done, lines, cancelled = asyncio.run(main())
    assert batch["status"] == "validating"
    assert batch["metadata"] == {"k": "v"}
    assert batch["completion_window"] == "24h"
    assert first["status"] == "in_progress"
    assert done["status"] == "completed"
    assert json.loads(lines[0])["custom_id"] == "row-0"
    assert cancelled["status"] == "cancelling"
    assert "POST /batches/batch_1/cancel" in api.calls


def test_a_server_without_the_batch_api_gets_an_error_that_suggests_the_online_map():
    api = FakeBatchAPI(supported=False)

    async def main():
        async with api.client() as client:
            await batches.upload_batch_file(client, b"{}\n")

    with pytest.raises(batches.BatchUnsupportedError) as info:
        asyncio.run(main())
    message = str(info.value)
    assert "no Batch API" in message and "404" in message
    assert "via='batch'" in message and "online" in message
    assert SECRET not in message


def test_failed_uploads_are_retried_like_any_request():
    answers = [
        httpx.Response(503, json={"error": {"message": "busy"}}),
        httpx.Response(200, json={"id": "file-9"}),
    ]

    async def main():
        client = AsyncClient(
            api_key=SECRET,
            base_url="http://batch.test/v1",
            transport=httpx.MockTransport(lambda request: answers.pop(0)),
            max_retries=1,
        )

        async def no_wait(seconds):
            return None

        client.retry_wait = no_wait
        async with client:
            return await batches.upload_batch_file(client, b"{}\n")

    assert asyncio.run(main()) == "file-9"
    assert answers == []


def test_an_answer_that_is_not_a_json_object_is_a_batch_error():
    async def main():
        client = AsyncClient(
            api_key=SECRET,
            base_url="http://batch.test/v1",
            transport=httpx.MockTransport(lambda request: httpx.Response(200, content=b"[1]")),
        )
        async with client:
            await batches.retrieve_batch(client, "batch_1")

    with pytest.raises(batches.BatchError, match="not a JSON object"):
        asyncio.run(main())


# -- files read within the client's limits ----------------------------------------------------


def _lines_of(client, file_id):
    async def main():
        async with client:
            return [text async for text in batches.file_lines(client, file_id)]

    return asyncio.run(main())


def test_a_file_past_max_file_bytes_stops_with_a_one_line_error():
    api = FakeBatchAPI()
    api.files["file-9"] = b'{"custom_id": "row-0"}\n' * 1000
    assert len(_lines_of(api.client(), "file-9")) == 1000
    with pytest.raises(ResponseTooLargeError) as info:
        _lines_of(api.client(max_file_bytes=10_000), "file-9")
    message = str(info.value)
    assert message == (
        "The server's batch file file-9 is larger than the 10,000 bytes limit (max_file_bytes); "
        "reading stopped there."
    )
    assert info.value.limit == 10_000


def test_a_line_past_max_event_bytes_stops_with_a_one_line_error_and_crlf_lines_are_read():
    api = FakeBatchAPI()
    api.files["file-9"] = b'{"a": 1}\r\n{"b": 2}\r\n\r\n' + b"x" * 5000 + b"\n"
    with pytest.raises(ResponseTooLargeError, match="has a line longer than the 4 KiB limit"):
        _lines_of(api.client(max_event_bytes=4096), "file-9")
    api.files["file-9"] = b'{"a": 1}\r\n{"b": 2}\r\n\r\n{"c": 3}'
    assert _lines_of(api.client(), "file-9") == ['{"a": 1}', '{"b": 2}', '{"c": 3}']


def test_a_compressed_file_is_decoded_a_slice_at_a_time_holding_about_one_line():
    # Over real HTTP: 64 MiB of output in a 64 KiB gzip, all one line. httpx's own line reader
    # would hold all of it; this stops at the line limit holding about that much.
    api = FakeBatchAPI()
    api.files["file-9"] = gzip.compress(b"x" * 64 * 2**20)
    api.encodings["file-9"] = "gzip"
    with api.serve() as server:
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLargeError, match=r"line longer than the 1 MiB limit"):
                _lines_of(api.loop_client(server, max_event_bytes=2**20), "file-9")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 4 * 2**20
    # The same file in lines, past max_file_bytes, is refused once that much is decoded.
    api.files["file-9"] = gzip.compress(b'{"custom_id": "row-0"}\n' * 2**20)
    with api.serve() as server:
        with pytest.raises(ResponseTooLargeError, match=r"larger than the 2 MiB limit"):
            _lines_of(api.loop_client(server, max_file_bytes=2 * 2**20), "file-9")
        # Within the limits it is read whole, over HTTP too.
        api.files["file-9"] = gzip.compress(b'{"custom_id": "row-0"}\n' * 3)
        assert len(_lines_of(api.loop_client(server), "file-9")) == 3


def test_a_connection_lost_while_reading_a_file_is_an_api_connection_error_without_the_key():
    class CutOff(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield b'{"custom_id": "row-0"}\n{"custom_'
            raise httpx.ReadError(f"connection reset (Bearer {SECRET})")

    client = AsyncClient(
        api_key=SECRET,
        base_url="http://batch.test/v1",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, stream=CutOff())),
    )
    seen = []

    async def main():
        async with client:
            async for text in batches.file_lines(client, "file-1"):
                seen.append(text)

    with pytest.raises(APIConnectionError, match="failed") as info:
        asyncio.run(main())
    assert seen == ['{"custom_id": "row-0"}']
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.__cause__)
