"""A tiny OpenAI-compatible chat server on loopback for the browser test, streaming slowly.

It answers GET /v1/models and POST /v1/chat/completions (streamed SSE, with logprobs on request).
A prompt saying "hostile" gets a reply full of active content (ours, then tests/hostile.py's
corpus), one saying "fail" an error whose message is; any other GET (a remote image the reply
names) is counted in ``fetched``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.hostile import PAYLOADS

MODEL = "slow-model"
SHORT = "Hello from the test server!"
# Long enough that Stop lands well before the end.
LONG = " ".join(f"word{i}" for i in range(400))
# Each payload would set window.__nbchatPwned (or hide the notebook, or fetch from this server)
# if the front end ran it. The Markdown around them must still render: heading, table, code.
PWNED = "__nbchatPwned"
HOSTILE = (
    "### Hostile reply\n\n"
    "Some **bold** words, `code <b>kept</b>` and a table:\n\n"
    "| tag | kept as |\n|---|---|\n| script | text |\n\n"
    f'<img src="x" onerror="window.{PWNED}=\'img\'">\n\n'
    f"<script>window.{PWNED}='script'</script>\n\n"
    f'<svg onload="window.{PWNED}=\'svg\'"></svg> <details open ontoggle="window.{PWNED}=1">\n\n'
    f"<iframe srcdoc=\"<script>parent.{PWNED}='iframe'</script>\"></iframe>\n\n"
    f"[click me](javascript:window.{PWNED}='link') and [ref][r]\n\n"
    f"[r]: javascript:window.{PWNED}='ref'\n\n"
    "![tracker]({base}/tracker.png?leak=secret)\n\n"
    "<style>.jp-Notebook {{ display: none }}</style>\n\n"
    "```html\n<b>not bold</b> <script>window.{pwned}='fence'</script>\n```\n"
).replace("{pwned}", PWNED) + "\n\n".join(["", "#### The test corpus", *PAYLOADS.values()]).replace(
    "{", "{{"
).replace("}", "}}")
ERROR_MESSAGE = f"Bad <img src=x onerror=\"window.{PWNED}='error'\"> request"


class LLMServer:
    """``with LLMServer() as server:`` serves on ``server.base_url`` (…/v1) in a thread."""

    def __init__(self, *, delay: float = 0.05) -> None:
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.disconnects = 0
        self.fetched: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
                else:
                    owner.fetched.append(self.path)
                    self._json(404, {"error": {"message": f"No route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                owner.requests.append(body)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._json(404, {"error": {"message": f"No route {self.path}"}})
                    return
                if "fail" in _prompt(body).lower():
                    error = {"message": ERROR_MESSAGE, "type": "invalid_request_error"}
                    self._json(400, {"error": error})
                    return
                if body.get("stream"):
                    owner._stream(self, body)
                else:
                    self._json(200, owner._completion(body))

            def _json(self, status: int, data: Any) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> LLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """An unstreamed reply (``nbchat.map`` sends its rows so): the prompt, answered."""
        time.sleep(self.delay)
        text = f"{SHORT} ({_prompt(body)})"
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16},
        }

    def _stream(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        prompt = _prompt(body).lower()
        size = 6
        if "hostile" in prompt:
            root = self.base_url.removesuffix("/v1")
            text, size = HOSTILE.format(base=root), 120
        else:
            text = LONG if "long" in prompt else SHORT
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("cache-control", "no-cache")
        handler.end_headers()
        base = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": MODEL,
        }

        def send(choices: list[Any], **extra: Any) -> None:
            data = json.dumps({**base, "choices": choices, **extra})
            handler.wfile.write(f"data: {data}\n\n".encode())
            handler.wfile.flush()

        try:
            send([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
            for i, piece in enumerate(pieces):
                time.sleep(self.delay)
                choice: dict[str, Any] = {"index": 0, "delta": {"content": piece}}
                if body.get("logprobs"):
                    p = 0.95 if i % 3 else 0.2
                    # As many alternatives as asked for (five from the panel and --logprobs).
                    others = max(int(body.get("top_logprobs") or 2), 2) - 1
                    top = [{"token": piece, "logprob": math.log(p)}] + [
                        {
                            "token": f"{piece.upper()}{n or ''}",
                            "logprob": math.log((1 - p) / 2 / (n + 1)),
                        }
                        for n in range(others)
                    ]
                    choice["logprobs"] = {
                        "content": [{"token": piece, "logprob": math.log(p), "top_logprobs": top}]
                    }
                send([choice])
            send([{"index": 0, "delta": {}, "finish_reason": "stop"}])
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {
                    "prompt_tokens": 7,
                    "completion_tokens": len(pieces),
                    "total_tokens": 7 + len(pieces),
                }
                send([], usage=usage)
            handler.wfile.write(b"data: [DONE]\n\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.disconnects += 1


def _prompt(body: dict[str, Any]) -> str:
    return str(body["messages"][-1].get("content", ""))
