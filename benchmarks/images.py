"""Image conversion: time and bytes sent for a 4000×3000 photo and chart, against a naive PNG.

Run ``python benchmarks/images.py`` (``--help`` for options); it prints a table the README quotes.
"""

from __future__ import annotations

import argparse
import base64
import gc
import io
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import PIL
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nbchat.convert.images import ImagePart, image_part, target_size

matplotlib.use("Agg")
import matplotlib.pyplot as plt

WIDTH, HEIGHT = 4000, 3000
TARGET_MS = 150


def synthetic_photo(seed: int = 1) -> Image.Image:
    """Photo-like: smooth colour gradients, soft blobs and sensor noise, the same every run."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    red = 90 + 110 * x / WIDTH
    green = 60 + 120 * y / HEIGHT
    blue = 140 + 80 * np.sin(x / 700) * np.cos(y / 500)
    image = np.stack([red, green, blue], axis=-1)
    for _ in range(12):
        cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        radius = rng.uniform(150, 700)
        shade = rng.uniform(-70, 70, 3).astype(np.float32)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))
        image += blob[..., None] * shade
    image += rng.normal(0, 9, image.shape).astype(np.float32)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def chart_figure(seed: int = 2) -> Any:
    """A line chart with a title, legend, grid and labels, 4000×3000 px at 100 dpi."""
    rng = np.random.default_rng(seed)
    figure, axes = plt.subplots(figsize=(WIDTH / 100, HEIGHT / 100), dpi=100)
    for i in range(5):
        axes.plot(np.cumsum(rng.normal(size=400)), linewidth=4, label=f"series {i}")
    axes.set_title("Daily totals by series", fontsize=60)
    axes.set_xlabel("day", fontsize=40)
    axes.set_ylabel("total", fontsize=40)
    axes.tick_params(labelsize=30)
    axes.grid(True)
    axes.legend(fontsize=36)
    return figure


def figure_pixels(figure: Any) -> Image.Image:
    figure.canvas.draw()
    return Image.fromarray(np.asarray(figure.canvas.buffer_rgba())).copy()


def naive_png_url_bytes(image: Image.Image) -> int:
    """What sending the full-size image as a PNG data URL would cost."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return len("data:image/png;base64,") + len(base64.b64encode(buffer.getvalue()))


def best_of(repeat: int, fn: Callable[[], ImagePart]) -> tuple[float, ImagePart]:
    best, part = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        part = fn()
        best = min(best, time.perf_counter() - start)
    assert part is not None
    return best * 1000, part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per case; best is shown")
    args = parser.parse_args()

    photo = synthetic_photo()
    figure = chart_figure()
    chart = figure_pixels(figure)
    with tempfile.TemporaryDirectory() as folder:
        photo_jpeg = Path(folder) / "photo.jpg"
        photo.save(photo_jpeg, quality=92)
        chart_png = Path(folder) / "chart.png"
        chart.convert("RGB").save(chart_png)
        naive = {
            "photo": naive_png_url_bytes(photo),
            "chart": naive_png_url_bytes(chart.convert("RGB")),
        }
        cases: list[tuple[str, str, Any]] = [
            ("photo, PIL image", "photo", photo),
            ("photo, JPEG file", "photo", photo_jpeg),
            ("chart, PIL image (RGBA)", "chart", chart),
            ("chart, PNG file", "chart", chart_png),
            ("chart, matplotlib Figure", "chart", figure),
        ]
        rows = []
        for label, kind, source in cases:
            for detail in ("high", "low"):
                ms, part = best_of(args.repeat, lambda s=source, d=detail: image_part(s, d))
                limit = target_size(WIDTH, HEIGHT, detail)
                within = part.width <= limit[0] and part.height <= limit[1]
                rows.append((label, detail, part, ms, naive[kind], within))
    plt.close(figure)

    print(
        f"Python {platform.python_version()}, Pillow {PIL.__version__}, numpy {np.__version__}, "
        f"matplotlib {matplotlib.__version__}; {WIDTH}×{HEIGHT} inputs, best of {args.repeat}"
    )
    print()
    print(
        "| input | detail | sent | time (ms) | bytes sent | naive full-size PNG | "
        "smaller by | est. tokens | ≤ API size |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|:---:|")
    for label, detail, part, ms, naive_bytes, within in rows:
        kind = (part.media_type or "").removeprefix("image/").upper()
        print(
            f"| {label} | {detail} | {kind} {part.width}×{part.height} | {ms:.1f} | "
            f"{len(part.url):,} | {naive_bytes:,} | {naive_bytes / len(part.url):.0f}× | "
            f"{part.tokens} | {'yes' if within else 'NO'} |"
        )
    slow = [row for row in rows if row[3] > TARGET_MS]
    print()
    print(
        f"target: under {TARGET_MS} ms and no pixel beyond the API's size — "
        f"{'met' if not slow and all(r[5] for r in rows) else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
