"""Episode media: frames as an animated GIF (and MP4 when ``imageio-ffmpeg`` is installed) and as
a PNG contact sheet."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

__all__ = ["contact_sheet", "write_video"]


def _as_rgb_uint8(frame: ArrayLike) -> np.ndarray:
    """(H, W, 3) uint8 from uint8/float [0, 1] frames of shape (H, W), (H, W, 1|3|4)."""
    array = np.asarray(frame)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W, 3) frame, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def write_video(frames: Sequence[ArrayLike], path: Path | str, fps: float = 10.0, *, mp4: bool = True) -> list[Path]:
    """Write episode frames as an animated GIF (Pillow), and an MP4 when imageio-ffmpeg is installed.

    Args:
        frames: T frames, each (H, W, 3) uint8 RGB (or (H, W) / float in [0, 1]), one size.
        path: output path; the GIF is written at ``path`` with suffix ``.gif`` and the MP4
            (H.264, yuv420p, frames padded to even size) beside it with suffix ``.mp4``.
        fps: frames per second (the control rate, 10 Hz by default). GIF frame delays are
            multiples of 10 ms, so the GIF's rate is rounded to that.
        mp4: also write the MP4 when ``imageio_ffmpeg`` can be imported.

    Returns:
        The written paths, GIF first. Pillow merges identical consecutive frames of a GIF
        (adding up their durations), so a GIF may hold fewer frames than ``frames``.
    """
    arrays = [_as_rgb_uint8(f) for f in frames]
    if not arrays:
        raise ValueError("no frames to write")
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError("all frames must have one size")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    gif_path = target.with_suffix(".gif")
    images = [Image.fromarray(a) for a in arrays]
    duration_ms = max(20, round(100.0 / fps) * 10)
    images[0].save(gif_path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    written = [gif_path]
    if mp4 and importlib.util.find_spec("imageio_ffmpeg") is not None:
        written.append(_write_mp4(arrays, target.with_suffix(".mp4"), fps))
    return written


def _write_mp4(arrays: list[np.ndarray], path: Path, fps: float) -> Path:
    import imageio_ffmpeg

    height, width = arrays[0].shape[:2]
    pad_h, pad_w = height % 2, width % 2  # yuv420p needs even dimensions
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width + pad_w, height + pad_h),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=2,
        output_params=["-loglevel", "error"],
    )
    writer.send(None)
    try:
        for array in arrays:
            if pad_h or pad_w:
                array = np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            writer.send(np.ascontiguousarray(array))
    finally:
        writer.close()
    return path


def contact_sheet(
    frames: Sequence[ArrayLike], path: Path | str, columns: int = 8, max_frames: int = 32, gap: int = 2
) -> Path:
    """Tile up to ``max_frames`` evenly spaced frames of an episode into one PNG grid.

    Args:
        frames: T frames, each (H, W, 3) uint8 (see :func:`write_video`), one size.
        path: output PNG path.
        columns: frames per row.
        max_frames: frames to show at most, sampled evenly, first and last included.
        gap: white border between tiles, pixels.

    Returns:
        ``path``. The image is ``(rows * (H + gap) + gap, cols * (W + gap) + gap, 3)``.
    """
    arrays = [_as_rgb_uint8(f) for f in frames]
    if not arrays:
        raise ValueError("no frames to tile")
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError("all frames must have one size")
    count = min(len(arrays), max(1, max_frames))
    picks = np.unique(np.linspace(0, len(arrays) - 1, count).round().astype(int))
    cols = max(1, min(columns, picks.size))
    rows = math.ceil(picks.size / cols)
    height, width = arrays[0].shape[:2]
    sheet = np.full((rows * (height + gap) + gap, cols * (width + gap) + gap, 3), 255, dtype=np.uint8)
    for k, index in enumerate(picks):
        r, c = divmod(k, cols)
        top, left = gap + r * (height + gap), gap + c * (width + gap)
        sheet[top : top + height, left : left + width] = arrays[index]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(target)
    return target
