"""``nbchat.map`` throughput against a loopback server, next to the ideal and a bare asyncio loop.

The server (``tests/loopserver.py``, its own process on 127.0.0.1) answers each request after
``--latency`` seconds and serves at most ``--capacity`` at once; the ``429`` variant answers 429
(``retry-after-ms: 20``) to ``--throttle`` of the requests. For each concurrency c the table gives
rows/s of ``nbchat.map``, of a bare asyncio + httpx loop sending the same bodies through the same
pools (``map`` spreads c connections over ceil(c/8) httpx pools, each
``httpx.Limits(max_connections=n, max_keepalive_connections=n)``), of the same bare loop through
one pool of c connections (what one writes by hand), and the ideal ``min(c, capacity) / latency``.
``--memory`` adds the memory a map of 100,000 rows takes. Run ``python benchmarks/map.py``.

How the bare loop is measured, and why: its pools are map's (one pool of 128 connections costs
httpx several times the CPU per request, see ``nbchat.transport.twin``; the one-pool column
shows it), and its transports share one TLS context made once per process, as map's twins do
(httpx makes one per transport otherwise, 20 ms of CPU each: 16 pools cost the bare loop 0.3 s
per run that map does not pay, although no request uses TLS). Both loops run alternately, each
figure the median of ``--repeat`` runs at every concurrency, after one warm-up run of each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nbchat  # noqa: E402
from nbchat.transport.twin import POOL_SIZE  # noqa: E402

MODEL = "loop-model"
PROMPT = "Row {i}: classify this as ok or not ok."
# Retries for both loops: enough that a 5 % 429 rate loses no row.
RETRIES = 8


def start_server(latency: float, capacity: int, throttle: float) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "tests.loopserver", "--latency", str(latency)]
    command += ["--capacity", str(capacity)]
    if throttle:
        command += ["--throttle", str(throttle), "--retry-after-ms", "20"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/v1"


def rows_of(count: int) -> list[dict[str, int]]:
    return [{"i": i} for i in range(count)]


def timed(run, *args, **options) -> tuple[float, float, int]:
    """rows/s, CPU µs per row (this process: the loop and its HTTP client), errors."""
    cpu = time.process_time()
    rate, errors = run(*args, **options)
    rows = args[1]
    return rate, (time.process_time() - cpu) / len(rows) * 1e6, errors


def run_nbchat(base_url: str, rows: list[dict[str, int]], concurrency: int) -> tuple[float, int]:
    client = nbchat.Client(
        api_key="sk-bench",
        base_url=base_url,
        transport=httpx.HTTPTransport(),
        max_retries=RETRIES,
    )
    started = time.perf_counter()
    result = nbchat.map(
        PROMPT, rows, model=MODEL, concurrency=concurrency, client=client, progress=False
    )
    elapsed = time.perf_counter() - started
    client.close()
    errors = sum(1 for row in result if row["error"] is not None)
    return len(rows) / elapsed, errors


_TLS: list[ssl.SSLContext] = []


def tls_context() -> ssl.SSLContext:
    """httpx's default TLS settings, made once (as nbchat.transport.twin does for map)."""
    if not _TLS:
        _TLS.append(httpx.create_ssl_context())
    return _TLS[0]


def pool_sizes(concurrency: int, *, split: bool) -> list[int]:
    """The pools map uses for ``concurrency`` (nbchat.transport.twin), or one pool."""
    if not split:
        return [concurrency]
    size = POOL_SIZE
    pools = -(-concurrency // size)
    return [-(-concurrency // pools)] * pools


async def bare_loop(
    base_url: str, rows: list[dict[str, int]], concurrency: int, *, split: bool
) -> int:
    """What one would write by hand: c workers, one shared queue of rows, retry on 429."""
    clients = []
    for size in pool_sizes(concurrency, split=split):
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        transport = httpx.AsyncHTTPTransport(limits=limits, verify=tls_context())
        clients.append(httpx.AsyncClient(transport=transport, timeout=60))
    replies: list[str | None] = [None] * len(rows)
    positions = iter(range(len(rows)))
    headers = {"Authorization": "Bearer sk-bench"}
    try:

        async def worker(http: httpx.AsyncClient) -> None:
            for position in positions:
                body = {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": PROMPT.format(**rows[position])}],
                }
                for _ in range(RETRIES + 1):
                    response = await http.post(
                        base_url + "/chat/completions", json=body, headers=headers
                    )
                    if response.status_code != 429:
                        break
                    await asyncio.sleep(float(response.headers.get("retry-after-ms", 500)) / 1000)
                if response.status_code == 200:
                    replies[position] = response.json()["choices"][0]["message"]["content"]

        await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(concurrency)))
    finally:
        for http in clients:
            await http.aclose()
    return sum(1 for reply in replies if reply is None)


def run_bare(
    base_url: str, rows: list[dict[str, int]], concurrency: int, *, split: bool = True
) -> tuple[float, int]:
    started = time.perf_counter()
    errors = asyncio.run(bare_loop(base_url, rows, concurrency, split=split))
    return len(rows) / (time.perf_counter() - started), errors


def measure_memory(base_url: str, count: int) -> dict[str, float]:
    """Peak memory of one map over ``count`` rows, in a fresh process (MB)."""
    code = f"""
import json, resource, sys, time
sys.path.insert(0, {str(ROOT)!r})
import httpx, pandas as pd, nbchat

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

frame = pd.DataFrame({{"i": range({count})}})
client = nbchat.Client(api_key="k", base_url={base_url!r}, transport=httpx.HTTPTransport(),
                       max_retries={RETRIES})
nbchat.map("warm {{i}}", frame.head(50), model="m", client=client, progress=False)
before = rss()
started = time.perf_counter()
result = nbchat.map({PROMPT!r}, frame, model="m", concurrency=64, client=client, progress=False)
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"before_mb": before, "peak_mb": peak, "after_mb": rss(),
                  "result_mb": result.memory_usage(deep=True).sum() / 2**20,
                  "errors": int(result["error"].notna().sum()), "seconds": elapsed}}))
"""
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def table(title: str, args: argparse.Namespace, results: list[tuple]) -> str:
    """One variant's figures; "cores" is CPU time over wall time of the loop's own process (one
    event loop cannot use more than one: near 1.0 it is the limit, not the server)."""
    lines = [
        f"### {title}",
        "",
        "| concurrency | pools | nbchat.map rows/s | bare loop, same pools "
        "| bare loop, one pool (one run) | ideal | map ÷ bare | map ÷ ideal | bare ÷ ideal "
        "| CPU µs/row map / bare "
        "| cores map / bare | errors (map/bare) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for concurrency, mapped, bare, single, cpus, map_errors, bare_errors in results:
        ideal = min(concurrency, args.capacity) / args.latency
        sizes = pool_sizes(concurrency, split=True)
        pools = f"{len(sizes)} × {sizes[0]}"
        one = f"{single:,.0f}" if single is not None else "(same)"
        cores = (cpus[0] * mapped / 1e6, cpus[1] * bare / 1e6)
        lines.append(
            f"| {concurrency} | {pools} | {mapped:,.0f} | {bare:,.0f} | {one} | {ideal:,.0f} | "
            f"{mapped / bare:.2f} | {mapped / ideal:.2f} | {bare / ideal:.2f} | "
            f"{cpus[0]:,.0f} / {cpus[1]:,.0f} | {cores[0]:.2f} / {cores[1]:.2f} | "
            f"{map_errors}/{bare_errors} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--capacity", type=int, default=64, help="requests served at once")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--throttle", type=float, default=0.05, help="share answered 429")
    parser.add_argument("--variants", nargs="+", default=["plain", "429"])
    parser.add_argument("--memory", type=int, default=100_000, help="rows for memory (0: skip)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (the median)")
    parser.add_argument(
        "--store",
        default="",
        help="where map logs its rows: a path, or 'off' (default: a new file in a temporary "
        "directory, so every row is stored as it is for a user)",
    )
    args = parser.parse_args()
    if not args.store:
        import tempfile

        args.store = str(Path(tempfile.mkdtemp(prefix="nbchat-bench-")) / "nbchat.db")
    os.environ["NBCHAT_STORE"] = args.store
    print(
        f"Python {platform.python_version()}, httpx {httpx.__version__}, {os.cpu_count()} CPUs; "
        f"{args.rows:,} rows; server: {args.latency * 1000:.0f} ms per request, at most "
        f"{args.capacity} at once; median of {args.repeat} alternating runs; pools of at most "
        f"{POOL_SIZE} connections "
        "(httpx.Limits(max_connections=n, max_keepalive_connections=n)); map's rows stored in "
        f"{args.store}\n",
        flush=True,
    )
    rows = rows_of(args.rows)
    for variant in args.variants:
        throttle = args.throttle if variant == "429" else 0.0
        process, base_url = start_server(args.latency, args.capacity, throttle)
        try:
            run_nbchat(base_url, rows[:200], 8)  # warm up both sides
            run_bare(base_url, rows[:200], 8)
            results = []
            for concurrency in args.concurrency:
                # Alternating runs, the median of each: the machine is shared, and a neighbour's
                # burst of work would otherwise decide the comparison.
                repeat = args.repeat
                maps, bares, map_cpu, bare_cpu, map_errors, bare_errors = [], [], [], [], 0, 0
                for _ in range(repeat):
                    rate, cpu, errors = timed(run_nbchat, base_url, rows, concurrency)
                    maps.append(rate)
                    map_cpu.append(cpu)
                    map_errors += errors
                    rate, cpu, errors = timed(run_bare, base_url, rows, concurrency)
                    bares.append(rate)
                    bare_cpu.append(cpu)
                    bare_errors += errors
                mapped, bare = statistics.median(maps), statistics.median(bares)
                cpus = (statistics.median(map_cpu), statistics.median(bare_cpu))
                single = None
                if len(pool_sizes(concurrency, split=True)) > 1:
                    single, _ = run_bare(base_url, rows, concurrency, split=False)
                results.append((concurrency, mapped, bare, single, cpus, map_errors, bare_errors))
                print(
                    f"  {variant} c={concurrency}: map {mapped:,.0f} rows/s, bare {bare:,.0f}, "
                    f"one pool {single}",
                    file=sys.stderr,
                    flush=True,
                )
            title = "Plain" if not throttle else f"{throttle:.0%} of requests answered 429"
            print(table(title, args, results) + "\n", flush=True)
            if args.memory and not throttle:
                memory = measure_memory(base_url, args.memory)
                grew = memory["peak_mb"] - memory["before_mb"]
                print(
                    f"Memory for {args.memory:,} rows (a DataFrame of one column, concurrency "
                    f"64): peak RSS {memory['peak_mb']:.0f} MB, {grew:.0f} MB "
                    f"above the process before the map; the result frame itself "
                    f"{memory['result_mb']:.1f} MB; {memory['seconds']:.0f} s, "
                    f"{memory['errors']} errors.\n",
                    flush=True,
                )
        finally:
            process.terminate()
            process.wait(5)


if __name__ == "__main__":
    main()
