"""The ``metrics.json`` document: frozen dataclasses, read and written through :mod:`sim2real.contracts.typed`.

``metrics.json`` (schema version :data:`METRICS_SCHEMA_VERSION`) is one JSON object; every rate
is a fraction in [0, 1] and every ``ci95`` is ``[low, high]`` (Wilson for success rates,
percentile bootstrap for ranking metrics). :class:`MetricsDocument` and the classes below are
its schema; in outline::

    {
      "schema_version": 1,                          # int, == METRICS_SCHEMA_VERSION
      "created": "2025-01-01T12:00:00+00:00",       # str, ISO 8601
      "policy": {"name": str, "checkpoint": str | null},
      "seeds": {"base_seed": int, "episodes_per_variant": int},
      "closed_loop": {"<variant>": {"<task>": ClosedLoopResult}},
      "factors": {"<factor>": [FactorBin]},         # continuous [low, high) bins or "value" labels
      "replay": null | Replay,                      # real-robot replay set
      "ranking": null | Ranking,                    # sim-vs-real agreement over policies
      "reference_rows": {"<policy name>": {"<variant>": float | null}}   # rates of other policies
    }

Keys typed ``X | Absent`` may be left out; every object also keeps keys the schema does not
name (readers ignore them) and writes them back. Non-finite floats are written as ``null``
(:func:`plain_metrics`); a ranking value written as ``null`` always has its ``<key>_reason``,
and when ``replay.skipped`` is present every null replay metric and null ``visual_gap`` /
``image_stats`` camera has its reason there.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from sim2real.contracts import typed
from sim2real.contracts.typed import ABSENT, Absent, Check, SchemaError, at_least, extras_field, within
from sim2real.datasets.integrity import write_text_atomic
from sim2real.evaluation.metrics import SuccessRate

__all__ = [
    "METRICS_SCHEMA_VERSION",
    "ClosedLoopResult",
    "FactorBin",
    "MetricsDocument",
    "Ranking",
    "Replay",
    "closed_loop_entry",
    "load_metrics",
    "metrics_problems",
    "new_metrics",
    "plain_metrics",
    "pooled_success",
    "save_metrics",
]

#: Version of the metrics.json layout described in this module's docstring.
METRICS_SCHEMA_VERSION = 1

Count = Annotated[int, at_least(0, "an int")]
Counts = dict[str, Count]
Fraction = Annotated[float, within(0.0, 1.0)]
NonNegative = Annotated[float, at_least(0)]
Interval = Annotated[tuple[float, float], Check("[low, high] numbers with low <= high", lambda v: v[0] <= v[1] + 1e-12)]
UnitInterval = Annotated[
    tuple[float, float],
    Check("[low, high] numbers in [0, 1] with low <= high", lambda v: -1e-9 <= v[0] <= v[1] + 1e-12 <= 1 + 1e-9),
]
Reason = Annotated[str, Check("a non-empty string", bool)]
JsonObject = dict[str, Any]
SchemaVersion = Annotated[int, Check(f"{METRICS_SCHEMA_VERSION}", lambda v: v == METRICS_SCHEMA_VERSION)]


# ---------------------------------------------------------------------------------------------
# Closed loop and factors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyInfo:
    """The evaluated policy's name and checkpoint folder (None: not a checkpoint)."""

    name: str
    checkpoint: str | None
    extras: JsonObject = extras_field()


@dataclass(frozen=True)
class Seeds:
    """Base seed of the evaluation scenes and episodes per scene variant."""

    base_seed: int
    episodes_per_variant: int
    extras: JsonObject = extras_field()


@dataclass(frozen=True)
class SuccessCounts:
    """``successes`` of ``trials`` episodes, their ``rate`` and Wilson ``ci95``."""

    successes: Count
    trials: Count
    rate: Fraction
    ci95: UnitInterval
    extras: JsonObject = extras_field()

    def invariants(self) -> Iterator[tuple[str, str]]:
        if isinstance(self.successes, int) and isinstance(self.trials, int) and self.successes > self.trials:
            yield "", f"successes {self.successes} > trials {self.trials}"


@dataclass(frozen=True)
class ClosedLoopResult(SuccessCounts):
    """One ``closed_loop[variant][task]`` entry (:func:`closed_loop_entry`): ``mean_length`` in
    control steps; ``safety_events`` by name; ``stages``: episodes by furthest stage reached
    (summing to ``trials``); ``errors``: episodes ended by a policy error, by ``error_reasons``."""

    mean_length: float | None
    safety_events: dict[str, int]
    stages: Counts | Absent = ABSENT
    errors: Count | Absent = ABSENT
    error_reasons: Counts | Absent = ABSENT

    def invariants(self) -> Iterator[tuple[str, str]]:
        yield from super().invariants()
        counts = list(self.stages.values()) if isinstance(self.stages, dict) else [None]
        summable = isinstance(self.trials, int) and all(isinstance(c, int) for c in counts)
        if summable and sum(counts) != self.trials:
            yield "stages", f"counts sum to {sum(counts)}, trials is {self.trials}"


@dataclass(frozen=True, kw_only=True)
class FactorLabel:
    """Which bin of a randomisation factor: ``[low, high)`` (the last bin closed) of a continuous
    factor, or the ``value`` label of a categorical one."""

    low: float | Absent = ABSENT
    high: float | Absent = ABSENT
    value: str | Absent = ABSENT


@dataclass(frozen=True)
class FactorBin(SuccessCounts, FactorLabel):
    """Success in one bin of a randomisation factor (:class:`FactorLabel`, then the counts)."""

    def invariants(self) -> Iterator[tuple[str, str]]:
        yield from super().invariants()
        if isinstance(self.value, str):
            return
        if not (isinstance(self.low, float) and isinstance(self.high, float)):
            yield "", "expected numeric 'low' and 'high' (or a 'value' label)"
        elif self.low > self.high:
            yield "", f"low {self.low} > high {self.high}"


# ---------------------------------------------------------------------------------------------
# Real-robot replay
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenLoop:
    """:meth:`~sim2real.evaluation.metrics.ActionErrors.to_dict` on real frames and on held-out
    sim frames, and their gap (sim - real); null where not measured."""

    real: JsonObject | None
    sim: JsonObject | None
    gap: JsonObject | None
    extras: JsonObject = extras_field()


@dataclass(frozen=True)
class ImageStats:
    """:func:`~sim2real.evaluation.metrics.image_statistics` of one camera: per side ``frames``,
    ``mean_rgb``, ``std_rgb``, ``brightness``, ``contrast``; the gaps are sim - real."""

    real: JsonObject
    sim: JsonObject
    mean_rgb_gap: list[float] | Absent = ABSENT
    brightness_gap: float | Absent = ABSENT
    contrast_gap: float | Absent = ABSENT
    frechet_colour: NonNegative | Absent | None = ABSENT
    extras: JsonObject = extras_field()


@dataclass(frozen=True)
class AxisErrors:
    """A non-negative error per base-frame axis (m or rad)."""

    x: NonNegative
    y: NonNegative
    z: NonNegative


@dataclass(frozen=True)
class Clips:
    """Controller clips over the replayed episodes: ``total`` by reason, and how many episodes clipped."""

    total: Counts
    episodes_with_clips: Count
    extras: JsonObject = extras_field()


@dataclass(frozen=True)
class WorkspaceDepartures:
    """Steps and episodes at which the recorded trajectory lies outside the simulated workspace."""

    steps: Count
    steps_outside: Count
    fraction_steps_outside: Fraction
    episodes_leaving: Count
    fraction_episodes_leaving: Fraction
    outside_by_side: Counts | Absent = ABSENT
    extras: JsonObject = extras_field()

    def invariants(self) -> Iterator[tuple[str, str]]:
        if isinstance(self.steps, int) and isinstance(self.steps_outside, int) and self.steps_outside > self.steps:
            yield "", f"steps_outside {self.steps_outside} > steps {self.steps}"


@dataclass(frozen=True, kw_only=True)
class DynamicsEpisode:
    """One replayed episode (:meth:`~sim2real.evaluation.replay.EpisodeReplay.to_dict`): how it
    started, its errors (m, rad), clips and steps outside the workspace."""

    episode_id: str | Absent = ABSENT
    start: str
    start_note: str | Absent | None = ABSENT
    frame: Literal["absolute", "relative_to_start"]
    start_offset_m: list[float] | Absent = ABSENT
    control_hz: float | Absent = ABSENT
    physics_hz: float | Absent = ABSENT
    mean_position_error_m: NonNegative
    final_position_error_m: NonNegative | Absent = ABSENT
    max_position_error_m: NonNegative | Absent = ABSENT
    mean_orientation_error_rad: NonNegative | Absent | None = ABSENT
    final_orientation_error_rad: NonNegative | Absent | None = ABSENT
    mean_abs_position_error_m: AxisErrors | Absent | None = ABSENT
    max_abs_position_error_m: AxisErrors | Absent | None = ABSENT
    mean_abs_rotation_error_rad: AxisErrors | Absent | None = ABSENT
    clips: Counts
    steps: Count | Absent = ABSENT
    steps_outside_workspace: Count | Absent = ABSENT
    outside_workspace: Counts | Absent = ABSENT
    extras: JsonObject = extras_field()


@dataclass(frozen=True)
class Dynamics:
    """``replay.dynamics``: the recorded actions executed in sim against the recorded EE
    trajectory (:func:`~sim2real.evaluation.replay.dynamics_replay`); metres and radians."""

    n_episodes: Count
    mean_position_error_m: NonNegative | Absent | None = ABSENT
    final_position_error_m: NonNegative | Absent | None = ABSENT
    max_position_error_m: NonNegative | Absent | None = ABSENT
    mean_orientation_error_rad: NonNegative | Absent | None = ABSENT
    final_orientation_error_rad: NonNegative | Absent | None = ABSENT
    mean_abs_position_error_m: AxisErrors | Absent | None = ABSENT
    max_abs_position_error_m: AxisErrors | Absent | None = ABSENT
    mean_abs_rotation_error_rad: AxisErrors | Absent | None = ABSENT
    control_hz: list[float] | Absent = ABSENT
    physics_hz: list[float] | Absent = ABSENT
    starts: Counts | Absent = ABSENT
    frames: Counts | Absent = ABSENT
    clips: Clips | Absent = ABSENT
    workspace: WorkspaceDepartures | Absent = ABSENT
    episodes: list[DynamicsEpisode] | Absent = ABSENT
    skipped_episodes: dict[str, str] | Absent = ABSENT
    extras: JsonObject = extras_field()

    def invariants(self) -> Iterator[tuple[str, str]]:
        counted = isinstance(self.episodes, list) and isinstance(self.n_episodes, int)
        if counted and len(self.episodes) != self.n_episodes:
            yield "episodes", f"{len(self.episodes)} entries, n_episodes is {self.n_episodes}"


#: replay metrics that are null when not measured, with their reason in ``replay.skipped``
REPLAY_METRICS = ("open_loop", "visual_gap", "dynamics", "image_stats")


@dataclass(frozen=True, kw_only=True)
class Replay:
    """``replay``: open-loop action error, visual gap (Fréchet distance of encoder features per
    camera), dynamics replay and image statistics, each null when not measured; ``skipped``:
    why a metric (key: its name) or a camera (``visual_gap.<camera>``, ``image_stats.<camera>``)
    is null; ``notes``: what was measured differently from the plain definition; ``path`` and
    ``episodes``: the set read and its episode count; ``embodiment``: what the set is."""

    path: str | Absent = ABSENT
    episodes: Count | Absent = ABSENT
    embodiment: JsonObject | Absent = ABSENT
    open_loop: OpenLoop | None
    visual_gap: dict[str, NonNegative | None] | None
    image_stats: dict[str, ImageStats | None] | Absent | None = ABSENT
    dynamics: Dynamics | None
    skipped: dict[str, Reason] | Absent = ABSENT
    notes: list[str] | Absent = ABSENT
    extras: JsonObject = extras_field()

    def invariants(self) -> Iterator[tuple[str, str]]:
        if not isinstance(self.skipped, dict):
            return
        for key in REPLAY_METRICS:
            if getattr(self, key) is None and key not in self.skipped:
                yield key, "null without a reason in replay.skipped"
        for key in ("visual_gap", "image_stats"):
            block = getattr(self, key)
            for camera, value in block.items() if isinstance(block, dict) else ():
                if value is None and f"{key}.{camera}" not in self.skipped:
                    yield f"{key}.{camera}", "null without a reason in replay.skipped"


# ---------------------------------------------------------------------------------------------
# Ranking
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bootstrap:
    """Resamples behind the ranking intervals, and how many each metric left out."""

    resamples: Annotated[int, at_least(1, "an int")]
    confidence: float | Absent = ABSENT
    seed: int | Absent = ABSENT
    pearson_skipped: int | Absent = ABSENT
    mmrv_skipped: int | Absent = ABSENT
    extras: JsonObject = extras_field()

    def invariants(self) -> Iterator[tuple[str, str]]:
        for key in ("pearson_skipped", "mmrv_skipped"):
            skipped = getattr(self, key)
            limit = self.resamples if isinstance(self.resamples, int) else math.inf
            if isinstance(skipped, int) and not 0 <= skipped <= limit:
                yield key, f"expected an int in [0, resamples], got {skipped!r}"


#: ranking values that may be null, each with a ``<key>_reason`` string next to it
RANKING_NULLABLE = ("pearson", "pearson_ci95", "mmrv_ci95")


@dataclass(frozen=True, kw_only=True)
class Ranking:
    """Sim-vs-real agreement over policies (:func:`~sim2real.evaluation.metrics.ranking_agreement`):
    Pearson r and MMRV with bootstrap intervals; ``<key>_reason`` says why a value is null."""

    pearson: Annotated[float, within(-1.0, 1.0)] | None
    pearson_reason: Reason | Absent | None = ABSENT
    pearson_ci95: Interval | None
    pearson_ci95_reason: Reason | Absent | None = ABSENT
    mmrv: NonNegative
    mmrv_ci95: Interval | None
    mmrv_ci95_reason: Reason | Absent | None = ABSENT
    bootstrap: Bootstrap | Absent = ABSENT
    policies: list[str] | Absent = ABSENT
    sim: list[float] | Absent = ABSENT
    real: list[float] | Absent = ABSENT
    extras: JsonObject = extras_field()

    def invariants(self) -> Iterator[tuple[str, str]]:
        for key in RANKING_NULLABLE:
            reason = getattr(self, f"{key}_reason")
            if isinstance(reason, str) and getattr(self, key) is not None:
                yield f"{key}_reason", f"given, but ranking.{key} is not null"


# ---------------------------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsDocument:
    """Everything one evaluation measured; ``metrics.json`` is :meth:`to_dict`."""

    schema_version: SchemaVersion
    created: str
    policy: PolicyInfo
    seeds: Seeds
    closed_loop: dict[str, dict[str, ClosedLoopResult]]
    factors: dict[str, list[FactorBin]]
    replay: Replay | None
    ranking: Ranking | None
    reference_rows: dict[str, dict[str, Fraction | None]]
    extras: JsonObject = extras_field()

    @classmethod
    def from_dict(cls, data: Any) -> MetricsDocument:
        """Read ``json.loads`` output; :class:`~sim2real.contracts.typed.SchemaError` names every
        problem by its key path (``closed_loop.<variant>.<task>.rate``), value and expectation."""
        return typed.from_dict(cls, data, root="")

    def to_dict(self) -> dict[str, Any]:
        """The plain JSON data of ``metrics.json``; ``from_dict(d).to_dict() == d``."""
        return typed.to_dict(self)


def new_metrics(
    policy_name: str,
    checkpoint: str | None,
    base_seed: int,
    episodes_per_variant: int,
    created: str | None = None,
) -> dict[str, Any]:
    """An empty metrics dict to fill in (``closed_loop``, ``factors`` ... left empty)."""
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "created": created or datetime.now(UTC).isoformat(timespec="seconds"),
        "policy": {"name": policy_name, "checkpoint": checkpoint},
        "seeds": {"base_seed": int(base_seed), "episodes_per_variant": int(episodes_per_variant)},
        "closed_loop": {},
        "factors": {},
        "replay": None,
        "ranking": None,
        "reference_rows": {},
    }


def closed_loop_entry(
    successes: ArrayLike,
    lengths: ArrayLike | None = None,
    safety_events: Mapping[str, int] | None = None,
    confidence: float = 0.95,
    stages: Sequence[str] | None = None,
    stage_order: Sequence[str] = (),
    errors: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """One ``closed_loop[variant][task]`` entry (:class:`ClosedLoopResult`) from per-episode outcomes.

    Args:
        successes: outcome per episode, bool or 0/1, shape (N,).
        lengths: episode length per episode in control steps, shape (N,), or None.
        safety_events: total count per safety event name over the N episodes.
        confidence: coverage of the Wilson interval.
        stages: per episode, ``success`` or the furthest task milestone it reached (``none``
            for none), shape (N,); counted into ``stages`` when given.
        stage_order: stage names in the order to list them (with zero counts); stages not in
            it follow in order of appearance.
        errors: per episode, why the policy failed during it (a server error, a lost
            connection) or None, shape (N,); counted into ``errors`` and ``error_reasons``.
    """
    entry = SuccessRate.from_outcomes(successes, confidence).to_dict()
    length_values = None if lengths is None else np.asarray(lengths, dtype=np.float64).reshape(-1)
    entry["mean_length"] = None if length_values is None or length_values.size == 0 else float(length_values.mean())
    entry["safety_events"] = {str(k): int(v) for k, v in (safety_events or {}).items()}
    if stages is not None:
        counts = Counter(stages)
        names = list(dict.fromkeys([*stage_order, *counts]))
        entry["stages"] = {str(name): int(counts[name]) for name in names}
    if errors is not None:
        reasons = Counter(str(e) for e in errors if e is not None)
        entry["errors"], entry["error_reasons"] = sum(reasons.values()), dict(reasons)
    return entry


def pooled_success(tasks: Mapping[str, Mapping[str, Any]]) -> SuccessRate:
    """Success of one scene variant with its tasks pooled: ``tasks`` maps task -> closed-loop
    entry (``successes``, ``trials``); the interval is Wilson's 95%."""
    successes = sum(int(e["successes"]) for e in tasks.values())
    trials = sum(int(e["trials"]) for e in tasks.values())
    return SuccessRate.from_counts(successes, trials)


def _jsonable(value: Any) -> Any:
    """Plain-JSON copy: numpy scalars/arrays to Python, Paths to str, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def plain_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A plain-JSON copy of a metrics dict as built by the evaluation: numpy values as Python
    ones, NaN and infinity as ``null``, and a ``<key>_reason`` for every null ranking value."""
    clean = _jsonable(metrics)
    ranking = clean.get("ranking")
    if isinstance(ranking, dict):
        for key in RANKING_NULLABLE:
            if key in ranking and ranking[key] is None and not ranking.get(f"{key}_reason"):
                ranking[f"{key}_reason"] = "not computed, or not a finite number"
    return clean


def metrics_problems(metrics: Any) -> list[str]:
    """Every way ``metrics`` departs from :class:`MetricsDocument` (empty list: it reads).

    numpy scalars and arrays count as the Python values they are written as; NaN and infinity
    as ``null``."""
    data = _jsonable(metrics) if isinstance(metrics, Mapping) else metrics
    try:
        MetricsDocument.from_dict(data)
    except SchemaError as error:
        return error.problems
    return []


def save_metrics(document: MetricsDocument, path: Path) -> Path:
    """Write ``document`` to ``path`` as indented JSON, atomically (temporary file, then rename)."""
    write_text_atomic(path, json.dumps(document.to_dict(), indent=2, allow_nan=False) + "\n")
    return path


def load_metrics(path: Path | str) -> MetricsDocument:
    """Read a ``metrics.json``; :class:`~sim2real.contracts.typed.SchemaError` when it does not fit."""
    return MetricsDocument.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
