from __future__ import annotations

import base64
import io
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from nbchat.convert import images as _images
from nbchat.convert.images import (
    ImageError,
    ImagePart,
    estimate_image_tokens,
    image_part,
    target_size,
)
from nbchat.protocol.exceptions import NbchatError

plt.switch_backend("Agg")

JPEG_PREFIX = "data:image/jpeg;base64,"
PNG_PREFIX = "data:image/png;base64,"


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width * 200, y / height * 200, (x + y) / (width + height) * 255], -1)
    noisy = base + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def decode(part: ImagePart) -> Image.Image:
    _, payload = part.url.split(",", 1)
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    image.load()
    return image


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims a huge size: what a decompression bomb looks like to a reader."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------------------------------------
# Sizing and token rules


@pytest.mark.parametrize(
    ("size", "detail", "expected"),
    [
        ((1024, 1024), "high", (768, 768)),
        ((4000, 3000), "high", (1024, 768)),
        ((4000, 3000), "auto", (1024, 768)),
        ((4000, 3000), "low", (512, 384)),
        ((3000, 4000), "high", (768, 1024)),
        ((8000, 1000), "high", (2048, 256)),
        ((2048, 4096), "high", (768, 1536)),
        ((300, 200), "high", (300, 200)),
        ((300, 200), "low", (300, 200)),
        ((1000, 1), "low", (512, 1)),
    ],
)
def test_target_size_follows_the_api_rules(size, detail, expected):
    assert target_size(*size, detail) == expected


@pytest.mark.parametrize(
    ("size", "detail", "tokens"),
    [
        ((1024, 1024), "high", 765),
        ((4000, 3000), "high", 765),
        ((4000, 3000), "low", 85),
        ((100, 100), "low", 85),
        ((100, 100), "high", 255),
        ((512, 512), "high", 255),
        ((513, 512), "high", 425),
        ((2048, 4096), "high", 85 + 170 * 6),
        ((1024, 1024), "auto", 765),
    ],
)
def test_token_estimate_counts_512_px_tiles_after_the_downscale(size, detail, tokens):
    assert estimate_image_tokens(*size, detail) == tokens


def test_a_bad_detail_is_an_image_error():
    with pytest.raises(ImageError, match="detail must be one of low, high, auto"):
        estimate_image_tokens(10, 10, "medium")
    with pytest.raises(ImageError, match="detail"):
        image_part(photo(8, 8), detail="ultra")


def test_image_error_is_a_value_error_and_an_nbchat_error():
    assert issubclass(ImageError, ValueError)
    assert issubclass(ImageError, NbchatError)


# ---------------------------------------------------------------------------------------------
# In-memory objects


@pytest.mark.parametrize(
    ("detail", "size", "tokens"),
    [("low", (512, 384), 85), ("high", (1024, 768), 765), ("auto", (1024, 768), 765)],
)
def test_a_photo_becomes_a_downscaled_jpeg_data_url(detail, size, tokens):
    part = image_part(photo(2000, 1500), detail)
    assert part.url.startswith(JPEG_PREFIX)
    assert (part.width, part.height) == size
    assert decode(part).size == size
    assert decode(part).format == "JPEG"
    assert part.original_size == (2000, 1500)
    assert part.tokens == tokens
    assert part.nbytes == len(base64.b64decode(part.url[len(JPEG_PREFIX) :]))
    assert part.to_dict() == {"type": "image_url", "image_url": {"url": part.url, "detail": detail}}


def test_a_small_image_is_never_enlarged():
    part = image_part(photo(200, 100), "high")
    assert (part.width, part.height) == (200, 100)
    assert not part.resized


def test_transparency_is_kept_as_png():
    image = Image.new("RGBA", (1000, 1000), (255, 0, 0, 0))
    image.paste((0, 0, 255, 255), (100, 100, 600, 600))
    part = image_part(image, "low")
    assert part.url.startswith(PNG_PREFIX)
    sent = decode(part)
    assert sent.mode == "RGBA"
    assert sent.size == (512, 512)
    assert sent.getpixel((0, 0))[3] == 0
    assert sent.getpixel((200, 200)) == (0, 0, 255, 255)


def test_an_opaque_alpha_channel_is_dropped():
    image = photo(300, 200).convert("RGBA")
    sent = decode(image_part(image))
    assert sent.mode == "RGB"


def test_a_graphic_with_few_colours_is_png():
    image = Image.new("RGB", (1600, 1200), "white")
    image.paste((20, 60, 200), (100, 100, 900, 300))
    part = image_part(image, "high")
    assert part.url.startswith(PNG_PREFIX)
    assert (part.width, part.height) == (1024, 768)


def test_an_antialiased_chart_is_sent_as_a_palette_png():
    figure, axes = plt.subplots(figsize=(16, 12), dpi=100)
    axes.plot(np.sin(np.linspace(0, 20, 500)), linewidth=3)
    axes.set_title("wave")
    figure.canvas.draw()
    pixels = Image.fromarray(np.asarray(figure.canvas.buffer_rgba())).convert("RGB")
    plt.close(figure)
    assert len(pixels.getcolors(1 << 20)) > 256
    part = image_part(pixels, "high")
    assert part.url.startswith(PNG_PREFIX)
    assert decode(part).mode == "P"
    full = encoded(pixels.resize((part.width, part.height)), "PNG")
    assert part.nbytes < len(full) / 2


def test_a_noisy_picture_inside_a_screenshot_is_not_posterised():
    rng = np.random.default_rng(3)
    noisy = (rng.integers(0, 16, (300, 300, 3)) * 17).astype(np.uint8)  # 4096 colours
    screen = Image.new("RGB", (600, 600), "white")
    screen.paste(Image.fromarray(noisy), (0, 0))
    part = image_part(screen, "high")
    assert part.url.startswith(PNG_PREFIX)
    sent = decode(part)
    assert sent.mode == "RGB"
    assert sent.tobytes() == screen.tobytes()


def test_a_palette_image_is_sent_as_png():
    image = Image.new("P", (64, 64))
    image.putpalette([0, 0, 0, 255, 255, 0] + [0] * 762)
    image.paste(1, (0, 0, 32, 64))
    part = image_part(image)
    assert part.url.startswith(PNG_PREFIX)
    assert decode(part).convert("RGB").getpixel((0, 0)) == (255, 255, 0)


def test_a_grayscale_photo_stays_grayscale_jpeg():
    part = image_part(photo(900, 900).convert("L"), "high")
    assert part.url.startswith(JPEG_PREFIX)
    assert decode(part).mode == "L"
    assert decode(part).size == (768, 768)


def test_a_16_bit_image_is_scaled_to_8_bits():
    image = Image.fromarray(np.full((10, 10), 65535, dtype=np.uint16))
    sent = decode(image_part(image))
    assert sent.convert("L").getpixel((0, 0)) == 255


def test_a_uint8_array_becomes_an_image():
    array = np.zeros((300, 400, 3), dtype=np.uint8)
    array[:, :200] = (255, 0, 0)
    part = image_part(array, "low")
    assert (part.width, part.height) == (400, 300)
    assert part.source == "array"
    assert decode(part).convert("RGB").getpixel((10, 10)) == (255, 0, 0)


def test_a_float_array_in_0_1_is_scaled_to_0_255():
    array = np.full((20, 30), 0.5)
    sent = decode(image_part(array))
    assert sent.size == (30, 20)
    assert sent.getpixel((0, 0)) in (127, 128)


@pytest.mark.parametrize(
    "array",
    [
        np.ones((10, 10), dtype=bool),
        np.full((10, 10, 1), 255, dtype=np.int64),
        np.full((10, 10, 4), 255, dtype=np.uint8),
        np.full((10, 10), 65535, dtype=np.uint16),
    ],
)
def test_bool_int_rgba_and_16_bit_arrays_convert(array):
    sent = decode(image_part(array)).convert("L")
    assert sent.size == (10, 10)
    assert sent.getpixel((5, 5)) == 255


def test_a_channels_first_array_is_understood():
    array = np.zeros((3, 40, 60), dtype=np.uint8)
    array[1] = 255
    part = image_part(array)
    assert (part.width, part.height) == (60, 40)
    assert decode(part).convert("RGB").getpixel((0, 0)) == (0, 255, 0)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((10, 10), 2.5), r"float image values must lie in \[0, 1\]"),
        (np.full((10, 10), np.nan), "NaN"),
        (np.full((10, 10), 300, dtype=np.int32), r"must lie in \[0, 255\]"),
        (np.zeros((10, 10, 2), dtype=np.uint8), "H×W, H×W×3 or H×W×4"),
        (np.zeros((2, 3, 4, 5), dtype=np.uint8), "H×W, H×W×3 or H×W×4"),
        (np.zeros((0, 10), dtype=np.uint8), "empty"),
        (np.zeros((4, 4), dtype=complex), "dtype complex"),
    ],
)
def test_bad_arrays_get_a_one_line_error(array, message):
    with pytest.raises(ImageError, match=message) as info:
        image_part(array)
    assert "\n" not in str(info.value)


def test_a_matplotlib_figure_is_rendered_as_png_at_its_own_dpi():
    figure, axes = plt.subplots(figsize=(4, 3), dpi=100)
    axes.plot([1, 3, 2])
    try:
        part = image_part(figure, "high")
        assert part.url.startswith(PNG_PREFIX)
        assert part.source == "matplotlib figure"
        # bbox_inches="tight" trims the margins of the 400×300 canvas.
        assert 200 < part.width <= 400 and 150 < part.height <= 300
        assert image_part(axes, "high").url == part.url
    finally:
        plt.close(figure)


@pytest.mark.parametrize(("detail", "box"), [("low", (512, 256)), ("high", (1536, 768))])
def test_a_big_figure_is_drawn_at_a_lower_dpi_not_shrunk(detail, box):
    figure, axes = plt.subplots(figsize=(20, 10), dpi=100)
    axes.plot([1, 3, 2])
    try:
        part = image_part(figure, detail)
        # Drawn straight at the size the API uses (less the cropped margins): no resampling.
        assert part.width <= box[0] and part.height <= box[1]
        assert part.width > box[0] * 0.8
        assert not part.resized
        assert figure.dpi == 100
    finally:
        plt.close(figure)


# ---------------------------------------------------------------------------------------------
# Files, bytes and URLs


def test_a_small_png_file_is_sent_byte_for_byte(tmp_path: Path):
    path = tmp_path / "chart.png"
    photo(120, 80).save(path)
    for source in (path, str(path)):
        part = image_part(source, "high")
        assert part.url == PNG_PREFIX + base64.b64encode(path.read_bytes()).decode()
        assert part.source == "file chart.png"
        assert (part.width, part.height) == (120, 80)


def test_a_big_jpeg_file_is_decoded_small_and_downscaled_exactly(tmp_path: Path):
    path = tmp_path / "photo.jpg"
    photo(3000, 2000).save(path, quality=90)
    for detail, size in (("high", (1152, 768)), ("low", (512, 341))):
        part = image_part(path, detail)
        assert part.url.startswith(JPEG_PREFIX)
        assert (part.width, part.height) == size
        assert decode(part).size == size
        assert part.original_size == (3000, 2000)


def test_exif_orientation_is_applied_before_sizing():
    image = photo(400, 300)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    data = encoded(image, "JPEG", exif=exif.tobytes())
    part = image_part(data, "high")
    assert (part.width, part.height) == (300, 400)
    assert part.original_size == (300, 400)
    assert decode(part).size == (300, 400)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, io.BytesIO])
def test_encoded_bytes_and_binary_files_are_accepted(wrap):
    data = encoded(photo(50, 40), "PNG")
    part = image_part(wrap(data))
    assert (part.width, part.height) == (50, 40)
    assert part.url.startswith(PNG_PREFIX)


def test_a_webp_that_fits_is_passed_through_with_its_media_type():
    data = encoded(photo(64, 64), "WEBP")
    part = image_part(data)
    assert part.url == "data:image/webp;base64," + base64.b64encode(data).decode()


def test_a_bmp_is_reencoded():
    part = image_part(encoded(photo(64, 64), "BMP"))
    assert part.url.startswith(JPEG_PREFIX)


@pytest.mark.parametrize(
    "url",
    ["https://example.invalid/cat.png", "http://example.invalid/a.jpg?x=1&y=2"],
)
@pytest.mark.parametrize("detail", ["low", "high", "auto"])
def test_an_http_url_is_passed_through_untouched(url, detail):
    part = image_part(url, detail)
    assert part.to_dict() == {"type": "image_url", "image_url": {"url": url, "detail": detail}}
    assert part.is_url
    assert part.width is None and part.nbytes == 0 and part.thumbnail is None
    assert part.tokens == (85 if detail == "low" else None)
    assert "not fetched" in repr(part)


def test_a_small_data_url_is_passed_through():
    url = PNG_PREFIX + base64.b64encode(encoded(photo(30, 20), "PNG")).decode()
    part = image_part(url, "low")
    assert part.url == url
    assert part.source == "data URL"


def test_a_large_data_url_is_downscaled():
    url = JPEG_PREFIX + base64.b64encode(encoded(photo(1600, 1600), "JPEG")).decode()
    part = image_part(url, "low")
    assert (part.width, part.height) == (512, 512)
    assert len(part.url) < len(url)


def test_an_image_part_can_be_converted_again_with_another_detail():
    part = image_part(photo(2000, 1000), "high")
    low = image_part(part, "low")
    assert low.detail == "low"
    assert (low.width, low.height) == (512, 256)


def test_an_ipython_image_is_accepted():
    from IPython.display import Image as IPImage

    part = image_part(IPImage(data=encoded(photo(40, 30), "PNG")))
    assert (part.width, part.height) == (40, 30)


# ---------------------------------------------------------------------------------------------
# Bad input: one line, typed, and nothing produced


def one_line_error(obj, match: str, detail: str = "auto") -> ImageError:
    with pytest.raises(ImageError, match=match) as info:
        image_part(obj, detail)
    assert "\n" not in str(info.value)
    return info.value


def test_a_missing_file_is_an_error(tmp_path: Path):
    one_line_error(tmp_path / "nope.png", "no such image file")
    one_line_error(str(tmp_path / "nope.png"), "no such image file")


def test_a_long_string_that_is_no_file_gets_a_short_error():
    error = one_line_error("a description, not a path " * 20, "no such image file")
    assert len(str(error)) < 160


def test_a_directory_is_an_error(tmp_path: Path):
    one_line_error(tmp_path, "is a directory")


def test_a_non_image_file_is_an_error(tmp_path: Path):
    path = tmp_path / "notes.txt"
    path.write_text("not a picture")
    one_line_error(path, "not an image Pillow can read")


def test_a_truncated_image_is_an_error():
    data = encoded(photo(500, 500), "PNG")
    one_line_error(data[: len(data) // 2], "damaged image")


def test_empty_bytes_are_an_error():
    one_line_error(b"", "empty")


def test_a_decompression_bomb_is_refused():
    one_line_error(png_header_only(20000, 20000), "pixel limit")


def test_the_bomb_warning_is_an_error_here_only():
    # 100 M pixels: above Pillow's warning threshold, below its hard error.
    before = list(warnings.filters)
    one_line_error(png_header_only(10000, 10000), "pixel limit|decompression bomb")
    assert warnings.filters == before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Image.open(io.BytesIO(png_header_only(10000, 10000)))
    assert any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)


def test_the_pixel_cap_holds_even_if_pillows_limit_was_lifted(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    one_line_error(png_header_only(20000, 20000), "over the 89,478,485-pixel limit")


def test_in_memory_images_over_the_pixel_cap_are_refused(monkeypatch):
    monkeypatch.setattr(_images, "MAX_PIXELS", 100 * 100)
    one_line_error(photo(101, 100), "pixel limit")
    one_line_error(np.zeros((101, 100), dtype=np.uint8), "pixel limit")


def test_files_and_bytes_over_the_byte_cap_are_refused(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(_images, "MAX_FILE_BYTES", 1000)
    data = encoded(photo(200, 200), "PNG")
    assert len(data) > 1000
    path = tmp_path / "big.png"
    path.write_bytes(data)
    one_line_error(path, "over the 1.0 kB limit")
    one_line_error(data, "over the 1.0 kB limit")
    one_line_error(io.BytesIO(data), "more than 1.0 kB")


def test_a_text_mode_file_object_is_an_error(tmp_path: Path):
    path = tmp_path / "a.txt"
    path.write_text("hello")
    with open(path) as handle:
        one_line_error(handle, "binary mode")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:text/plain;base64,aGVsbG8=", "is not an image"),
        ("data:image/png,rawbytes", "must be base64"),
        ("data:image/png;base64,@@@@", "corrupt"),
        ("data:image/png;base64," + base64.b64encode(b"hello").decode(), "not an image"),
        ("https://", "not a valid image URL"),
    ],
)
def test_bad_urls_are_errors(url, message):
    one_line_error(url, message)


@pytest.mark.parametrize("obj", [42, object(), None, {"url": "x"}, [1, 2, 3]])
def test_unsupported_objects_are_errors(obj):
    one_line_error(obj, f"cannot send a {type(obj).__name__} as an image")


# ---------------------------------------------------------------------------------------------
# Display


def test_repr_never_contains_the_base64_payload():
    part = image_part(photo(800, 600), "high")
    assert "base64" not in repr(part)
    size = f"{part.nbytes / 1000:.1f} kB"
    assert repr(part) == f"ImagePart(JPEG 800×600, {size}, detail high, ~765 tokens)"


def test_html_shows_a_small_thumbnail_and_the_cost():
    part = image_part(photo(2000, 1000), "high")
    html = part._repr_html_()
    assert part.thumbnail is not None
    assert part.thumbnail.startswith(JPEG_PREFIX)
    assert f'src="{part.thumbnail}"' in html
    assert "2000×1000 → 1536×768" in html
    thumb = Image.open(io.BytesIO(base64.b64decode(part.thumbnail.split(",", 1)[1])))
    assert max(thumb.size) == _images.THUMBNAIL_SIZE
    assert len(part.thumbnail) < len(part.url) // 10


def test_a_url_part_shows_the_link_without_loading_it():
    html = image_part("https://example.invalid/<x>.png")._repr_html_()
    assert "<img" not in html
    assert "&lt;x&gt;" in html


def test_importing_the_module_does_not_import_pillow_numpy_or_matplotlib():
    code = (
        "import sys, nbchat.convert.images\n"
        "heavy = [m for m in ('PIL', 'numpy', 'matplotlib') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
