"""A fake of the Batch API (``/files``, ``/batches``, file contents) behind httpx.MockTransport.

Each look at a batch moves it on: validating → in_progress → completed. When it completes, every
input line is answered as the real service does: an echo completion in the output file, or, for
a prompt containing "fail", an error line in the error file; a prompt containing "lose" gets no
line anywhere; a prompt that is JSON is answered with itself. ``output`` rewrites the output
file as it is stored (and may give it a Content-Encoding). ``serve()`` puts the same API behind
a real loopback HTTP server, for what httpx.MockTransport cannot show (bytes as they arrive).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
from collections.abc import Callable
from typing import Any

import httpx

from nbchat import AsyncClient
from tests.fakeserver import SECRET
from tests.loopserver import LoopServer, completion

# The output file's bytes -> (the bytes stored, their Content-Encoding or None).
Rewrite = Callable[[bytes], tuple[bytes, str | None]]


def _answer(text: str) -> str:
    # A prompt that is JSON is answered with itself (for schemas); others are echoed.
    return text if text.startswith("{") else "re: " + text


class FakeBatchAPI:
    def __init__(
        self,
        *,
        steps: int = 2,
        supported: bool = True,
        fail_batch: bool = False,
        fail_only: frozenset[str] = frozenset(),
        output: Rewrite | None = None,
    ) -> None:
        self.steps = steps
        self.output = output
        self.encodings: dict[str, str] = {}
        self.supported = supported
        self.fail_batch = fail_batch
        #: The ids of the batches that fail (all of them with fail_batch).
        self.fail_only = fail_only
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.uploads: list[dict[str, Any]] = []
        self.cancelled: list[str] = []

    def client(self, **options: Any) -> AsyncClient:
        client = AsyncClient(
            api_key=SECRET,
            base_url="http://batch.test/v1",
            transport=httpx.MockTransport(self.handle),
            max_retries=0,
            **options,
        )
        return client

    def serve(self) -> LoopServer:
        """A loopback HTTP server answering with this API (use it as a context manager)."""

        def route(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple:
            url = f"http://batch.test{path}"
            response = self.handle(httpx.Request(method, url, headers=headers, content=body))
            sent = {
                name: value
                for name, value in response.headers.items()
                if name not in ("content-length", "transfer-encoding")
            }
            # The bytes as stored, never decoded here.
            return response.status_code, sent, b"".join(response.stream)  # type: ignore[arg-type]

        return LoopServer(route=route)

    def loop_client(self, server: LoopServer, **options: Any) -> AsyncClient:
        """An AsyncClient of this API over ``server`` (from ``serve()``), real HTTP."""
        return AsyncClient(
            api_key=SECRET,
            base_url=server.base_url,
            transport=httpx.AsyncHTTPTransport(),
            max_retries=0,
            **options,
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1")
        self.calls.append(f"{request.method} {path}")
        assert request.headers.get("authorization") == f"Bearer {SECRET}"
        if not self.supported:
            return httpx.Response(404, json={"detail": "Not Found"})
        if request.method == "POST" and path == "/files":
            return self._upload(request)
        if request.method == "POST" and path == "/batches":
            return self._create(json.loads(request.content))
        if request.method == "GET" and path.startswith("/batches/"):
            if path.split("/")[2] not in self.batches:
                return httpx.Response(404, json={"error": {"message": "No such batch"}})
            return httpx.Response(200, json=self._advance(path.split("/")[2]))
        if request.method == "POST" and path.endswith("/cancel"):
            batch_id = path.split("/")[2]
            self.cancelled.append(batch_id)
            self.batches[batch_id]["status"] = "cancelling"
            return httpx.Response(200, json=self.batches[batch_id])
        if request.method == "GET" and path.startswith("/files/") and path.endswith("/content"):
            file_id = path.split("/")[2]
            encoding = self.encodings.get(file_id)
            headers = {"content-encoding": encoding} if encoding else {}
            # A stream: httpx would otherwise decode an encoded file here, in the fake.
            stream = httpx.ByteStream(self.files[file_id])
            return httpx.Response(200, stream=stream, headers=headers)
        if path == "/chat/completions":
            raise AssertionError("a batch run must not send completions itself")
        return httpx.Response(404, json={"error": {"message": f"no {path}"}})

    def _upload(self, request: httpx.Request) -> httpx.Response:
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            head + request.content
        )
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = part.get_payload(decode=True)
            if part.get_filename():
                fields["filename"] = part.get_filename()
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = fields["file"]
        self.uploads.append(fields)
        return httpx.Response(
            200, json={"id": file_id, "object": "file", "purpose": fields["purpose"].decode()}
        )

    def _create(self, body: dict[str, Any]) -> httpx.Response:
        batch_id = f"batch_{len(self.batches) + 1}"
        lines = [json.loads(line) for line in self.files[body["input_file_id"]].splitlines()]
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "input_file_id": body["input_file_id"],
            "completion_window": body["completion_window"],
            "status": "validating",
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "_lines": lines,
            "_looks": 0,
        }
        return httpx.Response(200, json=self._public(self.batches[batch_id]))

    def _advance(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        batch["_looks"] += 1
        if batch["status"] == "cancelling":
            batch["status"] = "cancelled"
        elif batch["status"] not in ("completed", "failed", "cancelled"):
            if self.fail_batch or batch_id in self.fail_only:
                batch["status"] = "failed"
                batch["errors"] = {
                    "object": "list",
                    "data": [{"code": "invalid_model", "message": "no such model", "line": 1}],
                }
            elif batch["_looks"] >= self.steps:
                self._complete(batch)
            else:
                batch["status"] = "in_progress"
                batch["request_counts"]["completed"] = len(batch["_lines"]) // 2
        return self._public(batch)

    def _complete(self, batch: dict[str, Any]) -> None:
        output, errors = [], []
        for line in batch["_lines"]:
            text = line["body"]["messages"][-1]["content"]
            if "lose" in text:
                continue
            if "fail" in text:
                errors.append(
                    {
                        "id": "r",
                        "custom_id": line["custom_id"],
                        "response": {
                            "status_code": 400,
                            "request_id": "req",
                            "body": {"error": {"message": "bad row", "code": "invalid_value"}},
                        },
                        "error": None,
                    }
                )
                continue
            output.append(
                {
                    "id": "r",
                    "custom_id": line["custom_id"],
                    "response": {
                        "status_code": 200,
                        "request_id": "req",
                        "body": completion(line["body"]["model"], _answer(text)),
                    },
                    "error": None,
                }
            )
        output.reverse()  # the service writes lines in any order
        batch["status"] = "completed"
        counts = batch["request_counts"]
        counts["completed"], counts["failed"] = len(output), len(errors)
        batch["output_file_id"] = self._store(output)
        if self.output is not None:
            stored, encoding = self.output(self.files[batch["output_file_id"]])
            self.files[batch["output_file_id"]] = stored
            if encoding:
                self.encodings[batch["output_file_id"]] = encoding
        batch["error_file_id"] = self._store(errors) if errors else None

    def _store(self, records: list[dict[str, Any]]) -> str:
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = "".join(json.dumps(r) + "\n" for r in records).encode()
        return file_id

    @staticmethod
    def _public(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}
