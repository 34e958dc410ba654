"""Streaming throughput: nbchat's ChatStream against a bare json.loads loop and the openai package.

Run ``python benchmarks/stream.py`` (``--help`` for options); it prints a table the README quotes.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pydantic

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nbchat

MODEL = "gpt-4.1-2025-04-14"
MESSAGES = [{"role": "user", "content": "写一首关于秋天的诗"}]
# Pieces of text a tokenizer would emit: a few characters each, CJK and Latin mixed.
WORDS = [
    "秋",
    "风",
    "起",
    "，",
    " the",
    " wind",
    " of",
    " autumn",
    "落叶",
    " leaves",
    "。",
    "\n",
    " 金",
]


def build_stream(chunks: int, *, seed: int = 7) -> bytes:
    """A recorded-style SSE body: a role chunk, ``chunks`` content chunks, finish, usage, DONE."""
    rng = random.Random(seed)
    head = {
        "id": "chatcmpl-B9xK2mPq7RtL4vWz8YcN3dFh",
        "object": "chat.completion.chunk",
        "created": 1716936000,
        "model": MODEL,
        "system_fingerprint": "fp_a1b2c3d4e5",
    }

    def event(choices: list[dict], **extra: object) -> bytes:
        body = {**head, "choices": choices, **extra}
        return (
            b"data: "
            + json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            + b"\n\n"
        )

    def choice(delta: dict, finish: str | None = None) -> dict:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    parts = [event([choice({"role": "assistant", "content": "", "refusal": None})])]
    for _ in range(chunks):
        parts.append(event([choice({"content": rng.choice(WORDS)})]))
    parts.append(event([choice({}, "stop")]))
    usage = {"prompt_tokens": 18, "completion_tokens": chunks, "total_tokens": 18 + chunks}
    parts.append(event([], usage=usage))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def network_pieces(body: bytes, *, seed: int = 11) -> list[bytes]:
    """Split ``body`` the way reads off a socket do: 1 to 4 KiB, anywhere, UTF-8 included."""
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(body):
        size = rng.randint(1024, 4096)
        pieces.append(body[at : at + size])
        at += size
    return pieces


def run_floor(pieces: list[bytes]) -> int:
    """The floor: join, split into lines, json.loads every data line. No HTTP, no objects."""
    count = 0
    loads = json.loads
    for line in b"".join(pieces).split(b"\n"):
        if line[:6] == b"data: ":
            data = line[6:]
            if data == b"[DONE]":
                break
            loads(data)
            count += 1
    return count


def run_nbchat(pieces: list[bytes]) -> int:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=iter(pieces)
        )

    client = nbchat.Client(api_key="sk-bench", transport=httpx.MockTransport(handler))
    count = 0
    with client.stream(model=MODEL, messages=MESSAGES) as stream:
        for _ in stream:
            count += 1
        completion = stream.completion
    assert completion.choices[0].finish_reason == "stop", completion
    assert completion.usage is not None
    client.close()
    return count


def _openai_client(pieces: list[bytes]):
    import openai

    # openai releases differ in which httpx package they are built on (httpx, or httpx2 in
    # newer ones): use the one its client module imports.
    http = getattr(openai._base_client, "httpx2", None) or getattr(
        openai._base_client, "httpx", httpx
    )

    def handler(request):
        return http.Response(
            200, headers={"content-type": "text/event-stream"}, content=iter(pieces)
        )

    return openai.OpenAI(
        api_key="sk-bench",
        base_url="http://bench.invalid/v1",
        http_client=http.Client(transport=http.MockTransport(handler)),
    )


def run_openai_raw(pieces: list[bytes]) -> int:
    client = _openai_client(pieces)
    count = 0
    for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
        count += 1
    client.close()
    return count


def run_openai_helper(pieces: list[bytes]) -> int:
    client = _openai_client(pieces)
    count = 0
    with client.chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "chunk":
                count += 1
        completion = stream.get_final_completion()
    assert completion.choices[0].finish_reason == "stop"
    client.close()
    return count


def measure(
    contenders: list[tuple[str, Callable[[list[bytes]], int]]], pieces: list[bytes], repeat: int
) -> dict[str, list[float]]:
    """Seconds per run of each contender; rounds interleave them so load spikes hit all alike."""
    times: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(repeat):
        for name, fn in contenders:
            gc.collect()
            start = time.perf_counter()
            fn(pieces)
            times[name].append(time.perf_counter() - start)
    return times


def _openai_available() -> str | None:
    try:
        import openai
    except ImportError:
        return None
    return openai.__version__


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=10_000, help="content chunks per stream")
    parser.add_argument("--repeat", type=int, default=7, help="runs per contender")
    parser.add_argument("--profile", action="store_true", help="cProfile one nbchat run")
    args = parser.parse_args(argv)

    body = build_stream(args.chunks)
    pieces = network_pieces(body)
    total = args.chunks + 3  # role chunk + content + finish + usage

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(run_nbchat, pieces)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        return

    contenders: list[tuple[str, Callable[[list[bytes]], int]]] = [
        ("floor (split + json.loads)", run_floor),
        ("nbchat Client.stream", run_nbchat),
    ]
    openai_version = _openai_available()
    if openai_version:
        contenders.append((f"openai {openai_version} create(stream=True)", run_openai_raw))
        contenders.append((f"openai {openai_version} .stream() helper", run_openai_helper))

    for name, fn in contenders:
        got = fn(pieces)
        if got != total:
            raise SystemExit(f"{name} saw {got} chunks, expected {total}")

    results = measure(contenders, pieces, args.repeat)
    floor = results[contenders[0][0]]
    ours = results["nbchat Client.stream"]

    print(
        f"{total:,} chunks ({len(body) / 1024:,.0f} KiB) in {len(pieces)} reads of 1-4 KiB; "
        f"best and median of {args.repeat} interleaved runs; Python {platform.python_version()}, "
        f"pydantic {pydantic.VERSION}, httpx {httpx.__version__}"
    )
    print()
    print("| contender | best chunks/s | median chunks/s | best time | vs floor | vs nbchat |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, times in results.items():
        best, median = min(times), statistics.median(times)
        print(
            f"| {name} | {total / best:,.0f} | {total / median:,.0f} | {best * 1000:,.1f} ms "
            f"| {best / min(floor):.2f}× | {best / min(ours):.2f}× |"
        )
    best_ratio = min(ours) / min(floor)
    median_ratio = statistics.median(ours) / statistics.median(floor)
    print()
    print(f"nbchat time / floor time: {best_ratio:.2f}× best, {median_ratio:.2f}× median (≤ 1.5×)")
    for name, times in results.items():
        if name.startswith("openai"):
            print(f"{name} time / nbchat time: {min(times) / min(ours):.1f}× best (≥ 10×)")


if __name__ == "__main__":
    main()
