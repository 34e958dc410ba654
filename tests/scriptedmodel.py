"""A scripted model on a real loopback HTTP server: each request gets the next reply of a script
(text, or tool calls to ask for), streamed as SSE when the request streams. For tests that need
a model outside the process (a notebook kernel, terminal IPython, JupyterLab), and for trying
the agent and MCP tools by hand:

    python -m tests.scriptedmodel script.json    # prints its base URL; Ctrl-C stops it

``script.json`` is a list of replies: ``"text"`` or ``{"content": ..., "tool_calls": [{"name":
..., "arguments": {...}}]}``. Past the end of the script every request gets "(end of script)".
"""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

from tests.fakeserver import FakeServer, sse_events
from tests.loopserver import LoopServer


class ScriptedModel:
    """``start()`` it (a thread), point a client at ``base_url``; ``requests`` are the bodies."""

    def __init__(self, script: list[Any] | None = None) -> None:
        self._fake = FakeServer()
        self._queued: deque[dict[str, Any]] = deque()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.server = LoopServer(handler=self._answer)
        for reply in script or ():
            self.add(reply)

    def add(self, reply: Any) -> ScriptedModel:
        if isinstance(reply, str):
            reply = {"content": reply}
        self._fake.reply(reply.get("content"), tool_calls=reply.get("tool_calls"))
        _, completion, _ = self._fake._replies.pop()
        self._queued.append(completion)
        return self

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def start(self) -> ScriptedModel:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> ScriptedModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, request: dict[str, Any], server: LoopServer) -> Any:
        with self._lock:
            self.requests.append(request)
            if self._queued:
                completion = self._queued.popleft()
            else:
                self._fake.reply("(end of script)")
                _, completion, _ = self._fake._replies.pop()
        completion = {**completion, "model": request.get("model") or completion["model"]}
        if request.get("stream"):
            usage = bool((request.get("stream_options") or {}).get("include_usage"))
            events = b"".join(sse_events(completion, usage=usage)) + b"data: [DONE]\n\n"
            return 200, {"content-type": "text/event-stream"}, events
        return 200, {}, completion


def main() -> None:
    script = json.loads(Path(sys.argv[1]).read_text()) if len(sys.argv) > 1 else []
    model = ScriptedModel(script).start()
    print(model.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        model.stop()


if __name__ == "__main__":
    main()
