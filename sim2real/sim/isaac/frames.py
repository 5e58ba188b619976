"""Annotator outputs -> checked image arrays (pure numpy: no Isaac Sim, tested on any machine).

The Isaac backend never hands on an image it cannot vouch for. An annotator that has not produced a
frame yet returns an empty buffer (Replicator gives ``shape (0,)`` arrays, or a buffer of the wrong
size, before its first completed render); read naively that becomes an ``(H, W, 0)`` image.
:func:`rgb_frame` and :func:`segmentation_frame` raise :class:`EmptyFrameError` instead, and
:func:`repeated_frames` recognises a capture that repeats the previous one although the scene
changed (a stale frame); the backend then re-renders with warm-up frames and raises after
:data:`CAPTURE_RETRIES` failed retries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: re-captures (each after warm-up frames) before an empty or stale frame is an error
CAPTURE_RETRIES = 3
#: TCP motion (m) since the previous capture above which identical frames from every camera are stale
STALE_MOTION_M = 0.02


class EmptyFrameError(RuntimeError):
    """An annotator returned no frame (empty, wrong size, or all pixels zero)."""


class StaleFrameError(RuntimeError):
    """Every camera returned exactly its previous frame although the scene changed."""


def _payload(data: Any) -> Any:
    return data.get("data") if isinstance(data, Mapping) else data


def rgb_frame(data: Any, height: int, width: int, camera: str) -> np.ndarray:
    """uint8 (height, width, 3) from an ``rgb`` annotator's output (an array of (H, W, 3 or 4) or
    (H * W * C,) values, or a dict holding it under ``data``); :class:`EmptyFrameError` naming
    ``camera`` for an empty, wrongly sized or all-zero buffer."""
    pixels = _payload(data)
    pixels = np.asarray(pixels) if pixels is not None else np.zeros(0, np.uint8)
    if pixels.size == 0:
        raise EmptyFrameError(f"camera {camera!r}: the rgb annotator returned an empty buffer {pixels.shape}")
    if pixels.ndim == 1 and pixels.size % (height * width) == 0:
        pixels = pixels.reshape(height, width, -1)
    if pixels.ndim != 3 or pixels.shape[:2] != (height, width) or pixels.shape[2] not in (3, 4):
        raise EmptyFrameError(
            f"camera {camera!r}: the rgb annotator returned shape {pixels.shape}, expected ({height}, {width}, 3 or 4)"
        )
    rgb = np.ascontiguousarray(pixels[..., :3].astype(np.uint8))
    if not rgb.any():
        raise EmptyFrameError(f"camera {camera!r}: every pixel is 0 (the renderer produced no image yet)")
    return rgb


def segmentation_frame(data: Any, height: int, width: int, camera: str) -> tuple[np.ndarray, dict[str, Any]]:
    """(ids int64 (height, width), id -> labels) from a ``semantic_segmentation`` annotator's output
    (``{"data": ids, "info": {"idToLabels": {...}}}``); :class:`EmptyFrameError` when empty or
    wrongly sized."""
    if not isinstance(data, Mapping) or data.get("data") is None:
        raise EmptyFrameError(f"camera {camera!r}: the semantic_segmentation annotator returned no data")
    ids = np.asarray(data["data"])
    if ids.size != height * width:
        raise EmptyFrameError(
            f"camera {camera!r}: the semantic_segmentation annotator returned {ids.size} ids for {height}x{width} px"
        )
    info = data.get("info") or {}
    return ids.reshape(height, width).astype(np.int64), dict(info.get("idToLabels") or {})


def _label(labels: Any, taxonomy: str) -> str | None:
    value = labels.get(taxonomy) if isinstance(labels, Mapping) else labels
    return value if isinstance(value, str) else None


def object_index_map(
    ids: np.ndarray, id_to_labels: Mapping[str, Any], names: Sequence[str], taxonomy: str
) -> np.ndarray:
    """int32 (H, W): index into ``names`` of the ``taxonomy`` label seen at each pixel, -1 elsewhere."""
    lookup = {name: i for i, name in enumerate(names)}
    table = np.full(int(ids.max(initial=0)) + 1, -1, dtype=np.int32)
    for key, labels in id_to_labels.items():
        label = _label(labels, taxonomy)
        if label in lookup and 0 <= int(key) < len(table):
            table[int(key)] = lookup[label]
    return table[ids]


def label_mask(ids: np.ndarray, id_to_labels: Mapping[str, Any], label: str, taxonomy: str) -> np.ndarray:
    """bool (H, W): pixels whose ``taxonomy`` label is ``label``."""
    keys = [int(k) for k, labels in id_to_labels.items() if _label(labels, taxonomy) == label]
    return np.isin(ids, keys)


def repeated_frames(previous: Mapping[str, np.ndarray], current: Mapping[str, np.ndarray], changed: bool) -> bool:
    """Whether ``current`` is a stale repeat of ``previous``: every camera's frame is byte-identical
    to its previous one although the scene ``changed`` (the backend passes: the TCP moved more than
    :data:`STALE_MOTION_M` since the previous capture, within an episode or from the previous
    episode's last frame to a reset pose). One camera may legitimately see nothing move; all of
    them, the hand-mounted camera included, may not. (A scene change the hand does not make, say an
    object moved out of view, is not used: it can leave every image legitimately unchanged.)"""
    if not changed or not previous or set(previous) != set(current):
        return False
    return all(np.array_equal(previous[name], current[name]) for name in current)
