"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot global
state); matplotlib is imported only when a figure is drawn. Each ``plot_*`` writes one PNG."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from sim2real.evaluation.document import pooled_success

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_action_errors", "plot_factors", "plot_feature_embedding", "plot_success_per_variant"]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_success_per_variant(closed_loop: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    variants = list(closed_loop)
    tasks = sorted({task for entries in closed_loop.values() for task in entries})
    series = [*tasks, "all tasks"] if len(tasks) > 1 else tasks
    fig = _figure(min(16.0, max(6.0, 2.0 + len(variants) * (0.5 + 0.25 * len(series)))), 4.0)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(series))
    x = np.arange(len(variants), dtype=np.float64)
    for k, name in enumerate(series):
        rates, lows, highs = [], [], []
        for variant in variants:
            if name == "all tasks":
                pooled = pooled_success(closed_loop[variant])
                rate, low, high = pooled.rate, pooled.low, pooled.high
            elif name in closed_loop[variant]:
                entry = closed_loop[variant][name]
                rate, (low, high) = entry["rate"], entry["ci95"]
            else:
                rate, low, high = math.nan, math.nan, math.nan
            rates.append(rate)
            lows.append(rate - low)
            highs.append(high - rate)
        offset = (k - (len(series) - 1) / 2.0) * width
        ax.bar(x + offset, rates, width, yerr=[lows, highs], capsize=3, label=name)
    ax.set_xticks(x, variants, rotation=30, ha="right")
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("success rate (Wilson 95% CI)")
    ax.set_title("Closed-loop success per scene variant")
    if series:
        ax.legend(fontsize="small", ncols=min(4, len(series)))
    fig.savefig(path)


def plot_factors(factors: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> None:
    names = [name for name, bins in factors.items() if bins]
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = _figure(4.0 * cols, 3.2 * rows)
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        bins = factors[name]
        rates = np.array([b["rate"] for b in bins], dtype=np.float64)
        lows = np.array([b["ci95"][0] for b in bins], dtype=np.float64)
        highs = np.array([b["ci95"][1] for b in bins], dtype=np.float64)
        if all("value" in b for b in bins):
            x = np.arange(len(bins), dtype=np.float64)
            ax.set_xticks(x, [str(b["value"]) for b in bins], rotation=30, ha="right")
        else:
            x = np.array([(b["low"] + b["high"]) / 2.0 for b in bins], dtype=np.float64)
            ax.set_xlabel(f"{name} (bin centre)")
        ax.fill_between(x, lows, highs, alpha=0.25)
        ax.plot(x, rates, marker="o")
        ax.set_ylim(0.0, 1.05)
        ax.set_ylabel("success rate")
        ax.set_title(name)
    fig.savefig(path)


def plot_action_errors(open_loop: Mapping[str, Any], path: Path) -> None:
    real, sim = open_loop.get("real") or {}, open_loop.get("sim") or {}
    keys = [k for k in ("normalized_l1", "normalized_mse") if k in real or k in sim]
    fig = _figure(5.0 * max(1, len(keys)), 3.6)
    for k, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), k + 1)
        dims = len(real.get(key) or sim.get(key) or [])
        names = list(real.get("names") or sim.get("names") or [f"a{i}" for i in range(dims)])
        x = np.arange(dims, dtype=np.float64)
        for offset, (label, side) in zip((-0.2, 0.2), (("real", real), ("sim", sim)), strict=True):
            values = side.get(key)
            if values:
                ax.bar(x + offset, np.asarray(values, dtype=np.float64), 0.4, label=label)
        ax.set_xticks(x, names[:dims], rotation=30, ha="right")
        ax.set_title(key.replace("_", " ") + " per action dimension")
        ax.legend(fontsize="small")
    fig.savefig(path)


def _pca_2d(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, D) rows onto their first two principal axes (SVD); (N, 2), explained ratios (2,)."""
    centred = data - data.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ vt[:2].T
    variance = singular**2
    ratios = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(min(2, variance.size))
    if projected.shape[1] < 2:  # D == 1: a flat second axis
        projected = np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))
        ratios = np.pad(ratios, (0, 2 - ratios.size))
    return projected, ratios


def plot_feature_embedding(features: Mapping[str, ArrayLike], path: Path, max_points: int = 2000) -> None:
    rng = np.random.default_rng(0)  # subsampling only; fixed so the figure is reproducible
    groups: list[tuple[str, np.ndarray]] = []
    for name, feats in features.items():
        array = np.asarray(feats, dtype=np.float64)
        array = array.reshape(array.shape[0], -1)
        if array.shape[0] > max_points:
            array = array[np.sort(rng.choice(array.shape[0], max_points, replace=False))]
        groups.append((name, array))
    if len({g.shape[1] for _, g in groups}) != 1:
        raise ValueError("feature sets differ in dimension")
    stacked = np.concatenate([g for _, g in groups], axis=0)
    projected, ratios = _pca_2d(stacked)
    fig = _figure(5.0, 4.5)
    ax = fig.add_subplot()
    start = 0
    for name, group in groups:
        part = projected[start : start + group.shape[0]]
        start += group.shape[0]
        ax.scatter(part[:, 0], part[:, 1], s=8, alpha=0.6, label=f"{name} (n={group.shape[0]})")
    ax.set_xlabel(f"PC1 ({ratios[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ratios[1]:.0%} of variance)")
    ax.set_title("Encoder features, real vs sim (PCA)")
    ax.legend(fontsize="small")
    fig.savefig(path)
