"""LeRobot's normalisation statistics: per-episode stats, their count-weighted merge, JSON and parquet forms.

Each numeric feature gets ``min``, ``max``, ``mean``, ``std`` (population), ``count`` (shape (1,),
the number of frames) and the quantiles ``q01``, ``q10``, ``q50``, ``q90``, ``q99``, each of the
feature's shape ((D,) for a vector, (1,) for a scalar). A camera's stats are per channel, shape
(3, 1, 1), of pixel values scaled to [0, 1], over a sample of the episode's frames (LeRobot's
``sample_indices``: 100 frames, or all of a shorter episode, more for long ones) and of their pixels
(:data:`IMAGE_STATS_SIZE`); its ``count`` is the number of sampled frames. Episodes merge as
LeRobot's ``aggregate_stats`` merges them: min of mins, max of maxes, count-weighted means, the
parallel-variance formula for ``std``, and count-weighted means of the quantiles.
"""

from __future__ import annotations

import numpy as np

#: Quantiles LeRobot 0.4 stores (``q01`` ... ``q99``).
QUANTILES: tuple[float, ...] = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS: tuple[str, ...] = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)

Stats = dict[str, np.ndarray]

#: Image stats are taken over every ``k``-th pixel in each direction, ``k`` the smallest stride that
#: brings the longer side to at most this many pixels (LeRobot subsamples larger frames alike, from 300 px).
IMAGE_STATS_SIZE = 64


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


def _histogram_quantile(cumulative: np.ndarray, total: int, q: float) -> float:
    """``np.quantile(values, q)`` (linear interpolation) of integer values 0..255 given their cumulative counts."""
    position = q * (total - 1)
    below, above = int(np.floor(position)), int(np.ceil(position))
    low = float(np.searchsorted(cumulative, below, side="left"))  # value of the order statistic ``below``
    high = float(np.searchsorted(cumulative, above, side="left"))
    return low + (high - low) * (position - below)


def image_stats(frames: np.ndarray) -> Stats:
    """Per-channel stats of uint8 (T, H, W, C) frames over LeRobot's sample of frames (and every ``k``-th
    pixel, :data:`IMAGE_STATS_SIZE`), scaled to [0, 1], shapes (C, 1, 1).

    Computed exactly from per-channel histograms (256 grey levels), which costs a fraction of sorting
    the pixels: the quantiles equal ``np.quantile``'s (linear interpolation) over the same pixels."""
    stride = max(1, -(-max(frames.shape[1:3]) // IMAGE_STATS_SIZE))
    sampled = frames[sample_indices(len(frames)), ::stride, ::stride]
    channels = sampled.shape[-1]
    pixels = sampled.reshape(-1, channels)
    total = len(pixels)
    histograms = np.stack([np.bincount(pixels[:, c], minlength=256) for c in range(channels)])
    levels = np.arange(256, dtype=np.float64)
    mean = histograms @ levels / total
    variance = histograms @ (levels**2) / total - mean**2
    raw: dict[str, list[float]] = {key: [] for key in ("min", "max", *QUANTILE_KEYS)}
    for histogram in histograms:
        present = np.flatnonzero(histogram)
        raw["min"].append(float(present[0]))
        raw["max"].append(float(present[-1]))
        cumulative = np.cumsum(histogram) - 1  # the last order statistic (0-based) at each grey level
        for key, q in zip(QUANTILE_KEYS, QUANTILES, strict=True):
            raw[key].append(_histogram_quantile(cumulative, total, q))
    stats: Stats = {"min": np.asarray(raw["min"]), "max": np.asarray(raw["max"]), "mean": mean,
                    "std": np.sqrt(np.maximum(variance, 0.0))}  # fmt: skip
    stats.update({key: np.asarray(raw[key]) for key in QUANTILE_KEYS})
    stats = {key: (value / 255.0).reshape(-1, 1, 1) for key, value in stats.items()}
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
