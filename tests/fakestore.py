"""A fake of OpenAI's stored completions behind httpx.MockTransport (and, with ``serve()``, a
real loopback HTTP server): ``POST /chat/completions`` answers and, with ``store: true``, keeps
the request and its reply; ``GET /chat/completions`` lists them (``model``, ``metadata[k]``,
``limit``, ``order``, ``after``), ``GET``/``POST``/``DELETE /chat/completions/{id}`` read,
re-label and delete one, ``GET …/{id}/messages`` pages through its messages. ``supported=False``
answers every one of those as a server without them does (405 for the list, 404 otherwise).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import httpx

from nbchat import AsyncClient, Client
from tests.fakeserver import SECRET
from tests.loopserver import LoopServer


class FakeStore:
    def __init__(self, *, supported: bool = True) -> None:
        self.supported = supported
        self.stored: dict[str, dict[str, Any]] = {}
        self.requests: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self._created = 1_800_000_000

    def client(self, **options: Any) -> Client:
        return Client(
            api_key=SECRET,
            base_url="http://store.test/v1",
            transport=httpx.MockTransport(self.handle),
            max_retries=0,
            **options,
        )

    def async_client(self, **options: Any) -> AsyncClient:
        return AsyncClient(
            api_key=SECRET,
            base_url="http://store.test/v1",
            transport=httpx.MockTransport(self.handle),
            max_retries=0,
            **options,
        )

    def serve(self) -> LoopServer:
        """A loopback HTTP server answering with this API (use it as a context manager)."""

        def route(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple:
            request = httpx.Request(
                method, f"http://store.test{path}", headers=headers, content=body
            )
            response = self.handle(request)
            sent = {k: v for k, v in response.headers.items() if k != "content-length"}
            return response.status_code, sent, response.content

        def create(body: dict[str, Any], server: LoopServer) -> tuple:
            response = self._create(body)
            return response.status_code, {}, response.content

        return LoopServer(route=route, handler=create)

    # -- the API --------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        raw = request.url.raw_path.decode().split("?")[0].removeprefix("/v1")
        path = request.url.path.removeprefix("/v1")
        self.calls.append(f"{request.method} {raw}")
        if request.url.query:
            self.calls[-1] += "?" + request.url.query.decode()
        assert request.headers.get("authorization") == f"Bearer {SECRET}"
        if request.method == "POST" and path == "/chat/completions":
            return self._create(json.loads(request.content))
        if not self.supported:
            if path == "/chat/completions":
                return httpx.Response(405, json={"detail": "Method Not Allowed"})
            return httpx.Response(404, json={"detail": "Not Found"})
        # "", "chat", "completions", id, "messages": split before decoding, as a server does.
        parts = [unquote(part) for part in raw.split("/")]
        if path == "/chat/completions" and request.method == "GET":
            return self._list(request.url.params)
        if len(parts) < 4 or parts[1:3] != ["chat", "completions"]:
            return httpx.Response(404, json={"detail": "Not Found"})
        completion_id = parts[3]
        if completion_id not in self.stored:
            message = f"No chat completion found with id '{completion_id}'."
            error = {"message": message, "type": "invalid_request_error", "param": None}
            return httpx.Response(404, json={"error": {**error, "code": None}})
        if len(parts) == 5 and parts[4] == "messages" and request.method == "GET":
            return self._messages(completion_id, request.url.params)
        if len(parts) == 4 and request.method == "GET":
            return httpx.Response(200, json=self.stored[completion_id])
        if len(parts) == 4 and request.method == "POST":
            metadata = json.loads(request.content)["metadata"]
            self.stored[completion_id]["metadata"] = metadata
            return httpx.Response(200, json=self.stored[completion_id])
        if len(parts) == 4 and request.method == "DELETE":
            del self.stored[completion_id]
            deleted = {"object": "chat.completion.deleted", "id": completion_id, "deleted": True}
            return httpx.Response(200, json=deleted)
        return httpx.Response(405, json={"detail": "Method Not Allowed"})

    def _create(self, body: dict[str, Any]) -> httpx.Response:
        self._created += 1
        number = len(self.requests) + 1
        completion_id = f"chatcmpl-{number:03d}"
        prompt = body["messages"][-1]["content"]
        completion = {
            "id": completion_id,
            "object": "chat.completion",
            "created": self._created,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"re: {prompt}", "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
            "metadata": body.get("metadata") or {},
        }
        self.requests[completion_id] = body
        if body.get("store"):
            self.stored[completion_id] = completion
        return httpx.Response(200, json=completion)

    def _list(self, params: httpx.QueryParams) -> httpx.Response:
        items = sorted(self.stored.values(), key=lambda c: c["created"])
        if params.get("order") == "desc":
            items.reverse()
        if "model" in params:
            items = [c for c in items if c["model"] == params["model"]]
        wanted = {
            k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")
        }
        items = [c for c in items if wanted.items() <= (c.get("metadata") or {}).items()]
        return httpx.Response(200, json=_page(items, params))

    def _messages(self, completion_id: str, params: httpx.QueryParams) -> httpx.Response:
        messages = [
            {
                "id": f"{completion_id}-{i}",
                "role": m["role"],
                "content": m.get("content"),
                "refusal": None,
                "content_parts": None,
            }
            for i, m in enumerate(self.requests[completion_id]["messages"])
        ]
        return httpx.Response(200, json=_page(messages, params))


def _page(items: list[dict[str, Any]], params: httpx.QueryParams) -> dict[str, Any]:
    after = params.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    limit = int(params.get("limit", 20))
    shown = items[:limit]
    return {
        "object": "list",
        "data": shown,
        "first_id": shown[0]["id"] if shown else None,
        "last_id": shown[-1]["id"] if shown else None,
        "has_more": len(items) > limit,
    }
