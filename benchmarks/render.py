"""Rendering cost of a streamed reply: a 10,000-token reply through %%chat with a fake display,
against the same stream through the conversation with no display at all.

    python benchmarks/render.py [--tokens 10000] [--repeat 5]

Reports live updates sent and CPU time (best of --repeat); the target is at most 1.5x.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from IPython.core.displaypub import DisplayPublisher
from IPython.testing import globalipapp

import nbchat
from nbchat import _sessions


def stream_bytes(tokens: int) -> list[bytes]:
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    words = ["alpha ", "beta ", "gamma ", "delta\n\n", "`code` ", "**bold** "]
    events = []
    for i in range(tokens):
        delta = {"content": words[i % len(words)]}
        events.append({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": tokens + 5}
    events.append({**head, "choices": [], "usage": usage})
    return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]


def client_for(events: list[bytes]) -> nbchat.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter(events))

    return nbchat.Client(
        api_key="", base_url="http://bench.test/v1", transport=httpx.MockTransport(handler)
    )


class CountingPublisher(DisplayPublisher):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.published = 0
        self.updates = 0

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        self.published += 1
        self.updates += bool(update)

    def clear_output(self, wait=False):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    events = stream_bytes(args.tokens)

    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    ip.run_line_magic("config", "Chat.display = 'live'")
    ip.run_line_magic("config", "Chat.model = 'm'")
    publisher = CountingPublisher(shell=ip)
    ip.display_pub = publisher
    _sessions.client_for = lambda settings: client_for(events)

    on, off, updates = [], [], []
    for _ in range(args.repeat):
        publisher.published = publisher.updates = 0
        start = time.process_time()
        ip.run_cell_magic("chat", "--new", "write a lot")
        on.append(time.process_time() - start)
        updates.append(publisher.published)

        chat = nbchat.Chat("m", client=client_for(events))
        start = time.process_time()
        chat.send("write a lot")
        off.append(time.process_time() - start)

    best_on, best_off = min(on), min(off)
    print(f"reply: {args.tokens} tokens ({sum(len(e) for e in events) / 1e6:.2f} MB of SSE)")
    print(f"display updates sent: {max(updates)} (live area opened/updated/finished)")
    for label, times in (("display off: ", off), ("live display:", on)):
        best, median = min(times) * 1000, statistics.median(times) * 1000
        print(f"CPU, {label} best {best:7.1f} ms  median {median:7.1f} ms")
    print(f"ratio live/off: {best_on / best_off:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
