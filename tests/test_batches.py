from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from nbchat import AsyncClient
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

        client._sleep = no_wait
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
