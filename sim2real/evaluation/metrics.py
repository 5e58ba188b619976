"""Evaluation metrics: pure numpy/scipy functions, no simulator and no torch.

Groups, in the order of the design's "Evaluation definitions":

* Closed-loop success: :func:`wilson_interval`, :class:`SuccessRate`.
* Per-factor breakdown of success: :func:`factor_breakdown` (continuous factor, quantile
  bins) and :func:`categorical_breakdown`.
* Real-robot replay, open loop: :func:`action_scale`, :func:`action_errors`
  (per-dimension normalised L1 / MSE, gripper accuracy, token accuracy),
  :func:`token_accuracy`, :func:`open_loop_gap`.
* Visual gap: :func:`frechet_distance`, :func:`frechet_distance_from_features`
  (the FID formula on any encoder's features), :func:`image_statistics` (encoder-free).
* Dynamics replay: :func:`trajectory_errors`, :func:`relative_to_start`,
  :func:`aggregate_trajectory_errors`.
* Ranking agreement between sim and real success over several policies:
  :func:`pearson_r`, :func:`mmrv` (Mean Maximum Rank Violation, SimplerEnv's definition),
  :func:`bootstrap_interval`, :func:`ranking_agreement`.

Conventions: success rates are fractions in [0, 1]; actions are
``[dx, dy, dz (m), droll, dpitch, dyaw (rad), gripper]`` with gripper in [0, 1],
1 = open; positions in metres, angles in radians. No function touches a global RNG:
randomness comes from an explicit :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg
from scipy.spatial.transform import Rotation

from sim2real.datasets.schema import ACTION_NAMES
from sim2real.errors import UsageError

__all__ = [
    "AXES",
    "ActionErrors",
    "BootstrapInterval",
    "FactorBin",
    "RankingInputError",
    "SuccessRate",
    "TrajectoryErrors",
    "action_errors",
    "action_scale",
    "aggregate_trajectory_errors",
    "bootstrap_interval",
    "categorical_breakdown",
    "factor_breakdown",
    "frechet_distance",
    "frechet_distance_from_features",
    "image_statistics",
    "mmrv",
    "open_loop_gap",
    "pearson_r",
    "ranking_agreement",
    "relative_to_start",
    "token_accuracy",
    "trajectory_errors",
    "wilson_interval",
]


# ---------------------------------------------------------------------------------------------
# Success rates
# ---------------------------------------------------------------------------------------------


def _z_score(confidence: float) -> float:
    """Two-sided standard-normal quantile for ``confidence`` (1.959964 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    With ``p = successes / trials``, ``n = trials`` and ``z`` the two-sided normal quantile::

        centre = (p + z²/(2n)) / (1 + z²/n)
        half   = z / (1 + z²/n) * sqrt(p(1 - p)/n + z²/(4n²))
        (low, high) = (centre - half, centre + half), clipped to [0, 1]

    Args:
        successes: number of successful trials, ``0 <= successes <= trials``.
        trials: number of trials; ``0`` gives the uninformative interval ``(0.0, 1.0)``.
        confidence: coverage of the interval, in (0, 1).

    Returns:
        ``(low, high)``, fractions in [0, 1].
    """
    successes, trials = int(successes), int(trials)
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    z = _z_score(confidence)
    if trials == 0:
        return 0.0, 1.0
    n = float(trials)
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class SuccessRate:
    """A success count with its rate and Wilson interval.

    Attributes:
        successes: number of successful episodes.
        trials: number of episodes.
        rate: ``successes / trials``; ``0.0`` when ``trials == 0`` (the interval is then
            ``(0, 1)``, which marks the rate as uninformative).
        low: lower end of the Wilson interval.
        high: upper end of the Wilson interval.
    """

    successes: int
    trials: int
    rate: float
    low: float
    high: float

    @classmethod
    def from_counts(cls, successes: int, trials: int, confidence: float = 0.95) -> SuccessRate:
        """Build from counts; the interval is Wilson's at ``confidence``."""
        low, high = wilson_interval(successes, trials, confidence)
        rate = successes / trials if trials else 0.0
        return cls(int(successes), int(trials), float(rate), low, high)

    @classmethod
    def from_outcomes(cls, outcomes: ArrayLike, confidence: float = 0.95) -> SuccessRate:
        """Build from per-episode outcomes, a bool/0-1 array of shape (N,)."""
        values = np.asarray(outcomes).reshape(-1).astype(bool)
        return cls.from_counts(int(values.sum()), int(values.size), confidence)

    def to_dict(self) -> dict[str, Any]:
        """``{successes, trials, rate, ci95: [low, high]}``, the metrics.json layout."""
        return {
            "successes": self.successes,
            "trials": self.trials,
            "rate": self.rate,
            "ci95": [self.low, self.high],
        }


class FactorBin(NamedTuple):
    """One bin of a continuous randomisation factor: ``[low, high)`` (the last bin is closed)."""

    low: float
    high: float
    rate: SuccessRate

    def to_dict(self) -> dict[str, Any]:
        """``{low, high, successes, trials, rate, ci95}``, the metrics.json layout."""
        return {"low": self.low, "high": self.high, **self.rate.to_dict()}


def factor_breakdown(
    values: ArrayLike, successes: ArrayLike, bins: int = 5, confidence: float = 0.95
) -> list[FactorBin]:
    """Success rate as a function of a continuous randomisation factor (e.g. light intensity).

    Bin edges are the quantiles ``0, 1/bins, ..., 1`` of the factor's values, with repeated
    edges removed, so bins hold about equal numbers of episodes and a factor with few
    distinct values gets fewer bins. Bins are ``[edge_k, edge_k+1)``, the last one closed.
    Episodes whose factor value is NaN (factor not applicable) are left out, as are bins
    that end up empty.

    Args:
        values: factor value per episode, shape (N,).
        successes: outcome per episode, bool or 0/1, shape (N,).
        bins: maximum number of bins, >= 1.
        confidence: coverage of each bin's Wilson interval.

    Returns:
        One :class:`FactorBin` per non-empty bin, in increasing order of the factor.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    ok = np.asarray(successes).reshape(-1).astype(bool)
    if x.shape != ok.shape:
        raise ValueError(f"values and successes differ in length: {x.shape[0]} vs {ok.shape[0]}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    keep = ~np.isnan(x)
    x, ok = x[keep], ok[keep]
    if x.size == 0:
        return []
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:  # a constant factor: one degenerate bin
        return [FactorBin(float(edges[0]), float(edges[0]), SuccessRate.from_outcomes(ok, confidence))]
    n_bins = edges.size - 1
    index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
    result = []
    for k in range(n_bins):
        members = index == k
        if members.any():
            result.append(
                FactorBin(float(edges[k]), float(edges[k + 1]), SuccessRate.from_outcomes(ok[members], confidence))
            )
    return result


def categorical_breakdown(
    labels: Sequence[Any], successes: ArrayLike, confidence: float = 0.95
) -> list[tuple[str, SuccessRate]]:
    """Success rate per value of a categorical factor (e.g. object colour name, texture).

    Args:
        labels: factor value per episode, length N (converted with ``str``).
        successes: outcome per episode, bool or 0/1, shape (N,).
        confidence: coverage of each Wilson interval.

    Returns:
        ``(label, SuccessRate)`` pairs, sorted by label.
    """
    names = [str(label) for label in labels]
    ok = np.asarray(successes).reshape(-1).astype(bool)
    if len(names) != ok.size:
        raise ValueError(f"labels and successes differ in length: {len(names)} vs {ok.size}")
    array = np.asarray(names, dtype=object)
    return [(name, SuccessRate.from_outcomes(ok[array == name], confidence)) for name in sorted(set(names))]


# ---------------------------------------------------------------------------------------------
# Ranking agreement between simulation and the real world
# ---------------------------------------------------------------------------------------------


class RankingInputError(UsageError, ValueError):
    """Success rates that the ranking metrics cannot use: the message names the policy and value."""


def _policy_label(index: int, names: Sequence[str] | None) -> str:
    return f"policy {names[index]!r}" if names is not None else f"the policy at index {index}"


def _check_rates(values: np.ndarray, what: str, names: Sequence[str] | None, unit_interval: bool) -> None:
    """Raise :class:`RankingInputError` for the first NaN/infinite value, or value outside [0, 1]."""
    bad = ~np.isfinite(values)
    if bad.any():
        index = int(np.argmax(bad))
        raise RankingInputError(
            f"{what} of {_policy_label(index, names)} is {values[index]}; expected a finite number"
            + (" in [0, 1]" if unit_interval else "")
        )
    if unit_interval:
        bad = (values < 0.0) | (values > 1.0)
        if bad.any():
            index = int(np.argmax(bad))
            raise RankingInputError(
                f"{what} of {_policy_label(index, names)} is {float(values[index]):g}; expected a fraction in [0, 1]"
            )


def _paired(
    x: ArrayLike,
    y: ArrayLike,
    names: Sequence[str] | None = None,
    labels: tuple[str, str] = ("sim success rate", "real success rate"),
    unit_interval: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Two checked float64 vectors of one length N >= 1, finite (and in [0, 1] if ``unit_interval``).

    Args:
        x, y: paired values per policy, shape (N,) each.
        names: policy names, length N, used in error messages (indices otherwise).
        labels: what ``x`` and ``y`` are, for error messages.
        unit_interval: also require every value to be a fraction in [0, 1].

    Raises:
        RankingInputError: lengths differ, N == 0, a value is NaN or infinite, or (with
            ``unit_interval``) a value lies outside [0, 1]; the message names the policy.
    """
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    b = np.asarray(y, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise RankingInputError(f"paired vectors differ in length: {a.size} vs {b.size}")
    if a.size == 0:
        raise RankingInputError("need at least one policy")
    if names is not None and len(names) != a.size:
        raise RankingInputError(f"{len(names)} policy names for {a.size} policies")
    _check_rates(a, labels[0], names, unit_interval)
    _check_rates(b, labels[1], names, unit_interval)
    return a, b


def _is_constant(values: np.ndarray) -> bool:
    """True when the vector has fewer than two distinct values (an exact test, no tolerance)."""
    return values.size < 2 or float(np.ptp(values)) == 0.0


def _pearson_undefined_reason(sim: np.ndarray, real: np.ndarray) -> str | None:
    """Why Pearson r of ``sim`` and ``real`` (shape (N,) each) is undefined, or None when it is defined."""
    if sim.size < 2:
        return "fewer than two policies: correlation undefined"
    sim_flat, real_flat = _is_constant(sim), _is_constant(real)
    if sim_flat and real_flat:
        return "sim and real success rates are each all equal: correlation undefined"
    if real_flat:
        return "real success rates are all equal: correlation undefined"
    if sim_flat:
        return "sim success rates are all equal: correlation undefined"
    return None


def pearson_r(x: ArrayLike, y: ArrayLike, names: Sequence[str] | None = None) -> float:
    """Pearson correlation coefficient of two paired vectors of shape (N,).

    Returns NaN when it is undefined: fewer than two points, or either vector with fewer than
    two distinct values (tested exactly, so rounding in the mean cannot turn a constant
    vector into a tiny nonzero variance and a spurious 0 or ±1).

    Args:
        x: first vector (the sim success rates in a ranking), shape (N,).
        y: second vector (the real success rates), shape (N,).
        names: policy names, length N, for error messages.

    Returns:
        r in [-1, 1], or NaN.

    Raises:
        RankingInputError: lengths differ, N == 0, or a value is NaN or infinite (the message
            names the policy).
    """
    a, b = _paired(x, y, names)
    if _is_constant(a) or _is_constant(b):
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    if not denominator > 0.0:
        return math.nan
    return float(np.clip(float(a @ b) / denominator, -1.0, 1.0))


def mmrv(sim: ArrayLike, real: ArrayLike, names: Sequence[str] | None = None) -> float:
    """Mean Maximum Rank Violation between sim and real success rates of N policies.

    As defined for SimplerEnv (Li et al., 2024)::

        RankViolation(i, j) = |r_i - r_j| * 1[(s_i < s_j) != (r_i < r_j)]
        MMRV = (1/N) * sum_i max_j RankViolation(i, j)

    where ``s`` are the simulated and ``r`` the real success rates. It is 0 when sim orders
    every pair of policies as the real world does, and each mis-ordered pair costs the real
    performance gap it hides. Lower is better; the range is [0, 1].

    Ties: the indicator uses strict ``<`` in both worlds, as the paper writes it, so a pair
    tied in one world and not the other counts as a violation for exactly one of its two
    policies. SimplerEnv's script writes the mirrored comparison (``>``), which attributes
    such a pair to the other policy; the two agree whenever neither vector has ties.

    Args:
        sim: simulated success rate per policy, shape (N,), fractions in [0, 1].
        real: real-world success rate per policy, shape (N,), same policy order.
        names: policy names, length N, for error messages.

    Returns:
        MMRV, a float in [0, max|r_i - r_j|].

    Raises:
        RankingInputError: lengths differ, N == 0, or a rate is NaN, infinite or outside
            [0, 1] (the message names the policy).
    """
    s, r = _paired(sim, real, names, unit_interval=True)
    sim_less = s[:, None] < s[None, :]
    real_less = r[:, None] < r[None, :]
    violation = np.abs(r[:, None] - r[None, :]) * (sim_less != real_less)
    return float(violation.max(axis=1).mean())


@dataclass(frozen=True)
class BootstrapInterval:
    """A percentile bootstrap interval and how many resamples it rests on.

    Attributes:
        interval: ``(low, high)`` in the metric's units, or None when too few resamples are
            usable (see ``reason``).
        resamples: number of resamples drawn.
        skipped: resamples left out: degenerate ones (with ``skip_degenerate``) and ones
            where the metric is NaN or infinite.
        reason: why ``interval`` is None; None when it is defined.
    """

    interval: tuple[float, float] | None
    resamples: int
    skipped: int
    reason: str | None = None

    @property
    def used(self) -> int:
        """Resamples the interval was computed from: ``resamples - skipped``."""
        return self.resamples - self.skipped

    def as_list(self) -> list[float] | None:
        """``[low, high]`` or None, the metrics.json layout."""
        return None if self.interval is None else [self.interval[0], self.interval[1]]


def _min_usable(confidence: float) -> int:
    """Fewest usable resamples for a percentile interval: ``2 / (1 - confidence)`` (40 at 95%).

    Below it, the ``(1 - confidence)/2`` quantile falls at or below the smallest value drawn,
    so an end of the interval would be a single extreme resample.
    """
    return max(2, math.ceil(2.0 / (1.0 - confidence) - 1e-9))


def bootstrap_interval(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    sim: ArrayLike,
    real: ArrayLike,
    n: int = 2000,
    seed: int | np.random.Generator = 0,
    confidence: float = 0.95,
    *,
    skip_degenerate: bool = False,
    min_usable: int | None = None,
    names: Sequence[str] | None = None,
) -> BootstrapInterval:
    """Percentile bootstrap interval of a sim-vs-real metric, resampling policies.

    Each of ``n`` resamples draws N policy indices with replacement (the same indices for
    ``sim`` and ``real``) and evaluates ``metric_fn(sim[idx], real[idx])``. Skipped, and
    counted in :attr:`BootstrapInterval.skipped`: resamples where the metric is NaN or
    infinite, and, with ``skip_degenerate``, resamples in which either vector has fewer than
    two distinct values (where a correlation is undefined). The metric is first evaluated on
    the full sample, so an input it rejects is reported with the policy's own position.

    Args:
        metric_fn: ``f(sim (N,), real (N,)) -> float``, e.g. :func:`pearson_r` or :func:`mmrv`.
        sim: simulated success rate per policy, shape (N,).
        real: real success rate per policy, shape (N,).
        n: number of resamples, >= 1.
        seed: seed of a fresh ``numpy.random.default_rng``, or a Generator to draw from.
        confidence: coverage of the interval, in (0, 1).
        skip_degenerate: skip resamples with fewer than two distinct sim or real values.
        min_usable: fewest usable resamples for an interval; default ``2 / (1 - confidence)``
            (40 at 95%). With fewer, the interval is None with a reason.
        names: policy names, length N, for error messages.

    Returns:
        :class:`BootstrapInterval` whose interval is the ``(1-confidence)/2`` and
        ``(1+confidence)/2`` quantiles of the usable resampled values.

    Raises:
        RankingInputError: a value is NaN or infinite, or ``metric_fn`` rejects the input.
        ValueError: ``n < 1`` or ``confidence`` outside (0, 1).
    """
    s, r = _paired(sim, real, names)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _z_score(confidence)  # validates confidence
    needed = _min_usable(confidence) if min_usable is None else max(1, int(min_usable))
    metric_fn(s, r)  # input errors name the policy's position in the full sample
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    indices = rng.integers(0, s.size, size=(n, s.size))
    keep = np.ones(n, dtype=bool)
    if skip_degenerate:
        keep &= (np.ptp(s[indices], axis=1) > 0.0) & (np.ptp(r[indices], axis=1) > 0.0)
    values = np.full(n, np.nan)
    for k in np.flatnonzero(keep):
        values[k] = metric_fn(s[indices[k]], r[indices[k]])
    keep &= np.isfinite(values)
    used = int(keep.sum())
    skipped = n - used
    if used < needed:
        what = "have two or more distinct sim and real values" if skip_degenerate else "give a finite value"
        reason = f"only {used} of {n} bootstrap resamples {what}; an interval needs at least {needed}"
        return BootstrapInterval(None, n, skipped, reason)
    alpha = 1.0 - confidence
    low, high = np.quantile(values[keep], [alpha / 2.0, 1.0 - alpha / 2.0])
    return BootstrapInterval((float(low), float(high)), n, skipped)


def ranking_agreement(
    sim: ArrayLike,
    real: ArrayLike,
    n_bootstrap: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    policies: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Pearson r and MMRV with bootstrap intervals: the ``ranking`` block of metrics.json.

    Args:
        sim: simulated success rate per policy, shape (N,), fractions in [0, 1].
        real: real success rate per policy, shape (N,), fractions in [0, 1].
        n_bootstrap: bootstrap resamples per metric.
        seed: base seed; Pearson and MMRV use independent streams spawned from it.
        confidence: coverage of both intervals.
        policies: policy names, length N, for error messages.

    Returns:
        ``{pearson, pearson_reason, pearson_ci95, pearson_ci95_reason, mmrv, mmrv_ci95,
        mmrv_ci95_reason, bootstrap}``. An undefined value is ``None`` and its ``*_reason``
        says why (None when the value is defined). ``bootstrap`` is ``{resamples, confidence,
        seed, pearson_skipped, mmrv_skipped}``: Pearson skips resamples with fewer than two
        distinct sim or real rates, where the correlation is undefined.

    Raises:
        RankingInputError: lengths differ, N == 0, or a rate is NaN, infinite or outside
            [0, 1]; the message names the policy.
    """
    s, r = _paired(sim, real, policies, unit_interval=True)
    pearson_rng, mmrv_rng = (np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(2))
    pearson_reason = _pearson_undefined_reason(s, r)
    pearson = None if pearson_reason is not None else pearson_r(s, r)
    pearson_ci = bootstrap_interval(
        pearson_r, s, r, n=n_bootstrap, seed=pearson_rng, confidence=confidence, skip_degenerate=True
    )
    pearson_ci_reason = "; ".join(part for part in (pearson_reason, pearson_ci.reason) if part) or None
    mmrv_ci = bootstrap_interval(mmrv, s, r, n=n_bootstrap, seed=mmrv_rng, confidence=confidence)
    return {
        "pearson": pearson,
        "pearson_reason": pearson_reason,
        "pearson_ci95": pearson_ci.as_list(),
        "pearson_ci95_reason": pearson_ci_reason,
        "mmrv": mmrv(s, r),
        "mmrv_ci95": mmrv_ci.as_list(),
        "mmrv_ci95_reason": mmrv_ci.reason,
        "bootstrap": {
            "resamples": int(n_bootstrap),
            "confidence": float(confidence),
            "seed": int(seed),
            "pearson_skipped": pearson_ci.skipped,
            "mmrv_skipped": mmrv_ci.skipped,
        },
    }


# ---------------------------------------------------------------------------------------------
# Visual gap: Fréchet distance between Gaussians fitted to encoder features
# ---------------------------------------------------------------------------------------------


def _sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> tuple[np.ndarray, float]:
    """Real square root of ``sigma1 @ sigma2`` (D, D), offsetting the diagonals if needed.

    The plain product is tried first. When it is (near-)singular — scipy warns, the root is
    not finite, or it has a non-negligible imaginary part — both covariances get ``eps`` added
    to their diagonals and the root is taken again. A remaining imaginary part is rounding
    noise (the eigenvalues of a product of two PSD matrices are real and >= 0) and is dropped
    when it is small relative to the root; otherwise ValueError.

    Returns:
        ``(root, offset)``: the real root (D, D) and the diagonal offset it was taken with
        (0.0 or ``eps``).
    """
    identity = np.eye(sigma1.shape[0])

    def attempt(offset: float) -> tuple[np.ndarray, bool]:
        a, b = sigma1 + offset * identity, sigma2 + offset * identity
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            root = np.asarray(linalg.sqrtm(a @ b))
        singular = any(issubclass(w.category, linalg.LinAlgWarning) for w in caught)
        if not np.all(np.isfinite(root)):
            return root, False
        imaginary = float(np.max(np.abs(root.imag))) if np.iscomplexobj(root) else 0.0
        tolerance = 1e-3 * max(1.0, float(np.max(np.abs(root.real))))
        return root, imaginary <= tolerance and not singular

    root, good = attempt(0.0)
    offset = 0.0
    if not good:
        offset = eps
        root, good = attempt(offset)
        if not np.all(np.isfinite(root)):
            raise ValueError("matrix square root of the covariance product is not finite")
        if np.iscomplexobj(root):
            imaginary = float(np.max(np.abs(root.imag)))
            if imaginary > 1e-3 * max(1.0, float(np.max(np.abs(root.real)))):
                raise ValueError(f"matrix square root has a large imaginary component ({imaginary:.3g})")
    return np.real(root), offset


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike, eps: float = 1e-6) -> float:
    """Squared Fréchet (2-Wasserstein) distance between Gaussians N(mu1, sigma1), N(mu2, sigma2).

    ``d² = |mu1 - mu2|² + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``, the FID formula.
    In 1-D it is ``(mu1 - mu2)² + s1² + s2² - 2 s1 s2 = (mu1 - mu2)² + (s1 - s2)²``.

    Args:
        mu1, mu2: means, shape (D,) (scalars are taken as D = 1).
        sigma1, sigma2: covariances, shape (D, D) (scalars are variances, D = 1).
        eps: diagonal offset added to both covariances when their product is near-singular
            (scipy warns, or the root is not finite or not real); the result is then the
            distance between the offset Gaussians (off by O(sqrt(eps)) per dimension).

    Returns:
        The squared distance in squared feature units, >= 0 (tiny negative rounding is clipped).
    """
    m1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    m2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = m1.shape[0]
    if m1.shape != (d,) or m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"shape mismatch: mu {m1.shape}, {m2.shape}; sigma {s1.shape}, {s2.shape}")
    diff = m1 - m2
    covmean, offset = _sqrtm_product(s1, s2, eps)
    # With an offset, the traces use the same offset covariances as the root, so the result is
    # the exact distance between the two slightly regularised Gaussians.
    traces = np.trace(s1) + np.trace(s2) + 2.0 * offset * d
    value = float(diff @ diff + traces - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def frechet_distance_from_features(feats_a: ArrayLike, feats_b: ArrayLike, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (e.g. real vs sim frames).

    Args:
        feats_a: features, shape (N, D), N >= 2 (a (N,) vector is taken as D = 1).
        feats_b: features, shape (M, D), M >= 2.
        eps: diagonal offset for near-singular covariances (N or M <= D, dead features).

    Returns:
        The squared Fréchet distance (see :func:`frechet_distance`), using the sample means
        and the unbiased sample covariances.
    """
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    a = a[:, None] if a.ndim == 1 else a
    b = b[:, None] if b.ndim == 1 else b
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (N, D) and (M, D) features, got {a.shape} and {b.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("need at least two samples per feature set")
    return frechet_distance(a.mean(axis=0), np.cov(a, rowvar=False), b.mean(axis=0), np.cov(b, rowvar=False), eps=eps)


#: Rec. 601 luma weights of (R, G, B), for the brightness and contrast of frames.
_LUMA = np.array([0.299, 0.587, 0.114])


def _colour_features(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Per frame: mean and standard deviation of each RGB channel in [0, 1], shape (N, 6)."""
    rows = []
    for batch in frames:
        x = np.asarray(batch, dtype=np.float64).reshape(-1, *np.shape(batch)[-3:]) / 255.0
        flat = x.reshape(x.shape[0], -1, 3)
        rows.append(np.concatenate([flat.mean(axis=1), flat.std(axis=1)], axis=1))
    return np.concatenate(rows)


def image_statistics(real: Sequence[np.ndarray], sim: Sequence[np.ndarray]) -> dict[str, Any]:
    """Encoder-free statistics of one camera's real and simulated frames, and their gap.

    Args:
        real: frame arrays, each uint8 (N_i, H_i, W_i, 3) (sizes may differ between arrays).
        sim: the same for simulated frames.

    Returns:
        ``real`` and ``sim``: ``frames`` (count), ``mean_rgb`` and ``std_rgb`` (per channel over
        every pixel, in [0, 1]), ``brightness`` (mean Rec. 601 luma, [0, 1]) and ``contrast``
        (mean over frames of the luma's standard deviation); ``mean_rgb_gap``,
        ``brightness_gap`` and ``contrast_gap`` (sim - real); ``frechet_colour``: the Fréchet
        distance between the per-frame colour moments (mean and standard deviation of each
        channel, 6-D, in [0, 1] units), ``None`` with fewer than two frames on a side.
    """
    sides: dict[str, dict[str, Any]] = {}
    features = {}
    for name, frames in (("real", real), ("sim", sim)):
        feats = _colour_features(frames)
        features[name] = feats
        pixels = np.concatenate([np.asarray(f, dtype=np.float64).reshape(-1, 3) / 255.0 for f in frames])
        luma_std = [
            float(np.std(np.asarray(frame, dtype=np.float64) @ _LUMA / 255.0))
            for batch in frames
            for frame in np.asarray(batch).reshape(-1, *np.shape(batch)[-3:])
        ]
        sides[name] = {
            "frames": int(feats.shape[0]),
            "mean_rgb": [float(v) for v in pixels.mean(axis=0)],
            "std_rgb": [float(v) for v in pixels.std(axis=0)],
            "brightness": float(pixels.mean(axis=0) @ _LUMA),
            "contrast": float(np.mean(luma_std)),
        }
    frechet = None
    if features["real"].shape[0] >= 2 and features["sim"].shape[0] >= 2:
        frechet = frechet_distance_from_features(features["real"], features["sim"])
    return {
        "real": sides["real"],
        "sim": sides["sim"],
        "mean_rgb_gap": [s - r for s, r in zip(sides["sim"]["mean_rgb"], sides["real"]["mean_rgb"], strict=True)],
        "brightness_gap": sides["sim"]["brightness"] - sides["real"]["brightness"],
        "contrast_gap": sides["sim"]["contrast"] - sides["real"]["contrast"],
        "frechet_colour": frechet,
    }


# ---------------------------------------------------------------------------------------------
# Real-robot replay: open-loop action error
# ---------------------------------------------------------------------------------------------


def action_scale(
    actions: ArrayLike, low_quantile: float = 0.01, high_quantile: float = 0.99, min_scale: float = 1e-6
) -> np.ndarray:
    """Per-dimension normalising scale: the ``high_quantile - low_quantile`` range (p99 - p01).

    Args:
        actions: reference actions (typically the training set), shape (T, D).
        low_quantile, high_quantile: quantiles bounding the range.
        min_scale: floor, so constant dimensions do not divide by zero.

    Returns:
        Scale per dimension, shape (D,), in the action's units.
    """
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"need actions of shape (T, D) with T >= 1, got {a.shape}")
    low, high = np.quantile(a, [low_quantile, high_quantile], axis=0)
    return np.maximum(high - low, min_scale)


def token_accuracy(pred_tokens: ArrayLike, true_tokens: ArrayLike) -> float:
    """Fraction of action tokens predicted exactly.

    Args:
        pred_tokens: predicted token ids (e.g. one of 256 bins per action dimension), any shape.
        true_tokens: target token ids, same shape.

    Returns:
        Exact-match fraction in [0, 1]; NaN for empty input.
    """
    p = np.asarray(pred_tokens)
    t = np.asarray(true_tokens)
    if p.shape != t.shape:
        raise ValueError(f"token arrays differ in shape: {p.shape} vs {t.shape}")
    if p.size == 0:
        return math.nan
    return float(np.mean(p == t))


@dataclass(frozen=True)
class ActionErrors:
    """Open-loop action error of a policy against recorded actions.

    Attributes:
        names: dimension names, length D.
        normalized_l1: mean |pred - true| / scale per dimension, shape (D,), unitless.
        normalized_mse: mean ((pred - true) / scale)² per dimension, shape (D,), unitless.
        mse: mean (pred - true)² per dimension, shape (D,), in squared action units.
        gripper_accuracy: fraction of steps whose binarised gripper command (>= 0.5 is open)
            matches, or None when there is no gripper dimension.
        token_accuracy: exact-match fraction of action tokens, or None when not given.
        n_steps: number of compared steps T.
    """

    names: tuple[str, ...]
    normalized_l1: np.ndarray
    normalized_mse: np.ndarray
    mse: np.ndarray
    gripper_accuracy: float | None
    token_accuracy: float | None
    n_steps: int

    @property
    def mean_normalized_l1(self) -> float:
        """Mean over dimensions of :attr:`normalized_l1`."""
        return float(np.mean(self.normalized_l1))

    @property
    def mean_normalized_mse(self) -> float:
        """Mean over dimensions of :attr:`normalized_mse`."""
        return float(np.mean(self.normalized_mse))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: per-dimension lists and scalar summaries (``replay.open_loop.real``)."""
        return {
            "names": list(self.names),
            "normalized_l1": [float(v) for v in self.normalized_l1],
            "normalized_mse": [float(v) for v in self.normalized_mse],
            "mse": [float(v) for v in self.mse],
            "mean_normalized_l1": self.mean_normalized_l1,
            "mean_normalized_mse": self.mean_normalized_mse,
            "gripper_accuracy": self.gripper_accuracy,
            "token_accuracy": self.token_accuracy,
            "n_steps": self.n_steps,
        }


def action_errors(
    pred: ArrayLike,
    true: ArrayLike,
    scale: ArrayLike,
    *,
    gripper_dim: int | None = -1,
    names: Sequence[str] | None = None,
    pred_tokens: ArrayLike | None = None,
    true_tokens: ArrayLike | None = None,
) -> ActionErrors:
    """Open-loop action errors per dimension, gripper accuracy and (optionally) token accuracy.

    Args:
        pred: predicted actions, shape (T, D).
        true: recorded actions, shape (T, D).
        scale: per-dimension normalising scale, shape (D,), > 0 (see :func:`action_scale`).
        gripper_dim: index of the gripper dimension (values in [0, 1], 1 = open), binarised at
            0.5 for the accuracy; None when the action has no gripper.
        names: dimension names; defaults to the canonical 7-D action names when D == 7.
        pred_tokens, true_tokens: token ids of the same steps, any matching shape (optional).

    Returns:
        :class:`ActionErrors`.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.ndim != 2 or p.shape != t.shape or p.shape[0] == 0:
        raise ValueError(f"need pred and true of one shape (T, D), T >= 1; got {p.shape} and {t.shape}")
    dims = p.shape[1]
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), (dims,))
    if np.any(s <= 0) or not np.all(np.isfinite(s)):
        raise ValueError("scale must be finite and > 0 in every dimension")
    if names is None:
        names = ACTION_NAMES if dims == len(ACTION_NAMES) else tuple(f"a{i}" for i in range(dims))
    if len(names) != dims:
        raise ValueError(f"{len(names)} names for {dims} dimensions")
    diff = p - t
    gripper = None
    if gripper_dim is not None:
        gripper = float(np.mean((p[:, gripper_dim] >= 0.5) == (t[:, gripper_dim] >= 0.5)))
    tokens = None
    if (pred_tokens is None) != (true_tokens is None):
        raise ValueError("give both pred_tokens and true_tokens, or neither")
    if pred_tokens is not None and true_tokens is not None:
        tokens = token_accuracy(pred_tokens, true_tokens)
    return ActionErrors(
        names=tuple(names),
        normalized_l1=np.mean(np.abs(diff) / s, axis=0),
        normalized_mse=np.mean((diff / s) ** 2, axis=0),
        mse=np.mean(diff**2, axis=0),
        gripper_accuracy=gripper,
        token_accuracy=tokens,
        n_steps=int(p.shape[0]),
    )


def open_loop_gap(real: Mapping[str, Any], sim: Mapping[str, Any]) -> dict[str, Any]:
    """``sim - real`` for every numeric entry the two open-loop dicts share.

    Args:
        real: :meth:`ActionErrors.to_dict` on real-robot frames.
        sim: the same on held-out sim episodes.

    Returns:
        A dict with the shared scalar keys (float differences) and per-dimension keys (lists
        of differences); ``names`` is carried over; ``None`` where either side is missing.
    """
    gap: dict[str, Any] = {}
    for key, real_value in real.items():
        if key not in sim:
            continue
        sim_value = sim[key]
        if key == "names":
            gap[key] = list(real_value)
        elif key == "n_steps":
            continue
        elif real_value is None or sim_value is None:
            gap[key] = None
        elif isinstance(real_value, (list, tuple, np.ndarray)):
            gap[key] = [float(b) - float(a) for a, b in zip(real_value, sim_value, strict=True)]
        elif isinstance(real_value, (int, float, np.number)) and not isinstance(real_value, bool):
            gap[key] = float(sim_value) - float(real_value)
    return gap


# ---------------------------------------------------------------------------------------------
# Dynamics replay: end-effector trajectory comparison
# ---------------------------------------------------------------------------------------------


#: Names of the base-frame axes of per-axis trajectory errors (positions: m; rotations: the
#: components of the rotation vector of the orientation error, rad).
AXES: tuple[str, str, str] = ("x", "y", "z")


@dataclass(frozen=True)
class TrajectoryErrors:
    """Per-step end-effector error of a replayed trajectory against the recorded one.

    Attributes:
        position_error: Euclidean position error per step, shape (T,), metres.
        orientation_error: geodesic angle between the orientations per step, shape (T,),
            radians in [0, pi]; ``None`` when the recording has no orientation.
        position_error_xyz: signed position error (replayed - recorded) per step and base-frame
            axis, shape (T, 3), metres; ``None`` when not computed.
        rotation_error_xyz: rotation vector of ``R_replayed R_recordedᵀ`` per step (the rotation
            taking the recorded orientation onto the replayed one, in the base frame), shape
            (T, 3), radians; its norm is ``orientation_error``; ``None`` when not computed.
    """

    position_error: np.ndarray
    orientation_error: np.ndarray | None
    position_error_xyz: np.ndarray | None = None
    rotation_error_xyz: np.ndarray | None = None
    mean_position_error: float = field(init=False)
    final_position_error: float = field(init=False)
    max_position_error: float = field(init=False)
    mean_orientation_error: float | None = field(init=False)
    final_orientation_error: float | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean_position_error", float(np.mean(self.position_error)))
        object.__setattr__(self, "final_position_error", float(self.position_error[-1]))
        object.__setattr__(self, "max_position_error", float(np.max(self.position_error)))
        orientation = self.orientation_error
        object.__setattr__(self, "mean_orientation_error", None if orientation is None else float(np.mean(orientation)))
        object.__setattr__(self, "final_orientation_error", None if orientation is None else float(orientation[-1]))

    def to_dict(self) -> dict[str, Any]:
        """Scalar summaries, in metres and radians (``None`` where not measured): mean, final and
        maximum position error; mean and final orientation error; and per base-frame axis
        (:data:`AXES`) the mean and maximum absolute position error and the mean absolute
        rotation-vector component of the orientation error."""
        out: dict[str, Any] = {
            "mean_position_error_m": self.mean_position_error,
            "final_position_error_m": self.final_position_error,
            "max_position_error_m": self.max_position_error,
            "mean_orientation_error_rad": self.mean_orientation_error,
            "final_orientation_error_rad": self.final_orientation_error,
        }

        def per_axis(values: np.ndarray | None, reduce: Callable[..., np.ndarray]) -> dict[str, float] | None:
            return None if values is None else dict(zip(AXES, map(float, reduce(np.abs(values), axis=0)), strict=True))

        out["mean_abs_position_error_m"] = per_axis(self.position_error_xyz, np.mean)
        out["max_abs_position_error_m"] = per_axis(self.position_error_xyz, np.max)
        out["mean_abs_rotation_error_rad"] = per_axis(self.rotation_error_xyz, np.mean)
        return out


def trajectory_errors(
    pred_pos: ArrayLike, pred_rpy: ArrayLike | None, true_pos: ArrayLike, true_rpy: ArrayLike | None
) -> TrajectoryErrors:
    """Compare a replayed end-effector trajectory with the recorded one, step by step.

    Args:
        pred_pos: replayed EE positions, shape (T, 3), metres.
        pred_rpy: replayed EE orientations as (roll, pitch, yaw), shape (T, 3), radians,
            extrinsic x-y-z Euler angles (R = Rz(yaw) Ry(pitch) Rx(roll)); ``None`` (with
            ``true_rpy`` ``None``) when the recording has no orientation.
        true_pos: recorded EE positions, shape (T, 3), metres.
        true_rpy: recorded EE orientations, shape (T, 3), radians, same convention, or ``None``.

    Returns:
        :class:`TrajectoryErrors` with per-step position error (m), signed per axis and as a
        norm, and the geodesic angle of ``R_pred⁻¹ R_true`` (rad) with the base-frame rotation
        vector of ``R_pred R_trueᵀ`` per axis, plus their means and final values.
    """
    if (pred_rpy is None) != (true_rpy is None):
        raise ValueError("pred_rpy and true_rpy must both be given or both be None")
    with_rotation = pred_rpy is not None and true_rpy is not None
    given = (pred_pos, pred_rpy, true_pos, true_rpy) if with_rotation else (pred_pos, true_pos)
    arrays = [np.asarray(a, dtype=np.float64) for a in given]
    shape = arrays[0].shape
    if len(shape) != 2 or shape[1] != 3 or shape[0] == 0 or any(a.shape != shape for a in arrays):
        raise ValueError(f"need arrays of shape (T, 3), T >= 1; got {[a.shape for a in arrays]}")
    p_pos, t_pos = arrays[0], arrays[-2] if with_rotation else arrays[1]
    delta = p_pos - t_pos
    position = np.linalg.norm(delta, axis=1)
    if not with_rotation:
        return TrajectoryErrors(position, None, position_error_xyz=delta)
    p_rot, t_rot = Rotation.from_euler("xyz", arrays[1]), Rotation.from_euler("xyz", arrays[3])
    orientation = np.asarray((p_rot.inv() * t_rot).magnitude(), dtype=np.float64).reshape(-1)
    rotvec = np.asarray((p_rot * t_rot.inv()).as_rotvec(), dtype=np.float64).reshape(-1, 3)
    return TrajectoryErrors(position, orientation, position_error_xyz=delta, rotation_error_xyz=rotvec)


def relative_to_start(pos: ArrayLike, rpy: ArrayLike | None) -> tuple[np.ndarray, np.ndarray | None]:
    """An end-effector trajectory expressed as motion since its first step, in the base frame.

    Args:
        pos: positions, shape (T, 3), metres.
        rpy: orientations, shape (T, 3), radians (extrinsic x-y-z), or ``None``.

    Returns:
        ``pos - pos[0]`` (T, 3) m, and the orientations of ``R_t R_0ᵀ`` (the base-frame rotation
        since the start) as (T, 3) rpy, rad (``None`` when ``rpy`` is ``None``). Two robots
        whose tool frames differ by a fixed rotation give the same relative orientations for the
        same base-frame motion, which is what makes trajectories of another embodiment comparable.
    """
    p = np.asarray(pos, dtype=np.float64)
    if rpy is None:
        return p - p[0], None
    rot = Rotation.from_euler("xyz", np.asarray(rpy, dtype=np.float64))
    return p - p[0], np.asarray((rot * rot[0].inv()).as_euler("xyz"), dtype=np.float64)


def _reduce(values: Sequence[Any], reduce: Callable[[list[float]], Any]) -> Any:
    """``reduce`` (``np.mean``, ``np.max``) of numbers, or per key of dicts of numbers; ``None`` entries left
    out (all ``None``: ``None``)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if isinstance(present[0], Mapping):
        return {key: float(reduce([v[key] for v in present])) for key in present[0]}
    return float(reduce(present))


def aggregate_trajectory_errors(errors: Sequence[TrajectoryErrors]) -> dict[str, Any]:
    """Summarise :meth:`TrajectoryErrors.to_dict` over episodes (``replay.dynamics``).

    Returns:
        ``n_episodes``, then for every summary key the mean over episodes, except ``max_*``
        keys, which take the maximum over episodes (metres, radians; per-axis keys are dicts over
        :data:`AXES`; ``None`` where no episode measured it). For an empty sequence only
        ``{"n_episodes": 0}``.
    """
    result: dict[str, Any] = {"n_episodes": len(errors)}
    if not errors:
        return result
    dicts = [e.to_dict() for e in errors]
    for key in dicts[0]:
        values = [d[key] for d in dicts]
        result[key] = _reduce(values, np.max if key.startswith("max_") else np.mean)
    return result
