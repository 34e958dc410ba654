"""What ``%load_ext nbchat`` adds to starting IPython.

    python benchmarks/load.py [--runs 10]

Times whole ``ipython`` processes with and without the extension (median of --runs), the
``load_ext`` call alone inside one, and a kernel's first ``%%chat`` cell (a dry run: it builds the
request a send would, imports included, and sends nothing) next to its second. Target: at most
150 ms added.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

IPYTHON = [
    sys.executable,
    "-m",
    "IPython",
    "--no-banner",
    "--quick",
    "--HistoryManager.enabled=False",
]


def run(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([*IPYTHON, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


FIRST_CELLS = """
import time
get_ipython().run_line_magic('load_ext', 'nbchat')
times = []
for _ in range(2):
    t = time.perf_counter()
    get_ipython().run_cell_magic('chat', '--dry-run -m gpt-4.1-mini', 'Hello there')
    times.append((time.perf_counter() - t) * 1000)
print('first-cells', *times)
"""


def first_cells() -> tuple[float, float]:
    """A kernel's first and second ``%%chat --dry-run`` cell, in ms (no server: none is asked)."""
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "NBCHAT_STORE": "off",
    }
    out = subprocess.run(
        [*IPYTHON, "-c", FIRST_CELLS], check=True, capture_output=True, text=True, env=env
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("first-cells"))
    first, second = (float(value) for value in line.split()[1:])
    return first, second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    run("pass")  # warm the file cache
    bare, loaded = [], []
    for _ in range(args.runs):
        bare.append(run("pass"))
        loaded.append(run("%load_ext nbchat"))
    inside = subprocess.run(
        [
            *IPYTHON,
            "-c",
            "import time; t = time.perf_counter(); get_ipython().run_line_magic('load_ext', "
            "'nbchat'); print((time.perf_counter() - t) * 1000)",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    added = (statistics.median(loaded) - statistics.median(bare)) * 1000
    print(f"ipython start, bare:            median {statistics.median(bare) * 1000:6.0f} ms")
    print(f"ipython start + load_ext:       median {statistics.median(loaded) * 1000:6.0f} ms")
    print(f"added by the extension:         {added:6.0f} ms (target <= 150 ms)")
    print(f"load_ext call alone:            {float(inside):6.1f} ms")
    cells = [first_cells() for _ in range(3)]
    first = statistics.median(c[0] for c in cells)
    second = statistics.median(c[1] for c in cells)
    print(f"first %%chat cell (dry run):    median {first:6.0f} ms (the second: {second:.0f} ms)")


if __name__ == "__main__":
    main()
