"""Decoding one photo: bytes -> PIL image (EXIF-oriented) -> uint8 tensor of the asked size and channels.

Every way a file can be unusable becomes an :class:`ImageProblem` with one of the reasons in
:data:`REASONS`, so that callers can skip the file with a message instead of dying.

Pixel limit: a picture whose header claims more than :func:`pixel_limit` pixels (width x height,
default :data:`DEFAULT_MAX_PIXELS`, 100 megapixels; set another with the environment variable
``STACKGAN_MAX_IMAGE_PIXELS``) is refused as "too large" before any of its pixels is decoded, so
that one decompression bomb (a small file that claims e.g. 20,000 x 20,000 pixels) costs one
skipped file, not the memory of the machine. PIL's own check (``Image.MAX_IMAGE_PIXELS``, raised
to this limit when it is lower) stays as a backstop for sizes that only show while decoding (GIF
frames); what it refuses is reported the same way.
"""

from __future__ import annotations

import io
import os
import struct
import re
import warnings
from typing import TYPE_CHECKING

from PIL import Image, ImageOps, UnidentifiedImageError

from stackgan.errors import ConfigError

UNREADABLE = "unreadable"
TRUNCATED = "truncated"
NOT_AN_IMAGE = "not an image"
NOT_LISTED = "not listed in names.tsv"
MISSING = "listed but missing"
TOO_SMALL = "too small"
TOO_LARGE = "too large"
REASONS = (UNREADABLE, TRUNCATED, NOT_AN_IMAGE, NOT_LISTED, MISSING, TOO_SMALL, TOO_LARGE)

DEFAULT_MAX_PIXELS = 100_000_000  # 100 megapixels: larger than any camera photo of a dish
MAX_PIXELS_ENV = "STACKGAN_MAX_IMAGE_PIXELS"

if TYPE_CHECKING:
    import torch

CROPS = ("center", "none")
CHANNELS = (1, 3, 4)

_ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class ImageProblem(Exception):
    """A file that cannot be used: ``reason`` (one of REASONS) and a human ``detail``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def pixel_limit() -> int:
    """The most pixels (width x height) a picture may claim: ``$STACKGAN_MAX_IMAGE_PIXELS`` or
    :data:`DEFAULT_MAX_PIXELS`. A limit above PIL's own (``Image.MAX_IMAGE_PIXELS``, its backstop
    while decoding) raises that one to match; a lower one leaves it (it guards other pictures too)."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    limit = DEFAULT_MAX_PIXELS
    if raw:
        try:
            limit = int(raw.replace("_", "").replace(",", ""))
        except ValueError:
            limit = 0
        if limit < 1:
            raise ConfigError(f"{MAX_PIXELS_ENV}={raw!r}: give a whole number of pixels of at least 1 "
                              f"(the default is {DEFAULT_MAX_PIXELS:,})")
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit
    return limit


def _too_large(size: tuple[int, int] | None, limit: int, pixels: int | None = None) -> ImageProblem:
    if size is not None:
        return ImageProblem(TOO_LARGE, f"{size[0]} x {size[1]} pixels, limit {limit:,}")
    return ImageProblem(TOO_LARGE, f"{pixels or 'more than ' + format(2 * limit, ',')} pixels, limit {limit:,}")


def _claimed_size(fp) -> tuple[int, int] | None:
    """The ``(width, height)`` a header claims, read without PIL's size check; only used to name the
    size of a picture PIL refused as a decompression bomb. None when no format reads it."""
    Image.init()
    try:
        fp.seek(0)
        prefix = fp.read(16)
    except OSError:
        return None
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:
            ok = accept(prefix) if accept else True
            if not ok or isinstance(ok, str):
                continue
            fp.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return tuple(factory(fp, "").size)  # type: ignore[return-value]
        except Exception:  # this format cannot read it (or checks the size itself): try the next
            continue
    return None


def _bomb(exc: Exception, fp, limit: int) -> ImageProblem:
    """PIL's DecompressionBombError -> "too large", with the claimed size where it can be read."""
    size = _claimed_size(fp) if fp is not None else None
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return _too_large(size, limit, int(found.group(1)) if found else None)


def _check_size(size: tuple[int, int], limit: int) -> None:
    if size[0] * size[1] > limit:
        raise _too_large(size, limit)


def read_bytes(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise _open_error(exc) from None


def _webp_truncated(data: bytes) -> bool:
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        (riff_size,) = struct.unpack("<I", data[4:8])
        return len(data) < riff_size + 8
    return False


def _open_error(exc: Exception) -> ImageProblem:
    if isinstance(exc, UnidentifiedImageError):
        return ImageProblem(NOT_AN_IMAGE, "not a picture format PIL knows (jpg/png/webp...)")
    if isinstance(exc, IsADirectoryError):
        return ImageProblem(UNREADABLE, "it is a folder, not a file")
    if isinstance(exc, EOFError) or "truncat" in str(exc).lower():
        return ImageProblem(TRUNCATED, f"the file ends inside its header ({exc})")
    if isinstance(exc, OSError) and exc.strerror:
        return ImageProblem(UNREADABLE, exc.strerror)
    return ImageProblem(UNREADABLE, f"bad header ({exc})")


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1 = as stored)."""
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block must not make the photo unusable
        return 1


def _displayed_size(im: Image.Image, orientation: int) -> tuple[int, int]:
    """(width, height) after the EXIF orientation is applied."""
    width, height = im.size
    return (height, width) if orientation in _ROTATED_ORIENTATIONS else (width, height)


def read_header(path: str | os.PathLike) -> tuple[tuple[int, int], str]:
    """Displayed ``(width, height)`` and PIL mode from the header only (fast; misses truncation)."""
    limit = pixel_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if os.path.getsize(path) == 0:
                    raise UnidentifiedImageError("empty file")
                _check_size(im.size, limit)
                return _displayed_size(im, _orientation(im)), im.mode
    except Image.DecompressionBombError as exc:
        with open(path, "rb") as fh:
            raise _bomb(exc, fh, limit) from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, UnidentifiedImageError) as exc:
        raise _open_error(exc) from None


def open_image(data: bytes, min_side_hint: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode image bytes fully and apply the EXIF orientation.

    Returns the image and its original size ``(width, height)`` as displayed (after EXIF
    rotation, before any reduction). ``min_side_hint``: the decoded JPEG may be reduced by
    libjpeg's DCT scaling while its short side stays at least this big (a large speed-up for
    big photos that are resized to 64 px anyway).
    """
    if _webp_truncated(data):
        raise ImageProblem(TRUNCATED, f"the WebP header announces more bytes than the {len(data)} present")
    if not data:
        raise ImageProblem(NOT_AN_IMAGE, "an empty file")
    limit = pixel_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise _bomb(exc, io.BytesIO(data), limit) from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise _open_error(exc) from None
    _check_size(im.size, limit)  # before a single pixel is decoded
    orientation = _orientation(im)
    width, height = _displayed_size(im, orientation)
    try:
        if min_side_hint and im.format == "JPEG":
            s = min(im.size) // (2 * min_side_hint)
            if s >= 2:
                im.draft(None, (im.size[0] // s, im.size[1] // s))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
        _check_size(im.size, limit)  # a size that only showed while decoding (GIF frames)
    except Image.DecompressionBombError as exc:
        raise _bomb(exc, None, limit) from None
    except EOFError as exc:
        raise ImageProblem(TRUNCATED, str(exc) or "unexpected end of file") from None
    except (OSError, SyntaxError, ValueError, struct.error, MemoryError) as exc:
        msg = str(exc)
        if "truncat" in msg.lower():
            raise ImageProblem(TRUNCATED, msg) from None
        raise ImageProblem(UNREADABLE, f"cannot decode ({msg})") from None
    if orientation != 1:
        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # keep the unrotated picture rather than losing it
            pass
    return im, (width, height)


def _to_8bit(im: Image.Image) -> Image.Image:
    """16-bit / 32-bit / float grayscale -> 8-bit L, scaled by the value range of the mode."""
    import numpy as np

    arr = np.asarray(im, dtype=np.float64)
    top = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
    if im.mode == "F" and arr.max(initial=0) <= 1.0:
        top = 1.0
    return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")


def convert_channels(im: Image.Image, channels: int) -> Image.Image:
    """Any PIL mode -> ``L`` (1), ``RGB`` (3) or ``RGBA`` (4).

    Grayscale, CMYK, palette, LA and RGBA become RGB for 3 channels (transparent parts are
    composited over white) and L for 1; for 4 channels the alpha is kept and pictures without
    one get an opaque alpha.
    """
    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {CHANNELS}, got {channels}")
    try:
        if im.mode in ("I", "F") or im.mode.startswith("I;16"):
            im = _to_8bit(im)
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA")
        elif im.mode == "1":
            im = im.convert("L")
        has_alpha = im.mode in ("RGBA", "LA", "RGBa", "La") or "transparency" in im.info
        if channels == 4:
            return im.convert("RGBA")
        if has_alpha:
            rgba = im.convert("RGBA")
            back = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            back.alpha_composite(rgba)
            im = back
        return im.convert("RGB" if channels == 3 else "L")
    except (ValueError, OSError) as exc:
        raise ImageProblem(UNREADABLE, f"unsupported colour mode {im.mode} ({exc})") from None


def fit_image(im: Image.Image, size: tuple[int, int], crop: str = "center") -> Image.Image:
    """Resize to ``size = (height, width)`` once, with a Lanczos (antialiased) filter.

    ``crop="center"`` cuts the largest centred box of the target shape (a square for square
    sizes) and resizes it; ``crop="none"`` keeps the whole picture, resized to fit and padded
    with white (transparent for RGBA) on the short side.
    """
    th, tw = size
    w, h = im.size
    if crop == "center":
        if w * th > h * tw:  # too wide
            cw, ch = h * tw / th, float(h)
        else:
            cw, ch = float(w), w * th / tw
        x0, y0 = (w - cw) / 2, (h - ch) / 2
        return im.resize((tw, th), Image.LANCZOS, box=(x0, y0, x0 + cw, y0 + ch), reducing_gap=3.0)
    if crop == "none":
        scale = min(tw / w, th / h)
        nw, nh = max(1, min(tw, round(w * scale))), max(1, min(th, round(h * scale)))
        small = im.resize((nw, nh), Image.LANCZOS, reducing_gap=3.0)
        if (nw, nh) == (tw, th):
            return small
        fill = {"RGBA": (255, 255, 255, 0), "RGB": (255, 255, 255), "L": 255}.get(im.mode, 0)
        canvas = Image.new(small.mode, (tw, th), fill)
        canvas.paste(small, ((tw - nw) // 2, (th - nh) // 2))
        return canvas
    raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")


def decode_to_tensor(data: bytes, size: tuple[int, int], channels: int = 3,
                     crop: str = "center") -> tuple["torch.Tensor", tuple[int, int], str]:
    """Bytes -> (uint8 tensor [C, H, W], original (width, height), original PIL mode)."""
    from torchvision.transforms.functional import pil_to_tensor

    im, orig = open_image(data, min_side_hint=max(size))
    mode = im.mode
    im = fit_image(convert_channels(im, channels), size, crop)
    return pil_to_tensor(im).contiguous(), orig, mode
