"""LeRobot's normalisation statistics: per-episode stats, their count-weighted merge, JSON and parquet forms.

Each numeric feature gets ``min``, ``max``, ``mean``, ``std`` (population), ``count`` (shape (1,),
the number of frames) and the quantiles ``q01``, ``q10``, ``q50``, ``q90``, ``q99``, each of the
feature's shape ((D,) for a vector, (1,) for a scalar). A camera's stats are per channel, shape
(3, 1, 1), of pixel values scaled to [0, 1], over a sample of the episode's frames (LeRobot's
``sample_indices``: 100 frames, or all of a shorter episode, more for long ones); its ``count`` is
the number of sampled frames. Episodes merge as LeRobot's ``aggregate_stats`` merges them:
min of mins, max of maxes, count-weighted means, the parallel-variance formula for ``std``, and
count-weighted means of the quantiles.
"""

from __future__ import annotations

import numpy as np

#: Quantiles LeRobot 0.4 stores (``q01`` ... ``q99``).
QUANTILES: tuple[float, ...] = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS: tuple[str, ...] = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)

Stats = dict[str, np.ndarray]


def sample_indices(length: int) -> np.ndarray:
    """Frames LeRobot samples from an episode of ``length`` frames for image stats: ``length**0.75``
    evenly spaced frames, at least 100 (all of a shorter episode), at most 10,000."""
    count = max(min(100, length), min(int(length**0.75), 10_000))
    return np.round(np.linspace(0, length - 1, count)).astype(np.int64)


def _basic(values: np.ndarray) -> Stats:
    """Stats along axis 0 of ``values`` (N, D)."""
    floats = values.astype(np.float64)
    stats: Stats = {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": floats.mean(axis=0),
        "std": floats.std(axis=0),
    }
    quantiles = np.quantile(floats, QUANTILES, axis=0)
    stats.update({key: quantiles[i] for i, key in enumerate(QUANTILE_KEYS)})
    return stats


def feature_stats(values: np.ndarray) -> Stats:
    """Stats of one numeric feature over an episode: ``values`` (T,) or (T, D) -> arrays of shape (1,) or (D,)."""
    matrix = values.reshape(len(values), -1)
    stats = _basic(matrix)
    stats["count"] = np.array([len(values)], dtype=np.int64)
    return stats


def image_stats(frames: np.ndarray) -> Stats:
    """Per-channel stats of uint8 (T, H, W, 3) frames over LeRobot's sample, scaled to [0, 1], shapes (3, 1, 1)."""
    sampled = frames[sample_indices(len(frames))]
    pixels = sampled.reshape(-1, sampled.shape[-1])
    stats = {key: (value.astype(np.float64) / 255.0).reshape(-1, 1, 1) for key, value in _basic(pixels).items()}
    stats["count"] = np.array([len(sampled)], dtype=np.int64)
    return stats


def merge_stats(a: Stats, b: Stats) -> Stats:
    """Two stats of one feature merged as LeRobot's ``aggregate_feature_stats`` merges them."""
    count_a, count_b = float(a["count"][0]), float(b["count"][0])
    total = count_a + count_b
    mean = (a["mean"] * count_a + b["mean"] * count_b) / total
    spread_a = (a["std"] ** 2 + (a["mean"] - mean) ** 2) * count_a
    spread_b = (b["std"] ** 2 + (b["mean"] - mean) ** 2) * count_b
    variance = (spread_a + spread_b) / total
    out: Stats = {
        "min": np.minimum(a["min"], b["min"]),
        "max": np.maximum(a["max"], b["max"]),
        "mean": mean,
        "std": np.sqrt(variance),
        "count": np.array([int(a["count"][0]) + int(b["count"][0])], dtype=np.int64),
    }
    for key in QUANTILE_KEYS:
        if key in a and key in b:
            out[key] = (a[key] * count_a + b[key] * count_b) / total
    return out


def merge_all(total: dict[str, Stats] | None, episode: dict[str, Stats]) -> dict[str, Stats]:
    """``total`` (stats per feature, or None) merged with one episode's stats per feature."""
    if total is None:
        return {key: dict(value) for key, value in episode.items()}
    merged = dict(total)
    for key, value in episode.items():
        merged[key] = merge_stats(total[key], value) if key in total else dict(value)
    return merged


def stats_json(stats: dict[str, Stats]) -> dict[str, dict[str, list]]:
    """``meta/stats.json``: feature -> stat -> nested lists (numpy ``tolist``)."""
    return {key: {name: np.asarray(value).tolist() for name, value in feature.items()}
            for key, feature in stats.items()}  # fmt: skip


def stats_columns(stats: dict[str, Stats]) -> dict[str, list]:
    """An episode's stats as the ``stats/<feature>/<stat>`` columns of ``meta/episodes``."""
    return {f"stats/{key}/{name}": np.asarray(value).tolist() for key, feature in stats.items()
            for name, value in feature.items()}  # fmt: skip


def stats_from_json(data: dict[str, dict[str, list]]) -> dict[str, Stats]:
    """Inverse of :func:`stats_json`."""
    return {key: {name: np.asarray(value) for name, value in feature.items()} for key, feature in data.items()}
