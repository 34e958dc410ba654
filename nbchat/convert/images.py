"""Images in, ``image_url`` content parts out: PIL images, arrays, figures, files, bytes and URLs.

In-memory and file images are downscaled to what the API uses for the detail and sent as base64
data URLs; http(s) URLs pass through untouched. No HTTP here. Pillow is imported lazily.

Sizing (the API's own rules, applied here so no byte is sent that the server would discard):

- ``high`` and ``auto``: fit within 2048×2048, then shrink until the shortest side is ≤ 768 px.
- ``low``: fit within 512×512.
- Images are never enlarged.

Token estimate: ``low`` costs 85; ``high`` (and ``auto``, counted as high: an upper bound) costs
85 + 170 per 512-px tile of the downscaled image.

Encoding: PNG when the image has transparency or is a graphic (a colour image of at most 256
colours, or one whose 8 commonest colours cover half its pixels — charts, screenshots), as a
256-colour palette when that looks the same; JPEG at quality 85 otherwise (photos). A PNG,
JPEG, WebP or still GIF file (or bytes, or data URL) that already fits and needs no EXIF
rotation is sent byte for byte as it is.

Limits (an :class:`ImageError`, and nothing is sent): at most :data:`MAX_FILE_BYTES` (50 MB) of
file/bytes/data-URL input, and at most :data:`MAX_PIXELS` (89,478,485, Pillow's own
decompression-bomb limit, enforced even if ``PIL.Image.MAX_IMAGE_PIXELS`` was raised) pixels.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import html
import io
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..protocol.exceptions import NbchatError
from .sizes import human_bytes, read_file

__all__ = [
    "DETAILS",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "ImageError",
    "ImagePart",
    "estimate_image_tokens",
    "image_part",
    "target_size",
]

DETAILS = ("low", "high", "auto")
MAX_FILE_BYTES = 50 * 1024 * 1024
# Pillow's default MAX_IMAGE_PIXELS: a quarter gigabyte of 24-bit pixels.
MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3

JPEG_QUALITY = 85
THUMBNAIL_SIZE = 160

# Largest change (in levels, on any channel) a palette may make to a pixel unnoticed.
_PALETTE_TOLERANCE = 8

_HIGH_BOX = 2048
_HIGH_SHORT_SIDE = 768
_LOW_BOX = 512
_TILE = 512
_BASE_TOKENS = 85
_TILE_TOKENS = 170

# Formats every vision server reads; others are re-encoded.
_PASS_THROUGH = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
_PASS_MODES = {"1", "L", "LA", "P", "RGB", "RGBA"}
# EXIF orientations that turn the picture a quarter: width and height trade places.
_SWAPS_AXES = (5, 6, 7, 8)


class ImageError(NbchatError, ValueError):
    """An object that cannot be sent as an image; nothing was sent."""


@dataclass(frozen=True, repr=False)
class ImagePart:
    """One image ready to send: the protocol part plus what it will cost.

    ``width``/``height`` are the pixels sent (None for a URL, which is never fetched),
    ``original_size`` the pixels before downscaling, ``nbytes`` the encoded image's size
    (0 for a URL), ``tokens`` the estimated prompt tokens (None for a URL at high/auto detail,
    whose size is unknown).
    """

    url: str
    detail: str
    width: int | None = None
    height: int | None = None
    original_size: tuple[int, int] | None = None
    media_type: str | None = None
    nbytes: int = 0
    tokens: int | None = None
    source: str = ""
    thumbnail: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The ``image_url`` content part of a user message."""
        return {"type": "image_url", "image_url": {"url": self.url, "detail": self.detail}}

    @property
    def is_url(self) -> bool:
        """True when the part points at a remote URL rather than carrying the image."""
        return not self.url.startswith("data:")

    @property
    def resized(self) -> bool:
        return self.original_size is not None and self.original_size != (self.width, self.height)

    def summary(self) -> str:
        """One line: what is sent and what it costs."""
        if self.is_url:
            cost = f"~{self.tokens} tokens" if self.tokens is not None else "tokens unknown"
            return f"image URL, detail {self.detail}, {cost} (not fetched)"
        kind = (self.media_type or "image").removeprefix("image/").upper()
        size = f"{self.width}×{self.height}"
        if self.resized and self.original_size is not None:
            size = f"{self.original_size[0]}×{self.original_size[1]} → {size}"
        cost = f"detail {self.detail}, ~{self.tokens} tokens"
        return f"{kind} {size}, {human_bytes(self.nbytes)}, {cost}"

    def __repr__(self) -> str:
        # The data URL can be megabytes: never put it in a repr.
        return f"ImagePart({self.summary()})"

    def _repr_html_(self) -> str:
        caption = html.escape(self.summary())
        if self.thumbnail is None:
            target = html.escape(self.url if len(self.url) <= 200 else self.url[:200] + "…")
            return f"<div><code>{target}</code><br><small>{caption}</small></div>"
        return (
            f'<figure style="margin:0;display:inline-block">'
            f'<img src="{self.thumbnail}" alt="image sent to the model" '
            f'style="max-width:{THUMBNAIL_SIZE}px;max-height:{THUMBNAIL_SIZE}px;'
            f'border:1px solid #ccc">'
            f"<figcaption><small>{caption}</small></figcaption></figure>"
        )


# ---------------------------------------------------------------------------------------------
# Sizing and tokens


def _check_detail(detail: str | None) -> str:
    if detail is None:
        return "auto"
    if detail not in DETAILS:
        raise ImageError(f"detail must be one of low, high, auto, not {detail!r}")
    return detail


def target_size(width: int, height: int, detail: str = "auto") -> tuple[int, int]:
    """The pixel size the API works with for an image of ``width``×``height`` at ``detail``."""
    detail = _check_detail(detail)
    if width < 1 or height < 1:
        raise ImageError(f"an image needs a positive size, not {width}×{height}")
    if detail == "low":
        return _fit(width, height, _LOW_BOX / max(width, height))
    width, height = _fit(width, height, _HIGH_BOX / max(width, height))
    return _fit(width, height, _HIGH_SHORT_SIDE / min(width, height))


def _fit(width: int, height: int, scale: float) -> tuple[int, int]:
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def estimate_image_tokens(width: int, height: int, detail: str = "auto") -> int:
    """Prompt tokens the API charges for an image: 85 at low, 85 + 170 per 512-px tile at high.

    ``auto`` is counted as high (the server may pick low for small images: an upper bound).
    """
    detail = _check_detail(detail)
    if detail == "low":
        return _BASE_TOKENS
    w, h = target_size(width, height, detail)
    return _BASE_TOKENS + _TILE_TOKENS * math.ceil(w / _TILE) * math.ceil(h / _TILE)


# ---------------------------------------------------------------------------------------------
# Entry point


def image_part(obj: Any, detail: str | None = "auto") -> ImagePart:
    """Turn ``obj`` into an :class:`ImagePart` for ``detail`` (low, high or auto).

    ``obj`` may be a PIL image, a numpy array (H×W, H×W×1/3/4 or channels first; uint8,
    uint16, bool, other ints in 0–255, or floats in 0–1), a matplotlib Figure (or anything
    with a ``.figure``, such as Axes; drawn at its own dpi, or lower if that would exceed the
    detail's size), a path (str or
    ``os.PathLike``), bytes, a binary file object, an http(s) URL, a ``data:image/…;base64``
    URL, an IPython ``Image`` or an existing ImagePart. Raises :class:`ImageError`.
    """
    detail = _check_detail(detail)
    if isinstance(obj, ImagePart):
        return image_part(obj.url, detail)
    if isinstance(obj, str):
        return _from_string(obj, detail)
    if isinstance(obj, os.PathLike):
        return _from_file(os.fspath(obj), detail)
    if isinstance(obj, bytes | bytearray | memoryview):
        return _from_bytes(bytes(obj), detail, "bytes")
    pil = _pil_image_class()
    if pil is not None and isinstance(obj, pil):
        return _from_pil(obj, detail, "PIL image")
    if _is_ndarray(obj):
        return _from_pil(_array_to_pil(obj), detail, "array")
    figure = _figure_of(obj)
    if figure is not None:
        return _from_bytes(_render_figure(figure, detail), detail, "matplotlib figure", keep=False)
    if _is_ipython_image(obj):
        return _from_ipython_image(obj, detail)
    if callable(getattr(obj, "read", None)):
        return _from_bytes(_read_file_object(obj), detail, "file object")
    raise ImageError(
        f"cannot send a {type(obj).__name__} as an image; pass a PIL image, numpy array, "
        "matplotlib figure, file path, bytes or an http(s)/data URL"
    )


# ---------------------------------------------------------------------------------------------
# Sources


def _from_string(text: str, detail: str) -> ImagePart:
    stripped = text.strip()
    lowered = stripped[:8].lower()
    if lowered.startswith(("http://", "https://")):
        return _from_url(stripped, detail)
    if lowered.startswith("data:"):
        return _from_data_url(stripped, detail)
    return _from_file(os.path.expanduser(text), detail)


def _from_url(url: str, detail: str) -> ImagePart:
    parts = urlsplit(url)
    if not parts.netloc or any(c.isspace() for c in url):
        raise ImageError(f"not a valid image URL: {url[:100]!r}")
    tokens = _BASE_TOKENS if detail == "low" else None
    return ImagePart(url=url, detail=detail, tokens=tokens, source="URL")


def _from_data_url(url: str, detail: str) -> ImagePart:
    header, sep, payload = url.partition(",")
    media = header[5:].split(";")
    if not sep or "base64" not in media[1:]:
        raise ImageError("a data URL image must be base64: data:image/png;base64,…")
    if not media[0].lower().startswith("image/"):
        raise ImageError(f"a data URL of type {media[0] or 'text/plain'!r} is not an image")
    if len(payload) > MAX_FILE_BYTES * 4 // 3 + 4:
        raise ImageError(f"the data URL holds more than {human_bytes(MAX_FILE_BYTES)}")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("the data URL's base64 payload is corrupt") from None
    return _from_bytes(data, detail, "data URL")


def _from_file(path: str, detail: str) -> ImagePart:
    data = read_file(path, limit=MAX_FILE_BYTES, what="image", error=ImageError)
    return _from_bytes(data, detail, f"file {os.path.basename(path) or path}")


def _read_file_object(obj: Any) -> bytes:
    try:
        data = obj.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read the file object: {exc}") from None
    if not isinstance(data, bytes | bytearray):
        raise ImageError("the file object must be opened in binary mode ('rb')")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"the file object holds more than {human_bytes(MAX_FILE_BYTES)}")
    return bytes(data)


def _is_ipython_image(obj: Any) -> bool:
    cls = type(obj)
    return cls.__name__ == "Image" and cls.__module__.startswith("IPython.")


def _from_ipython_image(obj: Any, detail: str) -> ImagePart:
    if getattr(obj, "data", None):
        return _from_bytes(bytes(obj.data), detail, "IPython Image")
    if getattr(obj, "url", None):
        return _from_string(obj.url, detail)
    if getattr(obj, "filename", None):
        return _from_file(obj.filename, detail)
    raise ImageError("the IPython Image has neither data, url nor filename")


def _pil_image_class() -> type | None:
    # A PIL image can only exist if PIL was imported: no need to import it to check.
    module = sys.modules.get("PIL.Image")
    return getattr(module, "Image", None) if module is not None else None


def _is_ndarray(obj: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(obj, numpy.ndarray)


def _figure_of(obj: Any) -> Any:
    module = sys.modules.get("matplotlib.figure")
    if module is None:
        return None
    if isinstance(obj, module.Figure):
        return obj
    figure = getattr(obj, "figure", None)
    if isinstance(figure, module.Figure | module.SubFigure):
        # A SubFigure's .figure is its root Figure.
        return figure.figure if isinstance(figure, module.SubFigure) else figure
    return None


def _render_figure(figure: Any, detail: str) -> bytes:
    """PNG of the figure as the notebook shows it, at no more pixels than the API will use.

    The figure's own dpi, cropped like the inline backend (``bbox_inches="tight"``); a figure
    bigger than the detail allows is drawn at a lower dpi instead of drawn big and shrunk:
    sharper text, and far less work.
    """
    width_in, height_in = figure.get_size_inches()
    dpi = float(figure.dpi)
    full = (max(1, round(width_in * dpi)), max(1, round(height_in * dpi)))
    _check_pixels(*full)
    fitted = target_size(*full, detail)
    dpi *= min(fitted[0] / full[0], fitted[1] / full[1])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _array_to_pil(array: Any) -> Any:
    import numpy as np
    from PIL import Image

    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ImageError(
            f"an image array must be H×W, H×W×3 or H×W×4, not shape {tuple(array.shape)}"
        )
    height, width = array.shape[:2]
    if width == 0 or height == 0:
        raise ImageError(f"the image array is empty (shape {tuple(array.shape)})")
    _check_pixels(width, height)
    # uint8 with 2, 3 or 4 channels: fromarray picks L, RGB or RGBA from the shape.
    return Image.fromarray(np.ascontiguousarray(_to_uint8(array, np)))


def _to_uint8(array: Any, np: Any) -> Any:
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array
    if kind == "b":
        return array.astype(np.uint8) * 255
    if kind == "f":
        if not np.isfinite(array).all():
            raise ImageError("the image array contains NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise ImageError(
                f"float image values must lie in [0, 1], not [{low:g}, {high:g}]; "
                "divide by 255 or clip first"
            )
        return np.rint(array * 255).astype(np.uint8)
    if kind in "iu":
        if array.dtype == np.uint16:
            return np.rint(array / 257).astype(np.uint8)
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ImageError(
                f"integer image values must lie in [0, 255], not [{low}, {high}] "
                f"(dtype {array.dtype})"
            )
        return array.astype(np.uint8)
    raise ImageError(f"cannot make an image of an array of dtype {array.dtype}")


# ---------------------------------------------------------------------------------------------
# The pipeline: open safely, downscale, pick a format, encode


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"the image is {width}×{height} = {width * height:,} pixels, over the "
            f"{MAX_PIXELS:,}-pixel limit (a possible decompression bomb)"
        )


def _from_bytes(data: bytes, detail: str, source: str, *, keep: bool = True) -> ImagePart:
    """Decode encoded image bytes; ``keep`` allows sending them unchanged when they fit."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_FILE_BYTES:
        raise ImageError(
            f"the {source} is {human_bytes(len(data))}, over the "
            f"{human_bytes(MAX_FILE_BYTES)} limit"
        )
    if not data:
        raise ImageError(f"the {source} is empty")
    with warnings.catch_warnings():
        # Only here, and only for the duration: a bomb is an error, not a warning.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image: Image.Image = Image.open(io.BytesIO(data))
            width, height = image.size
            _check_pixels(width, height)
            fmt = image.format
            orientation = _orientation(image)
            target = target_size(width, height, detail)
            if keep and _can_pass_through(image, target, orientation):
                image.load()
                return _finish(
                    image, detail, source, (width, height), data, _PASS_THROUGH[fmt or ""]
                )
            if fmt == "JPEG" and target != (width, height):
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: far less work for big photos.
                image.draft(image.mode if image.mode in ("RGB", "L") else None, target)
            image.load()
        except ImageError:
            raise
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise ImageError(
                f"the {source} is over Pillow's pixel limit (a possible decompression bomb)"
            ) from None
        except UnidentifiedImageError:
            raise ImageError(f"the {source} is not an image Pillow can read") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"the {source} is a damaged image: {exc}") from None
    target = target_size(width, height, detail)
    if orientation not in (None, 1):
        from PIL import ImageOps

        image = ImageOps.exif_transpose(image)
        if orientation in _SWAPS_AXES:
            width, height = height, width
            target = target[::-1]
    return _encode(image, detail, source, (width, height), target)


def _orientation(image: Any) -> int | None:
    try:
        return image.getexif().get(0x0112)
    except Exception:
        # A broken EXIF block should not stop an otherwise good image.
        return None


def _can_pass_through(image: Any, target: tuple[int, int], orientation: int | None) -> bool:
    return (
        image.format in _PASS_THROUGH
        and image.size == target
        and image.mode in _PASS_MODES
        and orientation in (None, 1)
        and getattr(image, "n_frames", 1) == 1
    )


def _from_pil(image: Any, detail: str, source: str) -> ImagePart:
    from PIL import Image

    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"the {source} is empty ({width}×{height})")
    _check_pixels(width, height)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image.load()
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise ImageError(f"the {source} is over Pillow's pixel limit") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"the {source} cannot be read: {exc}") from None
    return _encode(image, detail, source, (width, height), target_size(width, height, detail))


def _encode(
    image: Any, detail: str, source: str, original: tuple[int, int], target: tuple[int, int]
) -> ImagePart:
    """Downscale to ``target`` (computed from the original size, not a JPEG draft's)."""

    image = _downscale(_normalise_mode(image), target)
    buffer = io.BytesIO()
    if _is_graphic(image):
        media = "image/png"
        _palette_or_full(image).save(buffer, format="PNG")
    else:
        media = "image/jpeg"
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return _finish(image, detail, source, original, buffer.getvalue(), media)


def _palette_or_full(image: Any) -> Any:
    """A 256-colour palette version of an RGB graphic if it looks the same, else the image.

    Antialiased charts have thousands of colours but need no more than 256: the palette PNG
    is about a third of the size. It is used only if at most 1 pixel in 50 moves by more than
    a few levels (edge pixels do; a photo pasted into a screenshot would, by far more).
    """
    from PIL import Image, ImageChops

    if image.mode != "RGB":
        return image
    palette = image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    red, green, blue = ImageChops.difference(image, palette.convert("RGB")).split()
    error = ImageChops.lighter(red, ImageChops.lighter(green, blue)).histogram()
    off = sum(error[_PALETTE_TOLERANCE + 1 :])
    return palette if off * 50 <= image.width * image.height else image


def _finish(
    image: Any,
    detail: str,
    source: str,
    original: tuple[int, int],
    data: bytes,
    media: str,
) -> ImagePart:
    width, height = image.size
    return ImagePart(
        url=f"data:{media};base64,{base64.b64encode(data).decode('ascii')}",
        detail=detail,
        width=width,
        height=height,
        original_size=original,
        media_type=media,
        nbytes=len(data),
        tokens=estimate_image_tokens(width, height, detail),
        source=source,
        thumbnail=_thumbnail(image),
    )


def _normalise_mode(image: Any) -> Any:
    """RGB, RGBA, L or LA: the modes that resample smoothly and encode as PNG or JPEG."""
    mode = image.mode
    if mode == "P" or mode == "PA":
        image = image.convert("RGBA" if _has_palette_alpha(image) else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode.startswith("I;16") or mode == "I":
        image = image.convert("I").point(lambda value: value * (1 / 257)).convert("L")
    elif mode == "F":
        image = image.convert("L")
    elif mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "A" in mode else "RGB")
    return image


def _downscale(image: Any, target: tuple[int, int]) -> Any:
    """Resize to ``target``; drop an alpha channel that is opaque everywhere.

    A box-filter ``reduce`` by a whole factor comes first and Lanczos does the last ≥1.5×:
    a third of the time of Lanczos all the way, with no visible difference.
    """
    from PIL import Image

    if image.mode in ("RGBA", "LA"):
        if image.getchannel("A").getextrema()[0] < 255:
            # Real transparency: Pillow's resize premultiplies alpha, so edges stay clean.
            if image.size == target:
                return image
            return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=1.5)
        # Opaque: drop alpha first; Pillow's RGBA reduce premultiplies, twice the work.
        image = image.convert(image.mode[:-1])
    factor = int(min(image.width / target[0], image.height / target[1]) / 1.5)
    if factor > 1:
        image = image.reduce(factor)
    if image.size != target:
        image = image.resize(target, Image.Resampling.LANCZOS)
    return image


def _has_palette_alpha(image: Any) -> bool:
    return image.mode == "PA" or "transparency" in image.info


def _is_graphic(image: Any) -> bool:
    """Transparency, or few colours: a PNG keeps it exact and is usually smaller than a JPEG."""
    if image.mode in ("RGBA", "LA"):
        return True
    pixels = image.width * image.height
    colours = image.getcolors(maxcolors=min(65536, pixels))
    if colours is None:
        return False
    if image.mode != "L" and len(colours) <= 256:
        return True
    commonest = heapq.nlargest(8, (count for count, _ in colours))
    return sum(commonest) * 2 >= pixels


def _thumbnail(image: Any) -> str:
    from PIL import Image

    small = _normalise_mode(image)
    if max(small.size) > THUMBNAIL_SIZE:
        scale = THUMBNAIL_SIZE / max(small.size)
        size = (max(1, round(small.width * scale)), max(1, round(small.height * scale)))
        small = small.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    if small.mode in ("RGBA", "LA"):
        small.save(buffer, format="PNG")
        media = "image/png"
    else:
        small.save(buffer, format="JPEG", quality=80)
        media = "image/jpeg"
    return f"data:{media};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"
