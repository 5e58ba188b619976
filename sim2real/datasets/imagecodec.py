"""Encode and decode single RGB frames as PNG (lossless) or JPEG (lossy) bytes with Pillow."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from sim2real.datasets.schema import DatasetError

IMAGE_FORMATS = ("png", "jpeg")


def encode_image(frame: np.ndarray, image_format: str = "png", *, png_level: int = 1, jpeg_quality: int = 95) -> bytes:
    """Encode one uint8 (H, W, 3) RGB frame.

    ``png_level`` is the zlib level (0-9; 1 is fast and still compresses rendered frames well);
    ``jpeg_quality`` in [1, 95].
    """
    image = Image.fromarray(np.ascontiguousarray(frame))
    buffer = io.BytesIO()
    if image_format == "png":
        image.save(buffer, format="PNG", compress_level=png_level)
    elif image_format == "jpeg":
        image.save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        raise ValueError(f"unknown image format {image_format!r}; known formats: {', '.join(IMAGE_FORMATS)}")
    return buffer.getvalue()


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
