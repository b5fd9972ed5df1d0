"""Decoding and encoding images without losing what the user gave us.

Every supported mode becomes a ``Picture``: float RGB in [0, 1], an optional alpha plane, and
what is needed to write the result back the same way (grayscale, 8 or 16 bits). Pillow
reads 16-bit colour only as 8-bit, so those files go through OpenCV.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import TranslatorError
from .files import atomic_path

# Largest input decoded, checked from the header before any decoding (decompression bombs).
MAX_PIXELS = int(os.environ.get("TRANSLATOR_MAX_PIXELS", 64_000_000))
EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
# zlib level 1: PNG stays lossless, and encoding a large result takes a fraction of level 6's time
PNG_COMPRESSION = 1
# OpenCV with zlib's run-length strategy: a 1536x1152 upscale encoded in 97 ms (1.08 MB) against
# Pillow's 149 ms (1.37 MB) at the same level; a textured one in 112 ms against 228 ms, smaller too
PNG_OPTIONS = [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
# luma weights of R, G and B (BT.601): how a one-channel network (a colouriser) sees a colour
# image, and how a gray result is written
LUMA = (0.299, 0.587, 0.114)
_LUMA = np.array(LUMA, dtype=np.float32)


@dataclass
class Picture:
    # H x W x 3 float32 in [0, 1]
    rgb: np.ndarray
    # H x W float32 in [0, 1], or None
    alpha: np.ndarray | None = None
    # written back as a single channel (with alpha if any)
    grayscale: bool = False
    # 8 or 16 bits per channel on output
    bits: int = 8

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    def with_pixels(self, rgb: np.ndarray, alpha: np.ndarray | None, grayscale: bool | None = None) -> Picture:
        return replace(self, rgb=rgb, alpha=alpha, grayscale=self.grayscale if grayscale is None else grayscale)


def check_budget(width: int, height: int, name: str, max_pixels: int | None = None) -> None:
    limit = max_pixels or MAX_PIXELS
    if width * height > limit:
        raise TranslatorError(
            f"{name} is {width}x{height} ({width * height / 1e6:.0f} MP), over the {limit / 1e6:.0f} MP limit; "
            "downscale it first or raise TRANSLATOR_MAX_PIXELS"
        )


def unreadable(source) -> str | None:
    """Why ``source`` (a path or a binary file) is no image a dataset may hold, in a few words,
    from its header and structure (nothing decoded); None when it is one: Pillow opens it, its
    structure holds, and it is within the pixel budget."""
    try:
        with Image.open(source) as image:
            image.verify()
            width, height = image.size
    except Exception as error:  # what Pillow raises for bytes that are no image
        return type(error).__name__
    return "over the pixel budget" if width * height > MAX_PIXELS else None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Width and height as the file's header declares them, without decoding the pixels."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except FileNotFoundError:
        raise TranslatorError(f"image not found: {path}") from None
    except Image.DecompressionBombError:
        raise TranslatorError(f"{path.name} claims a size over Pillow's decompression-bomb limit; refused") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise TranslatorError(f"{path.name} is not an image (or not in a format Pillow reads)") from None


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> Picture:
    path = Path(path)
    if not path.is_file():
        raise TranslatorError(f"image not found: {path}" if not path.exists() else f"not a file: {path}")
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 MP on; our own budget below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)  # reads the header only
        with image:
            check_budget(*image.size, path.name, max_pixels)
            # before getexif(), which decodes PNGs and forgets the raw sample format
            sixteen_bit_colour = _sixteen_bit_colour(image)
            orientation = image.getexif().get(0x0112, 1)
            if sixteen_bit_colour:
                picture = _read_with_opencv(path, grayscale=image.mode == "LA")
            else:
                picture = from_pil(image)
    except Image.DecompressionBombError:
        raise TranslatorError(f"{path.name} claims a size over Pillow's decompression-bomb limit; refused") from None
    except UnidentifiedImageError:
        raise TranslatorError(f"{path.name} is not an image (or not in a format Pillow reads)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise TranslatorError(f"cannot decode {path.name}: truncated or corrupt ({error})") from None
    return apply_orientation(picture, orientation)


def from_pil(image: Image.Image) -> Picture:
    """A decoded Picture from a Pillow image of any mode (EXIF orientation not applied)."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        gray = np.asarray(image).astype(np.float32).clip(0, 65535) / 65535
        return _gray(gray, None, 16)
    if mode == "F":
        return _gray(np.asarray(image, dtype=np.float32).clip(0, 1), None, 16)
    if mode in ("1", "L") and "transparency" not in image.info:
        return _gray(_unit(np.asarray(image.convert("L"))), None, 8)
    if mode in ("LA", "La", "1", "L"):  # gray with alpha, or with a transparent colour key
        array = _unit(np.asarray(image.convert("LA")))
        return _gray(array[..., 0], array[..., 1], 8)
    has_alpha = mode in ("RGBA", "RGBa", "PA") or "transparency" in image.info
    array = _unit(np.asarray(image.convert("RGBA" if has_alpha else "RGB")))
    return Picture(np.ascontiguousarray(array[..., :3]), np.ascontiguousarray(array[..., 3]) if has_alpha else None)


def _gray(gray: np.ndarray, alpha: np.ndarray | None, bits: int) -> Picture:
    rgb = np.repeat(gray[..., None], 3, axis=2)
    return Picture(rgb, alpha, grayscale=True, bits=bits)


def _unit(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32) / 255


def _sixteen_bit_colour(image: Image.Image) -> bool:
    # Pillow names the file's real sample format in the decoder's raw mode, e.g. "RGB;16B"
    if image.mode not in ("RGB", "RGBA", "LA") or not image.tile:
        return False
    args = image.tile[0][3]
    raw = args if isinstance(args, str) else (args[0] if args else "")
    return ";16" in str(raw)


def _read_with_opencv(path: Path, grayscale: bool) -> Picture:
    array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16 or array.ndim != 3:
        raise TranslatorError(f"cannot decode {path.name} as 16-bit colour")
    array = array.astype(np.float32) / 65535
    rgb = np.ascontiguousarray(array[..., 2::-1])
    # OpenCV widens gray+alpha to four channels
    alpha = np.ascontiguousarray(array[..., 3]) if array.shape[2] == 4 else None
    return Picture(rgb, alpha, grayscale=grayscale, bits=16)


def apply_orientation(picture: Picture, orientation: int) -> Picture:
    """Turn the pixels upright as EXIF orientation 1..8 says (what ImageOps.exif_transpose does)."""
    if orientation not in range(2, 9):
        return picture

    def turn(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        turned = {
            2: lambda: a[:, ::-1],
            3: lambda: a[::-1, ::-1],
            4: lambda: a[::-1],
            5: lambda: a.swapaxes(0, 1),
            6: lambda: np.rot90(a, -1),
            7: lambda: np.rot90(a, -1)[::-1],
            8: lambda: np.rot90(a, 1),
        }[orientation]()
        return np.ascontiguousarray(turned)

    return picture.with_pixels(turn(picture.rgb), turn(picture.alpha))


def quantize(array: np.ndarray, bits: int) -> np.ndarray:
    top = 65535 if bits == 16 else 255
    return np.clip(array * top + 0.5, 0, top).astype(np.uint16 if bits == 16 else np.uint8)


def encode_png(picture: Picture, target: Path) -> None:
    """``target`` written as a lossless PNG with the picture's channels and bit depth. The
    encoder streams to the file: a large result's compressed bytes are never all in memory."""
    pixels = to_pixels(picture)
    if pixels.shape[2] == 2:  # 8-bit gray+alpha: OpenCV writes none; Pillow does
        Image.fromarray(pixels).save(target, format="PNG", compress_level=PNG_COMPRESSION)
    elif not cv2.imwrite(str(target), pixels, PNG_OPTIONS):
        raise TranslatorError("could not encode the result as PNG")


def to_pixels(picture: Picture, rows: int = 256) -> np.ndarray:
    """The integer pixels a PNG holds, in OpenCV's channel order (gray, BGR or BGRA; 8-bit
    gray+alpha as gray, alpha), made a band of ``rows`` at a time: a large result never has a
    second full-size float copy next to it."""
    if picture.grayscale:
        # OpenCV writes no gray+alpha, so 16-bit gray+alpha is written as RGBA
        order = ["Y"] if picture.alpha is None else (["Y", "A"] if picture.bits == 8 else ["Y", "Y", "Y", "A"])
    else:
        order = ["B", "G", "R"] + (["A"] if picture.alpha is not None else [])
    pixels = np.empty((picture.height, picture.width, len(order)), np.uint16 if picture.bits == 16 else np.uint8)
    for top in range(0, picture.height, rows):
        band = picture.rgb[top : top + rows].astype(np.float32, copy=False)
        planes = {"R": band[..., 0], "G": band[..., 1], "B": band[..., 2]}
        if picture.grayscale:
            planes["Y"] = band @ _LUMA
        if picture.alpha is not None:
            planes["A"] = picture.alpha[top : top + rows].astype(np.float32, copy=False)
        for index, name in enumerate(order):
            pixels[top : top + rows, :, index] = quantize(planes[name], picture.bits)
    return pixels


# what a result can be written as, by the suffix that names it: PNG keeps every bit; WebP at
# quality 100 is lossless too; below that WebP and JPEG trade detail for size
WRITTEN = {".png": "PNG", ".webp": "WebP", ".jpg": "JPEG", ".jpeg": "JPEG"}
QUALITY = 90


def write_image(picture: Picture, path: str | os.PathLike, quality: int = QUALITY) -> Path:
    """``picture`` written atomically in the format ``path``'s suffix names (``WRITTEN``); the
    lossy formats take 8 bits, and JPEG, which has no transparency, sets it on white."""
    path = Path(path)
    kind = WRITTEN.get(path.suffix.lower())
    if kind is None:
        raise TranslatorError(f"cannot write {path.name}: results are written as {', '.join(sorted(set(WRITTEN.values())))} ({', '.join(WRITTEN)})")
    if not 1 <= quality <= 100:
        raise TranslatorError(f"quality must be from 1 to 100, not {quality}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, path.suffix.lower()) as temp:
            if kind == "PNG":
                encode_png(picture, temp)
            else:
                _encode_8_bit(picture, temp, kind, quality)
    except OSError as error:
        raise TranslatorError(f"cannot write {path}: {error.strerror or error}") from None
    return path


def _encode_8_bit(picture: Picture, target: Path, kind: str, quality: int) -> None:
    rgb, alpha = picture.rgb, picture.alpha
    if kind == "JPEG" and alpha is not None:
        rgb, alpha = rgb * alpha[..., None] + (1 - alpha[..., None]), None
    pixels = to_pixels(Picture(rgb, alpha, picture.grayscale, 8))
    if pixels.shape[2] >= 3:  # OpenCV's order back to Pillow's
        pixels = pixels[..., [2, 1, 0, 3][: pixels.shape[2]]]
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    if image.mode == "LA":  # WebP keeps transparency as RGBA
        image = image.convert("RGBA")
    if kind == "WebP":
        image.save(target, format="WEBP", lossless=quality == 100, quality=quality, method=4)
    else:
        image.save(target, format="JPEG", quality=quality, optimize=True)
