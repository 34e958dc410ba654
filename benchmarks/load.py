"""What ``%load_ext nbchat`` adds to starting IPython.

    python benchmarks/load.py [--runs 10]

Times whole ``ipython`` processes with and without the extension (median of --runs), and the
``load_ext`` call alone inside one. Target: at most 150 ms added.
"""

from __future__ import annotations

import argparse
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


if __name__ == "__main__":
    main()
