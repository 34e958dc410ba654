"""Rendering cost of a streamed reply through %%chat with a fake display, against the same stream
through the conversation with no display at all: a 10,000-token text reply (one short paragraph
every four words), a 10,000-token reply shaped like a model's Markdown answer, and a tool call
whose 200 KB of arguments arrive in 4-character pieces.

    python benchmarks/render.py [--tokens 10000] [--tool-kb 200] [--piece 4] [--repeat 5]

Reports live updates sent and CPU time (best of --repeat) for each case; the target is at most
1.5x in both.
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
from nbchat.conversation import sessions as _sessions

# A reply shaped like a model's Markdown answer: sections of paragraphs, lists, code, a table.
DOCUMENT = """## Section {n}

The quick brown fox jumps over the lazy dog while **the model** explains, in some detail, why \
`itertools.groupby` needs sorted input, how a generator keeps its frame alive between calls, \
and what $O(n \\log n)$ means for a list of a million items. It goes on for a while, as \
answers do, with a [link](https://docs.python.org/3/) and a few *asides* along the way.

- first point, with `code` in it
- second point, a little longer than the first one
- third point: $a^2 + b^2 = c^2$

```python
def pairs(items):
    for a, b in zip(items, items[1:]):
        if a < b:
            yield a, b
```

| name | value |
|------|-------|
| alpha | 1 |
| beta | 2 |

"""


def words_of(text: str) -> list[str]:
    """Pieces of about four characters, as a tokenizer emits them."""
    return [text[i : i + 4] for i in range(0, len(text), 4)]


def stream_bytes(tokens: int, run: int = 0, *, markdown: bool = False) -> list[bytes]:
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    words = ["alpha ", "beta ", "gamma ", "delta\n\n", "`code` ", "**bold** "]
    if markdown:
        words = []
        while len(words) < tokens:
            words += words_of(DOCUMENT.format(n=len(words)))
    events = []
    for i in range(tokens):
        # Each run's reply differs (its first word), so no cache can serve one run from another.
        delta = {"content": f"run{run} " if i == 0 else words[i % len(words)]}
        events.append({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": tokens + 5}
    events.append({**head, "choices": [], "usage": usage})
    return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]


def tool_stream_bytes(kilobytes: int, piece: int, run: int = 0) -> list[bytes]:
    """One tool call whose JSON arguments (a long string) arrive ``piece`` characters at a time."""
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    arguments = json.dumps(
        {"run": run, "text": "lorem ipsum <b>`x`</b> " * (kilobytes * 1024 // 23)}
    )
    first = {"index": 0, "id": "call_1", "type": "function"}
    first["function"] = {"name": "save", "arguments": ""}
    events = [{**head, "choices": [{"index": 0, "delta": {"tool_calls": [first]}}]}]
    for start in range(0, len(arguments), piece):
        call = {"index": 0, "function": {"arguments": arguments[start : start + piece]}}
        events.append({**head, "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
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


def measure(ip, publisher, make_events, repeat: int) -> tuple[list, list, list]:
    """CPU times with the live display and without any, and display messages per run."""
    on, off, updates = [], [], []
    for run in range(repeat):
        events = make_events(run)
        _sessions.client_for = lambda settings, events=events: client_for(events)
        publisher.published = publisher.updates = 0
        start = time.process_time()
        ip.run_cell_magic("chat", "--new", "write a lot")
        on.append(time.process_time() - start)
        updates.append(publisher.published)

        chat = nbchat.Chat("m", client=client_for(events))
        start = time.process_time()
        chat.send("write a lot")
        off.append(time.process_time() - start)
    return on, off, updates


def report(title: str, events: list[bytes], on: list, off: list, updates: list) -> None:
    print(f"{title} ({sum(len(e) for e in events) / 1e6:.2f} MB of SSE, {len(events)} events)")
    print(f"  display messages sent: {max(updates)} (live area opened/updated/finished)")
    for label, times in (("display off: ", off), ("live display:", on)):
        best, median = min(times) * 1000, statistics.median(times) * 1000
        print(f"  CPU, {label} best {best:7.1f} ms  median {median:7.1f} ms")
    print(f"  ratio live/off: {min(on) / min(off):.2f}x (target <= 1.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--tool-kb", type=int, default=200)
    parser.add_argument("--piece", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    ip.run_line_magic("config", "Chat.display = 'live'")
    ip.run_line_magic("config", "Chat.model = 'm'")
    publisher = CountingPublisher(shell=ip)
    ip.display_pub = publisher

    def text(run: int) -> list[bytes]:
        return stream_bytes(args.tokens, run)

    def tool(run: int) -> list[bytes]:
        return tool_stream_bytes(args.tool_kb, args.piece, run)

    title = f"text reply: {args.tokens} tokens"
    report(title, text(0), *measure(ip, publisher, text, args.repeat))

    def markdown(run: int) -> list[bytes]:
        return stream_bytes(args.tokens, run, markdown=True)

    title = f"Markdown reply: {args.tokens} tokens of sections, lists, code, tables, math"
    report(title, markdown(0), *measure(ip, publisher, markdown, args.repeat))
    title = f"tool call: {args.tool_kb} KB of arguments in {args.piece}-character pieces"
    # No tool is defined in the notebook: the cell shows the call and stops there.
    report(title, tool(0), *measure(ip, publisher, tool, args.repeat))


if __name__ == "__main__":
    main()
