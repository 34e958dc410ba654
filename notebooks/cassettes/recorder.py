"""What the cassette makers share: run a notebook's cells in an IPython shell with
``NBCHAT_REPLAY=record`` against a scripted server, and write the cassette they make.

Cells tagged ``raises-exception`` (requests a cassette must lack, refusals) or ``no-cassette``
(cells that talk to the local model) are skipped.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

SKIPPED = ("raises-exception", "no-cassette")


def record(notebook: str, answer: Callable[[httpx.Request], httpx.Response]) -> None:
    """Record ``notebooks/<notebook>.ipynb``'s requests into ``cassettes/<notebook>.json``."""
    from IPython.core.interactiveshell import InteractiveShell

    from nbchat import Client
    from nbchat.conversation import sessions

    cassette = HERE / f"{notebook}.json"
    cassette.unlink(missing_ok=True)
    os.environ["NBCHAT_STORE"] = str(Path(tempfile.mkdtemp()) / "nbchat.db")
    # A key only to pass the check that OpenAI gets one: the scripted server never sees it, and
    # a cassette never holds a header.
    client = Client(
        api_key="sk-scripted-server",
        base_url="https://api.openai.com/v1",
        transport=httpx.MockTransport(answer),
    )
    sessions.client_for = lambda settings: client
    os.chdir(HERE.parent)
    shell = InteractiveShell.instance()
    cells = nbformat.read(HERE.parent / f"{notebook}.ipynb", as_version=4).cells
    for cell in cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code" or any(tag in tags for tag in SKIPPED):
            continue
        result = shell.run_cell(cell.source)
        if not result.success:
            # The notebook's checks of replayed replies (reply.cached…) fail while recording.
            print(f"(a cell failed while recording: {cell.source.splitlines()[0][:70]!r})")
        if os.environ.get("NBCHAT_REPLAY") == "replay":
            os.environ["NBCHAT_REPLAY"] = "record"  # the setup cell asks for replay
    finish(cassette)


def finish(cassette: Path) -> None:
    """Write the cassette the recording made, with no latencies (a scripted server's speed
    says nothing), and say how many interactions it holds."""
    from nbchat.store.replay import _cassettes

    _cassettes.clear()
    data = json.loads(cassette.read_text())
    for interaction in data["interactions"]:
        interaction["latency"] = None
    cassette.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    print(f"{cassette}: {len(data['interactions'])} interactions")


def completion(message: dict, usage: dict, **fields: object) -> dict:
    """A one-choice ``chat.completion`` saying ``message`` (finishing with its tool calls, if it
    makes any), with ``fields`` (id, created, model…) and ``usage`` and its total."""
    reason = "tool_calls" if message.get("tool_calls") else "stop"
    total = usage["prompt_tokens"] + usage["completion_tokens"]
    return {
        "object": "chat.completion",
        **fields,
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": reason}
        ],
        "usage": {**usage, "total_tokens": total},
    }


def stream_or_whole(body: dict, reply: dict) -> httpx.Response:
    """``reply`` as the server sends it: streamed when the request asks, else whole."""
    from tests.fakeserver import sse_events

    if body.get("stream"):
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = list(sse_events(reply, usage=usage))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=events)
    return httpx.Response(200, json=reply)
