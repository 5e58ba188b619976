"""Encode and decode single RGB frames as PNG (lossless) or JPEG (lossy) bytes.

PNG is written directly (signature, IHDR, one IDAT, IEND) with the ``Sub`` row filter and
ISA-L's deflate (``isal``, zlib-compatible streams, ~6x faster than zlib at level 1; zlib when
``isal`` is not installed): several times faster than Pillow's adaptive filtering at the same
size. Any PNG decoder reads it. JPEG and all decoding go through Pillow.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

try:
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - isal ships wheels for the common platforms
    _deflate = zlib  # type: ignore[assignment]

from sim2real.datasets.schema import DatasetError

IMAGE_FORMATS = ("png", "jpeg")


def encode_image(frame: np.ndarray, image_format: str = "png", *, png_level: int = 1, jpeg_quality: int = 95) -> bytes:
    """Encode one uint8 (H, W, 3) RGB frame.

    ``png_level`` is the deflate level (0-9; ISA-L caps it at 3; 1 is fast and still
    compresses rendered frames well); ``jpeg_quality`` in [1, 95].
    """
    if image_format == "png":
        return encode_png(frame, png_level)
    image = Image.fromarray(np.ascontiguousarray(frame))
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        raise ValueError(f"unknown image format {image_format!r}; known formats: {', '.join(IMAGE_FORMATS)}")
    return buffer.getvalue()


def encode_images(
    frames: np.ndarray, image_format: str = "png", *, png_level: int = 1, jpeg_quality: int = 95
) -> list[bytes]:
    """Encode uint8 (T, H, W, 3) RGB frames, one file each (PNG frames are filtered as one stack)."""
    if image_format == "png":
        return encode_pngs(frames, png_level)
    return [encode_image(frame, image_format, png_level=png_level, jpeg_quality=jpeg_quality) for frame in frames]


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return b"".join((struct.pack(">I", len(data)), tag, data, struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = _png_chunk(b"IEND", b"")


def encode_png(frame: np.ndarray, level: int = 1) -> bytes:
    """uint8 (H, W, 3) RGB -> PNG bytes (8-bit RGB, no interlace, ``Sub`` filter on every row)."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
    return encode_pngs(frame[None], level)[0]


def encode_pngs(frames: np.ndarray, level: int = 1) -> list[bytes]:
    """uint8 (T, H, W, 3) RGB frames -> T PNG files (as :func:`encode_png`); the row filter
    runs once over the whole stack, so per-frame cost is only the deflate."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"expected uint8 (T, H, W, 3) frames, got {frames.dtype} {frames.shape}")
    count, height, width = frames.shape[:3]
    rows = np.ascontiguousarray(frames).reshape(count, height, width * 3)
    filtered = np.empty((count, height, width * 3 + 1), np.uint8)
    filtered[:, :, 0] = 1  # filter type Sub: each byte minus the byte one pixel to the left (mod 256)
    filtered[:, :, 1:4] = rows[:, :, :3]
    np.subtract(rows[:, :, 3:], rows[:, :, :-3], out=filtered[:, :, 4:])
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    level = min(level, 3) if _deflate is not zlib else level
    return [b"".join((_PNG_SIGNATURE, header, _png_chunk(b"IDAT", _deflate.compress(f, level)), _PNG_END))
            for f in filtered]  # fmt: skip


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Decode PNG/JPEG bytes to uint8 (H, W, 3) RGB; grey or RGBA images are converted to RGB.

    ``where`` names the file, episode, key and step for the error raised on undecodable bytes.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode != "RGB":
                image = image.convert("RGB")
            return np.asarray(image, dtype=np.uint8)
    except Exception as error:  # Pillow raises many types for bad data
        raise DatasetError(f"{where}: cannot decode image ({type(error).__name__}: {error})") from error


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 (T, H, W, 3) frames to (T, size[0], size[1], 3) with bilinear filtering."""
    height, width = size
    if frames.shape[1:3] == (height, width):
        return frames
    out = [np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR)) for frame in frames]
    return np.stack(out).astype(np.uint8, copy=False)
