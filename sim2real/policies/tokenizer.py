"""Uniform per-dimension action binning (RT-1 / OpenVLA style).

Each action dimension ``d`` is normalised to ``[-1, 1]`` with the dataset's 1st and 99th
percentiles, ``x = 2 (a - p01) / (p99 - p01) - 1``, clipped, and cut into ``bins`` equal bins.
A token decodes to its bin centre mapped back to the original units, so the round-trip error
of an action inside ``[p01, p99]`` is at most half a bin width, ``(p99 - p01) / (2 bins)``.

A degenerate dimension (``p99 == p01``, e.g. a rotation the expert never uses) always encodes
to the middle bin and decodes to ``p01`` exactly; no division by zero happens anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from sim2real.contracts.actions import ACTION_NAMES

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

_DEGENERATE_EPS = 1e-12


@dataclass(frozen=True)
class QuantizationReport:
    """Per-dimension round-trip error of :meth:`ActionTokenizer.encode` + :meth:`ActionTokenizer.decode`.

    All arrays are float64 of shape (D,), in the action's original units except ``clipped_fraction``.
    """

    names: tuple[str, ...]
    max_abs: np.ndarray
    mean_abs: np.ndarray
    bin_width: np.ndarray
    clipped_fraction: np.ndarray

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{dim_name: {"max_abs", "mean_abs", "bin_width", "clipped_fraction"}}``, JSON-able."""
        return {
            name: {
                "max_abs": float(self.max_abs[i]),
                "mean_abs": float(self.mean_abs[i]),
                "bin_width": float(self.bin_width[i]),
                "clipped_fraction": float(self.clipped_fraction[i]),
            }
            for i, name in enumerate(self.names)
        }


class ActionTokenizer:
    """Maps continuous actions ``(..., D)`` to int64 tokens ``(..., D)`` in ``[0, bins)`` and back.

    ``encode``/``decode`` accept numpy arrays or torch tensors (any device) and return the same
    kind. ``p01``/``p99`` are the per-dimension 1st/99th percentiles of the training actions.
    """

    def __init__(
        self,
        p01: Sequence[float] | np.ndarray,
        p99: Sequence[float] | np.ndarray,
        bins: int = 256,
        names: Sequence[str] | None = None,
    ) -> None:
        low = np.asarray(p01, dtype=np.float64).reshape(-1)
        high = np.asarray(p99, dtype=np.float64).reshape(-1)
        if low.shape != high.shape:
            raise ValueError(f"p01 has shape {low.shape} but p99 has shape {high.shape}")
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError("p01 and p99 must be finite")
        if (high < low).any():
            bad = np.flatnonzero(high < low).tolist()
            raise ValueError(f"p99 < p01 in action dims {bad}")
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.p01 = low
        self.p99 = high
        self.bins = int(bins)
        self.dim = int(low.shape[0])
        if names is None:
            names = ACTION_NAMES if self.dim == len(ACTION_NAMES) else tuple(f"a{i}" for i in range(self.dim))
        if len(names) != self.dim:
            raise ValueError(f"{len(names)} names for {self.dim} action dims")
        self.names = tuple(names)
        self.span = high - low
        self.degenerate = self.span <= _DEGENERATE_EPS * np.maximum(1.0, np.abs(low))
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------ helpers
    @property
    def bin_width(self) -> np.ndarray:
        """float64 (D,): width of one bin in original units (0 for degenerate dims)."""
        return np.where(self.degenerate, 0.0, self.span / self.bins)

    def _consts(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = str(like.device)
        if key not in self._cache:
            span = np.where(self.degenerate, 1.0, self.span)
            self._cache[key] = (
                torch.as_tensor(self.p01, dtype=torch.float64, device=like.device),
                torch.as_tensor(span, dtype=torch.float64, device=like.device),
                torch.as_tensor(self.degenerate, dtype=torch.bool, device=like.device),
            )
        return self._cache[key]

    def _check(self, x: np.ndarray | torch.Tensor) -> None:
        if x.shape[-1] != self.dim:
            raise ValueError(f"expected actions with last dim {self.dim}, got shape {tuple(x.shape)}")

    # ------------------------------------------------------------------ API
    def normalize(self, actions: ArrayT) -> ArrayT:
        """Actions ``(..., D)`` -> float ``(..., D)`` in ``[-1, 1]`` (clipped; degenerate dims -> 0)."""
        self._check(actions)
        if isinstance(actions, np.ndarray):
            return self.normalize(torch.from_numpy(np.asarray(actions, dtype=np.float64))).numpy()
        low, span, degenerate = self._consts(actions)
        x = 2.0 * (actions.to(torch.float64) - low) / span - 1.0
        x = torch.where(degenerate, torch.zeros_like(x), x)
        return torch.nan_to_num(x, nan=0.0).clamp(-1.0, 1.0)

    def encode(self, actions: ArrayT) -> ArrayT:
        """Actions float ``(..., D)`` -> int64 tokens ``(..., D)`` in ``[0, bins)``. NaN maps to the middle bin."""
        if isinstance(actions, np.ndarray):
            return self.encode(torch.from_numpy(np.asarray(actions, dtype=np.float64))).numpy()
        x = self.normalize(actions)
        tokens = torch.floor((x + 1.0) * 0.5 * self.bins).to(torch.int64)
        return tokens.clamp(0, self.bins - 1)

    def decode(self, tokens: ArrayT) -> ArrayT:
        """int tokens ``(..., D)`` -> float32 actions ``(..., D)`` at the bin centres (original units)."""
        self._check(tokens)
        if isinstance(tokens, np.ndarray):
            return self.decode(torch.from_numpy(np.asarray(tokens, dtype=np.int64))).numpy()
        low, span, degenerate = self._consts(tokens)
        centre = (tokens.to(torch.float64).clamp(0, self.bins - 1) + 0.5) / self.bins  # in (0, 1)
        actions = low + centre * span
        actions = torch.where(degenerate, low.expand_as(actions), actions)
        return actions.to(torch.float32)

    def soft_targets(self, actions: torch.Tensor, sigma_bins: float) -> torch.Tensor:
        """Actions ``(..., D)`` -> target distributions ``(..., D, bins)``: a Gaussian of std
        ``sigma_bins`` bin widths around each action, integrated over every bin ("HL-Gauss",
        Farebrother et al., 2024, *Stop Regressing*). Neighbouring bins share the credit, so a
        near miss costs less than a far one and the classifier learns the ordinal structure."""
        if sigma_bins <= 0:
            raise ValueError(f"sigma_bins must be > 0, got {sigma_bins}")
        centre = (self.normalize(actions) + 1.0) * 0.5 * self.bins  # (..., D) in bin units
        _, _, degenerate = self._consts(actions)  # constant dims: centred on their (middle) token's bin
        centre = torch.where(degenerate, self.encode(actions).to(torch.float64) + 0.5, centre)
        edges = torch.arange(self.bins + 1, device=actions.device, dtype=torch.float64)
        cdf = torch.special.ndtr((edges - centre.unsqueeze(-1)) / sigma_bins)  # (..., D, bins + 1)
        mass = cdf[..., 1:] - cdf[..., :-1]
        return (mass / mass.sum(dim=-1, keepdim=True).clamp_min(1e-12)).float()

    def decode_expected(self, logits: torch.Tensor) -> torch.Tensor:
        """logits ``(..., D, bins)`` -> float32 actions ``(..., D)``: the mean of the predicted
        distribution over bin centres (smoother than the argmax bin where the model hesitates
        between neighbouring bins)."""
        if logits.shape[-2:] != (self.dim, self.bins):
            raise ValueError(f"expected logits (..., {self.dim}, {self.bins}), got {tuple(logits.shape)}")
        low, span, degenerate = self._consts(logits)
        centres = (torch.arange(self.bins, device=logits.device, dtype=torch.float64) + 0.5) / self.bins
        fraction = (logits.double().softmax(dim=-1) * centres).sum(dim=-1)  # (..., D) in (0, 1)
        actions = low + fraction * span
        actions = torch.where(degenerate, low.expand_as(actions), actions)
        return actions.to(torch.float32)

    def quantization_error(self, actions: np.ndarray | torch.Tensor) -> QuantizationReport:
        """Round-trip error report over all actions ``(..., D)``; see :class:`QuantizationReport`."""
        a = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        self._check(a)
        a = a.reshape(-1, self.dim).astype(np.float64)
        if a.shape[0] == 0:
            zeros = np.zeros(self.dim)
            return QuantizationReport(self.names, zeros, zeros, self.bin_width, zeros)
        err = np.abs(self.decode(self.encode(a)).astype(np.float64) - a)
        clipped = (a < self.p01) | (a > self.p99)
        return QuantizationReport(
            names=self.names,
            max_abs=err.max(axis=0),
            mean_abs=err.mean(axis=0),
            bin_width=self.bin_width,
            clipped_fraction=clipped.mean(axis=0),
        )

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able spec, the content of a checkpoint's ``tokenizer.json``."""
        return {
            "type": "uniform_percentile",
            "bins": self.bins,
            "p01": [float(v) for v in self.p01],
            "p99": [float(v) for v in self.p99],
            "names": list(self.names),
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ActionTokenizer:
        """Inverse of :meth:`to_dict`."""
        kind = spec.get("type", "uniform_percentile")
        if kind != "uniform_percentile":
            raise ValueError(f"unknown action tokenizer type {kind!r}")
        return cls(spec["p01"], spec["p99"], bins=int(spec["bins"]), names=spec.get("names"))

    @classmethod
    def from_stats(cls, stats: dict[str, Any], bins: int = 256) -> ActionTokenizer:
        """Build from a dataset statistics dict holding ``action_p01`` and ``action_p99``."""
        return cls(np.asarray(stats["action_p01"]), np.asarray(stats["action_p99"]), bins=bins)

    def __repr__(self) -> str:
        return (
            f"ActionTokenizer(dim={self.dim}, bins={self.bins}, degenerate={np.flatnonzero(self.degenerate).tolist()})"
        )
