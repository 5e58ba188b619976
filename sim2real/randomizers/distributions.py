"""Small, printable distributions. Each samples from an explicit ``numpy.random.Generator``.

In YAML a distribution is written in one of these forms (``key`` is the factor's name)::

    key: 0.5                                 # Constant
    key: {uniform: [0.2, 0.8]}               # Uniform(low, high)
    key: {log_uniform: [0.5, 2.0]}           # LogUniform(low, high), low > 0
    key: {normal: [0.0, 0.01]}               # Normal(mean, std)
    key: {truncated_normal: [0, 0.02, -0.05, 0.05]}   # TruncatedNormal(mean, std, low, high)
    key: {choice: [flat, checker]}           # Choice(options), uniform weights
    key: {weighted_choice: {flat: 0.7, checker: 0.3}} # WeightedChoice(options, weights)
    key: {uniform_union: [[0.1, 0.3], [1.0, 1.2]]}    # UniformUnion(intervals), length-weighted
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim2real.errors import UsageError


class ConfigError(UsageError, ValueError):
    """A randomization config is invalid; the message names the key."""


@dataclass(frozen=True)
class Constant:
    value: Any

    def sample(self, rng: np.random.Generator) -> Any:
        return self.value

    def bounds(self) -> tuple[float, float]:
        return (float(self.value), float(self.value))


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)


@dataclass(frozen=True)
class UniformUnion:
    """Uniform over a union of disjoint intervals (weighted by length)."""

    intervals: tuple[tuple[float, float], ...]

    def sample(self, rng: np.random.Generator) -> float:
        lengths = np.array([high - low for low, high in self.intervals])
        index = rng.choice(len(self.intervals), p=lengths / lengths.sum())
        low, high = self.intervals[index]
        return float(rng.uniform(low, high))

    def bounds(self) -> tuple[float, float]:
        return (min(i[0] for i in self.intervals), max(i[1] for i in self.intervals))


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))

    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)


@dataclass(frozen=True)
class Normal:
    mean: float
    std: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.normal(self.mean, self.std))

    def bounds(self) -> tuple[float, float]:
        return (-np.inf, np.inf) if self.std > 0 else (self.mean, self.mean)


@dataclass(frozen=True)
class TruncatedNormal:
    mean: float
    std: float
    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        if self.std == 0:
            return float(np.clip(self.mean, self.low, self.high))
        for _ in range(1000):
            value = rng.normal(self.mean, self.std)
            if self.low <= value <= self.high:
                return float(value)
        return float(np.clip(self.mean, self.low, self.high))

    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)


@dataclass(frozen=True)
class Choice:
    options: tuple[Any, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]

    def bounds(self) -> tuple[float, float]:
        numeric = [float(o) for o in self.options]
        return (min(numeric), max(numeric))


@dataclass(frozen=True)
class WeightedChoice:
    options: tuple[Any, ...]
    weights: tuple[float, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        p = np.asarray(self.weights, float)
        return self.options[int(rng.choice(len(self.options), p=p / p.sum()))]

    def bounds(self) -> tuple[float, float]:
        numeric = [float(o) for o in self.options]
        return (min(numeric), max(numeric))


Distribution = Constant | Uniform | UniformUnion | LogUniform | Normal | TruncatedNormal | Choice | WeightedChoice


def _numbers(key: str, values: Any, count: int) -> list[float]:
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != count:
        raise ConfigError(f"{key}: expected a list of {count} numbers, got {values!r}")
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected numbers, got {values!r}") from None


def _interval(key: str, low: float, high: float) -> None:
    if low > high:
        raise ConfigError(f"{key}: low ({low}) > high ({high})")


def parse_distribution(key: str, raw: Any) -> Distribution:
    """Build a distribution from its YAML form, raising :class:`ConfigError` naming ``key``."""
    if not isinstance(raw, dict):
        if isinstance(raw, (list, tuple)):
            raise ConfigError(
                f"{key}: a bare list is ambiguous; write {{choice: {list(raw)}}} or {{uniform: [lo, hi]}}"
            )
        return Constant(raw)
    if len(raw) != 1:
        raise ConfigError(f"{key}: a distribution has exactly one kind, got {sorted(raw)}")
    kind, args = next(iter(raw.items()))
    match kind:
        case "uniform" | "log_uniform":
            low, high = _numbers(key, args, 2)
            _interval(key, low, high)
            if kind == "log_uniform" and low <= 0:
                raise ConfigError(f"{key}: log_uniform needs low > 0, got {low}")
            return Uniform(low, high) if kind == "uniform" else LogUniform(low, high)
        case "uniform_union":
            intervals = tuple(tuple(_numbers(key, pair, 2)) for pair in args)
            for low, high in intervals:
                _interval(key, low, high)
            return UniformUnion(intervals)  # type: ignore[arg-type]
        case "normal":
            mean, std = _numbers(key, args, 2)
            if std < 0:
                raise ConfigError(f"{key}: normal std must be >= 0, got {std}")
            return Normal(mean, std)
        case "truncated_normal":
            mean, std, low, high = _numbers(key, args, 4)
            _interval(key, low, high)
            if std < 0:
                raise ConfigError(f"{key}: truncated_normal std must be >= 0, got {std}")
            return TruncatedNormal(mean, std, low, high)
        case "choice":
            if not isinstance(args, (list, tuple)) or not args:
                raise ConfigError(f"{key}: choice needs a non-empty list, got {args!r}")
            return Choice(tuple(args))
        case "weighted_choice":
            if not isinstance(args, dict) or not args:
                raise ConfigError(f"{key}: weighted_choice needs a mapping option -> weight, got {args!r}")
            weights = tuple(float(w) for w in args.values())
            if any(w < 0 for w in weights) or sum(weights) <= 0:
                raise ConfigError(f"{key}: weighted_choice weights must be >= 0 with a positive sum, got {weights}")
            return WeightedChoice(tuple(args), weights)
    known = "uniform, log_uniform, uniform_union, normal, truncated_normal, choice, weighted_choice"
    raise ConfigError(f"{key}: unknown distribution {kind!r}; known: {known}")
