"""``nbchat.map`` throughput against a loopback server, next to the ideal, bare loops and
openai-python.

The server (``tests/loopserver.py``, its own process on 127.0.0.1) answers each request after
``--latency`` seconds and serves at most ``--capacity`` at once; the ``429`` variant answers 429
(``retry-after-ms: 20``) to ``--throttle`` of the requests. For each concurrency c the contenders
send the same rows, one after the other, again and again (``--repeat``: each figure is the median
of its runs, after one warm-up run of each):

- ``nbchat.map`` with a ``Client`` (its AsyncClient twins send through aiohttp when the ``fast``
  extra is installed, else through httpx pools of at most 8 connections);
- a bare aiohttp loop: c workers, one ``aiohttp.ClientSession`` whose connector holds c
  connections, ``json=`` bodies, ``await response.json()``, retry on 429 after its
  ``retry-after-ms`` — what one writes by hand for speed;
- a bare httpx loop, the same through httpx pools of at most 8 connections (one pool of many
  costs httpx several times the CPU per request) sharing one TLS context;
- openai-python's ``AsyncOpenAI`` (``chat.completions.create`` from c workers), on httpx and on
  aiohttp (``DefaultAioHttpClient``), when ``openai`` is installed.

Each is given rows/s, CPU µs per row (of its own process: the loop and its HTTP client) and the
cores the client and the server kept busy (CPU seconds over wall seconds; the machine has
``os.cpu_count()`` of them, shared with whatever else runs). ``--memory`` adds the memory a map of
100,000 rows takes. Run ``python benchmarks/map.py``.
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
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nbchat  # noqa: E402
from nbchat.transport.fast import available as aiohttp_available  # noqa: E402
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


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Figure:
    """One run of one contender: rows/s, CPU µs per row, the cores client and server used."""

    def __init__(
        self, rate: float, cpu_us: float, client_cores: float, server_cores: float, errors: int
    ) -> None:
        self.rate, self.cpu_us, self.errors = rate, cpu_us, errors
        self.client_cores, self.server_cores = client_cores, server_cores


def timed(run: Callable, server_pid: int, base_url: str, rows: list, concurrency: int) -> Figure:
    cpu, server = time.process_time(), cpu_seconds(server_pid)
    started = time.perf_counter()
    errors = run(base_url, rows, concurrency)
    wall = time.perf_counter() - started
    used = time.process_time() - cpu
    return Figure(
        len(rows) / wall,
        used / len(rows) * 1e6,
        used / wall,
        (cpu_seconds(server_pid) - server) / wall,
        errors,
    )


def run_nbchat(base_url: str, rows: list[dict[str, int]], concurrency: int) -> int:
    client = nbchat.Client(api_key="sk-bench", base_url=base_url, max_retries=RETRIES)
    result = nbchat.map(
        PROMPT, rows, model=MODEL, concurrency=concurrency, client=client, progress=False
    )
    client.close()
    return sum(1 for row in result if row["error"] is not None)


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


def run_bare(base_url: str, rows: list[dict[str, int]], concurrency: int) -> int:
    return asyncio.run(bare_loop(base_url, rows, concurrency, split=True))


async def aiohttp_loop(base_url: str, rows: list[dict[str, int]], concurrency: int) -> int:
    """The same by hand with aiohttp: one session, a connector of c connections."""
    import aiohttp

    replies: list[str | None] = [None] * len(rows)
    positions = iter(range(len(rows)))
    headers = {"Authorization": "Bearer sk-bench"}
    url = base_url + "/chat/completions"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for position in positions:
                body = {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": PROMPT.format(**rows[position])}],
                }
                for _ in range(RETRIES + 1):
                    async with session.post(url, json=body, headers=headers) as response:
                        if response.status == 429:
                            wait = float(response.headers.get("retry-after-ms", 500)) / 1000
                        else:
                            if response.status == 200:
                                data = await response.json()
                                replies[position] = data["choices"][0]["message"]["content"]
                            break
                    await asyncio.sleep(wait)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sum(1 for reply in replies if reply is None)


def run_aiohttp(base_url: str, rows: list[dict[str, int]], concurrency: int) -> int:
    return asyncio.run(aiohttp_loop(base_url, rows, concurrency))


async def openai_loop(
    base_url: str, rows: list[dict[str, int]], concurrency: int, *, aiohttp: bool
) -> int:
    """openai-python's AsyncOpenAI from c workers, on httpx or on aiohttp."""
    import openai

    options = {"http_client": openai.DefaultAioHttpClient()} if aiohttp else {}
    client = openai.AsyncOpenAI(
        api_key="sk-bench", base_url=base_url, max_retries=RETRIES, **options
    )
    replies: list[str | None] = [None] * len(rows)
    positions = iter(range(len(rows)))
    async with client:

        async def worker() -> None:
            for position in positions:
                content = PROMPT.format(**rows[position])
                try:
                    completion = await client.chat.completions.create(
                        model=MODEL, messages=[{"role": "user", "content": content}]
                    )
                except openai.APIError:
                    continue
                replies[position] = completion.choices[0].message.content

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sum(1 for reply in replies if reply is None)


def run_openai(base_url: str, rows: list[dict[str, int]], concurrency: int) -> int:
    return asyncio.run(openai_loop(base_url, rows, concurrency, aiohttp=False))


def run_openai_aiohttp(base_url: str, rows: list[dict[str, int]], concurrency: int) -> int:
    return asyncio.run(openai_loop(base_url, rows, concurrency, aiohttp=True))


def contenders() -> dict[str, Callable]:
    """The loops to compare, by name (openai-python's only when it is installed)."""
    found: dict[str, Callable] = {"nbchat.map": run_nbchat}
    if aiohttp_available():
        found["bare aiohttp"] = run_aiohttp
    found["bare httpx"] = run_bare
    try:
        import openai
    except ImportError:
        print("(openai-python is not installed: its columns are left out)", file=sys.stderr)
    else:
        found["openai (httpx)"] = run_openai
        if aiohttp_available() and hasattr(openai, "DefaultAioHttpClient"):
            found["openai (aiohttp)"] = run_openai_aiohttp
    return found


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
client = nbchat.Client(api_key="k", base_url={base_url!r},
                       max_retries={RETRIES})
nbchat.map("warm {{i}}", frame.head(50), model="m", client=client, progress=False)
before = rss()
started = time.perf_counter()
result = nbchat.map({PROMPT!r}, frame, model="m", concurrency=64, client=client, progress=False)
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"before_mb": before, "peak_mb": peak, "after_mb": rss(),
                  "result_mb": result.memory_usage(deep=True).sum() / 2**20,
                  "errors": int((result["error"] != "").sum()), "seconds": elapsed}}))
"""
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def table(title: str, args: argparse.Namespace, results: list[tuple[int, dict]]) -> str:
    """One variant's figures: rows/s (and how much the runs of each moved: max-min over the
    median), CPU µs per row, and the cores client and server kept busy."""
    names = list(results[0][1])
    reference = "bare aiohttp" if "bare aiohttp" in names else "bare httpx"
    openais = [name for name in names if name.startswith("openai")]
    header = ["concurrency", "ideal rows/s", *(f"{name} rows/s" for name in names)]
    header += [f"map ÷ {reference}"] + (["map ÷ best openai"] if openais else [])
    header += ["CPU µs/row: " + " / ".join(names), "cores client+server: map / " + reference]
    header += ["errors"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---:|" * len(header))
    for concurrency, runs in results:
        ideal = min(concurrency, args.capacity) / args.latency
        rate = {name: statistics.median(f.rate for f in figures) for name, figures in runs.items()}
        spread = {
            name: (max(f.rate for f in figures) - min(f.rate for f in figures)) / rate[name]
            for name, figures in runs.items()
        }
        cpu = {name: statistics.median(f.cpu_us for f in figures) for name, figures in runs.items()}

        def cores(name: str, runs: dict[str, list[Figure]] = runs) -> str:
            figures = runs[name]
            client = statistics.median(f.client_cores for f in figures)
            server = statistics.median(f.server_cores for f in figures)
            return f"{client:.2f}+{server:.2f}"

        row = [str(concurrency), f"{ideal:,.0f}"]
        row += [f"{rate[name]:,.0f} (±{spread[name] / 2:.0%})" for name in names]
        row.append(f"{rate['nbchat.map'] / rate[reference]:.2f}")
        if openais:
            row.append(f"{rate['nbchat.map'] / max(rate[name] for name in openais):.2f}")
        row.append(" / ".join(f"{cpu[name]:,.0f}" for name in names))
        row.append(f"{cores('nbchat.map')} / {cores(reference)}")
        row.append("/".join(str(sum(f.errors for f in runs[name])) for name in names))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--capacity", type=int, default=64, help="requests served at once")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--throttle", type=float, default=0.05, help="share answered 429")
    parser.add_argument("--variants", nargs="+", default=["plain", "429"])
    parser.add_argument("--memory", type=int, default=100_000, help="rows for memory (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the median)")
    parser.add_argument("--only", nargs="+", help="contenders to run (default: all)")
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
    runners = contenders()
    if args.only:
        runners = {name: run for name, run in runners.items() if name in args.only}
    print(
        f"Python {platform.python_version()}, httpx {httpx.__version__}, "
        f"aiohttp {'yes' if aiohttp_available() else 'no'}, {os.cpu_count()} CPUs; "
        f"{args.rows:,} rows; server: {args.latency * 1000:.0f} ms per request, at most "
        f"{args.capacity} at once; median of {args.repeat} alternating runs (± half the "
        f"spread of the runs, over the median); map's rows stored in {args.store}\n",
        flush=True,
    )
    rows = rows_of(args.rows)
    for variant in args.variants:
        throttle = args.throttle if variant == "429" else 0.0
        process, base_url = start_server(args.latency, args.capacity, throttle)
        try:
            for run in runners.values():
                run(base_url, rows[:200], 8)  # warm up every contender
            results = []
            for concurrency in args.concurrency:
                # Alternating runs, the median of each: the machine is shared, and a neighbour's
                # burst of work would otherwise decide the comparison.
                runs: dict[str, list[Figure]] = {name: [] for name in runners}
                for _ in range(args.repeat):
                    for name, run in runners.items():
                        runs[name].append(timed(run, process.pid, base_url, rows, concurrency))
                results.append((concurrency, runs))
                print(
                    f"  {variant} c={concurrency}: "
                    + ", ".join(
                        f"{name} {statistics.median(f.rate for f in figures):,.0f}"
                        for name, figures in runs.items()
                    ),
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
