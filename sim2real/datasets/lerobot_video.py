"""MP4 video for the LeRobot format through PyAV: one encoder per video file, frame-accurate decoding.

A camera's frames are encoded as one video stream per file, at ``fps`` frames per second with
frame ``n`` at presentation time ``n / fps`` s (LeRobot v3.0 puts several episodes one after the
other in one file; an episode's frames sit at ``from_timestamp + frame_index / fps``).

:class:`VideoCodec` holds the encoder settings. LeRobot's own defaults are the default
(``libsvtav1``, ``yuv420p``, GOP ``g=2``, ``crf=30``, SVT-AV1 preset 12); :data:`LOSSLESS` is
H.264 4:4:4 in RGB (``libx264rgb``, ``qp=0``), which decodes bit for bit to the frames written.
Decoding (:class:`VideoReader`) reads AV1, H.264, HEVC and MPEG-4 Part 2 (whatever the FFmpeg in
PyAV's wheel decodes) and converts every frame to RGB uint8.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from sim2real.datasets.schema import CorruptDataError, DatasetError

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: warnings and errors only (a user's setting wins)

#: Encoders whose quality is set by a constant rate factor (``crf``).
_CRF_CODECS = ("libsvtav1", "libx264", "libx264rgb", "libx265", "h264", "hevc")


@dataclass(frozen=True)
class VideoCodec:
    """Encoder settings of one video stream.

    Attributes:
        codec: FFmpeg encoder name (``libsvtav1``, ``libx264``, ``libx264rgb``, ``h264``, ``mpeg4``, ...).
        pix_fmt: pixel format of the encoded stream (``yuv420p``; ``rgb24`` for ``libx264rgb``).
        g: GOP size (frames between key frames); ``None`` leaves the encoder's default.
        crf: constant rate factor (lower = better; 0 = lossless for H.264); ``None`` leaves the
            encoder's default. Codecs without one (``mpeg4``) ignore it.
        preset: encoder speed preset (SVT-AV1: 0-13, LeRobot uses 12; x264: ``ultrafast`` ...
            ``veryslow``); ``None``: SVT-AV1 12, x264 its default.
        threads: encoder threads (``None``: the encoder's choice); a fixed count makes the bytes
            independent of the machine's core count.
        options: further FFmpeg encoder options, passed as they are.
    """

    codec: str = "libsvtav1"
    pix_fmt: str = "yuv420p"
    g: int | None = 2
    crf: int | None = 30
    preset: str | int | None = None
    threads: int | None = None
    options: dict[str, str] = field(default_factory=dict)

    def encoder_options(self) -> dict[str, str]:
        """The FFmpeg options of the encoder (strings, as PyAV takes them)."""
        out: dict[str, str] = {}
        if self.g is not None:
            out["g"] = str(self.g)
        if self.crf is not None and self.codec in _CRF_CODECS:
            if self.codec == "libx264rgb" and self.crf == 0:
                out["qp"] = "0"  # crf 0 is not lossless for the RGB encoder; qp 0 is
            else:
                out["crf"] = str(self.crf)
        if self.codec == "libsvtav1":
            out["preset"] = str(self.preset if self.preset is not None else 12)
            if self.threads is not None:
                out["svtav1-params"] = f"lp={self.threads}"
        else:
            if self.preset is not None:
                out["preset"] = str(self.preset)
            if self.threads is not None:
                out["threads"] = str(self.threads)
        out.update({str(k): str(v) for k, v in self.options.items()})
        return out


#: LeRobot's defaults (``encode_video_frames``): AV1 (SVT-AV1), 4:2:0, a key frame every 2 frames, CRF 30.
LEROBOT_DEFAULT = VideoCodec()
#: Lossless: H.264 High 4:4:4 in RGB at QP 0; decodes to the very frames written.
LOSSLESS = VideoCodec(codec="libx264rgb", pix_fmt="rgb24", g=2, crf=0, preset="ultrafast")


def _av() -> Any:
    """PyAV (imported with this module, as the other formats import their storage libraries)."""
    return av


def check_encoder(name: str) -> None:
    """Raise ValueError unless ``name`` is ``lossless`` or an FFmpeg video encoder PyAV has."""
    if name == "lossless":
        return
    av = _av()
    try:
        codec = av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        raise ValueError(
            f"{name!r} is not a video encoder of this PyAV build (e.g. libsvtav1, libx264, "
            "libx264rgb, mpeg4, or lossless)"
        ) from None
    if codec.type != "video":
        raise ValueError(f"{name!r} is a {codec.type} encoder, not a video encoder")


class VideoWriter:
    """Encodes RGB frames (uint8 (H, W, 3)) into one MP4 file at ``fps``; frame ``n`` at ``n / fps`` s."""

    def __init__(self, path: Path, width: int, height: int, fps: int, codec: VideoCodec) -> None:
        av = _av()
        self.path = path
        self.fps = fps
        self.frames = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._container = av.open(str(path), "w")
            self._stream = self._container.add_stream(codec.codec, rate=fps, options=codec.encoder_options())
            self._stream.pix_fmt = codec.pix_fmt
            self._stream.width = width
            self._stream.height = height
            self._stream.codec_context.time_base = Fraction(1, fps)
        except (av.FFmpegError, ValueError) as error:
            raise DatasetError(f"{path}: cannot open video encoder {codec.codec!r} ({error})") from error
        self._from_ndarray = av.VideoFrame.from_ndarray
        self._time_base = Fraction(1, fps)

    def write(self, frames: np.ndarray) -> None:
        """Append ``frames``, uint8 (T, H, W, 3) RGB."""
        for image in frames:
            frame = self._from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames
            frame.time_base = self._time_base
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames += 1

    @property
    def size_bytes(self) -> int:
        """Bytes written to the file so far."""
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None


def video_info(path: Path) -> dict[str, Any]:
    """LeRobot's ``features[<key>]["info"]`` of a video file: size, codec, pixel format, fps, channels, audio."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pix_fmt = stream.codec_context.pix_fmt or ""
        info: dict[str, Any] = {
            "video.height": int(stream.codec_context.height),
            "video.width": int(stream.codec_context.width),
            "video.codec": stream.codec_context.codec.canonical_name,
            "video.pix_fmt": pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(stream.base_rate) if stream.base_rate else 0,
            "video.channels": 1 if "gray" in pix_fmt else 4 if ("rgba" in pix_fmt or "yuva" in pix_fmt) else 3,
            "has_audio": bool(container.streams.audio),
        }
    return info


class VideoReader:
    """Frames of one MP4 file by presentation time; the file stays open until :meth:`close`."""

    def __init__(self, path: Path) -> None:
        av = _av()
        self.path = path
        try:
            self._container = av.open(str(path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as error:
            raise CorruptDataError(f"{path}: cannot be read as a video ({type(error).__name__}: {error})") from error
        self._errors = (av.FFmpegError, ValueError, OSError)

    def frames_at(self, times: np.ndarray, tolerance: float, where: str) -> np.ndarray:
        """uint8 (T, H, W, 3) RGB frames whose presentation times are nearest ``times`` (float (T,), s,
        increasing); a time with no frame within ``tolerance`` s raises :class:`DatasetError` naming ``where``."""
        stream = self._stream
        times = np.asarray(times, dtype=np.float64)
        first, last = float(times[0]), float(times[-1])
        found_times: list[float] = []
        found: list[np.ndarray] = []
        try:
            offset = int(max(first - tolerance, 0.0) / float(stream.time_base))
            self._container.seek(offset, stream=stream, backward=True, any_frame=False)
            for frame in self._container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * frame.time_base)
                if t < first - tolerance:
                    continue
                if t > last + tolerance:
                    break
                found_times.append(t)
                found.append(frame.to_ndarray(format="rgb24"))
        except self._errors as error:
            raise CorruptDataError(f"{where}: cannot be decoded ({type(error).__name__}: {error})") from error
        if not found:
            raise DatasetError(
                f"{where}: the video has no frame in [{first:.4f}, {last:.4f}] s; it is shorter than the episode "
                f"({len(times)} frames)"
            )
        stamps = np.asarray(found_times)
        nearest = np.abs(stamps[None, :] - times[:, None]).argmin(axis=1)
        gaps = np.abs(stamps[nearest] - times)
        if (gaps > tolerance).any():
            t = int(np.flatnonzero(gaps > tolerance)[0])
            raise DatasetError(
                f"{where}: no frame at {times[t]:.4f} s (step {t} of {len(times)}; the video's frames run "
                f"{stamps[0]:.4f}-{stamps[-1]:.4f} s): the video is shorter than the episode"
            )
        return np.stack([found[i] for i in nearest])

    def close(self) -> None:
        """Close the file."""
        self._container.close()
