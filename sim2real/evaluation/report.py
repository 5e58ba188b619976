"""Evaluation report: the ``metrics.json`` schema, its validator, and the report writer.

``metrics.json`` (schema version :data:`METRICS_SCHEMA_VERSION`) is one JSON object;
every rate is a fraction in [0, 1] and every ``ci95`` is ``[low, high]`` (Wilson for
success rates, percentile bootstrap for ranking metrics)::

    {
      "schema_version": 1,                          # int, == METRICS_SCHEMA_VERSION
      "created": "2025-01-01T12:00:00+00:00",       # str, ISO 8601
      "policy": {"name": str, "checkpoint": str | null},
      "seeds": {"base_seed": int, "episodes_per_variant": int},
      "closed_loop": {                              # scene variant -> task -> result
        "<variant>": {
          "<task>": {
            "successes": int, "trials": int, "rate": float, "ci95": [float, float],
            "mean_length": float | null,            # mean episode length, control steps
            "safety_events": {"<name>": int},       # e.g. joint_limit_clips, workspace_clips
            "stages": {"<stage>": int},             # optional: episodes by furthest stage reached
            "errors": int,                          # optional: episodes ended by a policy error
            "error_reasons": {"<reason>": int}      # optional: those episodes by error message
          }
        }
      },
      "factors": {                                  # randomisation factor -> bins
        "<factor>": [
          {"low": float, "high": float,             # continuous factor: [low, high) bin
           "successes": int, "trials": int, "rate": float, "ci95": [float, float]}
          # or, for a categorical factor, "value": str in place of "low"/"high"
        ]
      },
      "replay": null | {                            # real-robot replay set
        "open_loop": null | {
          "real": {...}, "sim": {...} | null, "gap": {...} | null  # ActionErrors.to_dict(); gap = sim - real
        },
        "visual_gap": null | {"<camera>": float | null},  # Fréchet distance of encoder features;
                                                    #   null: a camera the set lacks (never stood in for)
        "dynamics": null | {                        # aggregate_trajectory_errors(): metres, radians
          "n_episodes": int, "mean_position_error_m": float, ...,
          # optional (sim2real.evaluation.replay.dynamics_replay):
          "mean_abs_position_error_m": {"x", "y", "z": float} | null, ...  # per-axis errors
          "starts": {"recorded_joints" | "recorded_ee" | "workspace_fit": int},
          "frames": {"absolute" | "relative_to_start": int},
          "clips": {"total": {"<reason>": int}, "episodes_with_clips": int},
          "workspace": {"steps": int, "steps_outside": int, "fraction_steps_outside": float,
                        "episodes_leaving": int, "fraction_episodes_leaving": float,
                        "outside_by_side": {"<axis>_low|high": int}},
          "episodes": [{"episode_id": str, "start": str, "frame": str, "clips": {...}, ...}],
          "skipped_episodes": {"<episode id>": str}
        },
        # optional: "image_stats": null | {"<camera>": null | image_statistics()},
        #   "embodiment": {...}, "notes": [str],
        #   "skipped": {"<metric>" | "visual_gap.<camera>" | "image_stats.<camera>": str}: why a
        #   metric or camera is null; when "skipped" is present every null metric and every null
        #   visual_gap / image_stats camera has its reason there
      },
      "ranking": null | {                           # sim-vs-real agreement over policies
        "pearson": float | null, "pearson_ci95": [float, float] | null,
        "mmrv": float, "mmrv_ci95": [float, float] | null,
        # "<key>_reason": str | null next to pearson, pearson_ci95 and mmrv_ci95: why the
        #   value is null (e.g. "real success rates are all equal: correlation undefined")
        # optional: "bootstrap": {"resamples": int, "confidence": float, "seed": int,
        #   "pearson_skipped": int, "mmrv_skipped": int}   # resamples left out of each CI
        # optional: "policies": [str], "sim": [float], "real": [float]
      },
      "reference_rows": {"<policy name>": {"<variant>": float}}   # rates of other policies
    }

Extra keys are allowed anywhere (readers ignore what they do not know); the required ones
are checked by :func:`validate_metrics`. Non-finite floats are written as ``null``; a ranking
value written as ``null`` always has its ``<key>_reason``.

:func:`write_report` writes, into one folder: ``metrics.json``, ``report.md`` (tables and
embedded plots), ``success_per_variant.png``, ``factors.png`` (when factors exist),
``action_errors.png`` (when open-loop replay metrics exist) and ``feature_embedding.png``
(when encoder features are given). :func:`write_video` and :func:`contact_sheet` turn
episode frames into an animated GIF (and MP4 when ``imageio-ffmpeg`` is installed) and a
PNG grid. Plots use matplotlib's object API with the Agg canvas (no pyplot global state).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

from sim2real.evaluation.metrics import SuccessRate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "METRICS_SCHEMA_VERSION",
    "MetricsValidationError",
    "closed_loop_entry",
    "contact_sheet",
    "metrics_problems",
    "new_metrics",
    "validate_metrics",
    "write_report",
    "write_video",
]

#: Version of the metrics.json layout described in this module's docstring.
METRICS_SCHEMA_VERSION = 1

_TOP_LEVEL = (
    "schema_version",
    "created",
    "policy",
    "seeds",
    "closed_loop",
    "factors",
    "replay",
    "ranking",
    "reference_rows",
)


class MetricsValidationError(ValueError):
    """metrics.json does not follow the schema; the message lists every problem found."""


# ---------------------------------------------------------------------------------------------
# Building and validating metrics dicts
# ---------------------------------------------------------------------------------------------


def new_metrics(
    policy_name: str,
    checkpoint: str | None,
    base_seed: int,
    episodes_per_variant: int,
    created: str | None = None,
) -> dict[str, Any]:
    """An empty, valid metrics dict to fill in (``closed_loop``, ``factors`` ... left empty)."""
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
    """One ``closed_loop[variant][task]`` entry from per-episode outcomes.

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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_interval(value: Any, where: str, problems: list[str], unit: bool = True) -> None:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value)):
        problems.append(f"{where}: expected [low, high] numbers, got {value!r}")
        return
    low, high = value
    if low > high + 1e-12:
        problems.append(f"{where}: low {low} > high {high}")
    if unit and not (low >= -1e-9 and high <= 1 + 1e-9):
        problems.append(f"{where}: interval {value!r} outside [0, 1]")


def _check_counts(entry: Mapping[str, Any], where: str, problems: list[str]) -> None:
    for key in ("successes", "trials", "rate", "ci95"):
        if key not in entry:
            problems.append(f"{where}: missing {key!r}")
    successes, trials, rate = entry.get("successes"), entry.get("trials"), entry.get("rate")
    if "successes" in entry and not (_is_int(successes) and successes >= 0):
        problems.append(f"{where}.successes: expected int >= 0, got {successes!r}")
    if "trials" in entry and not (_is_int(trials) and trials >= 0):
        problems.append(f"{where}.trials: expected int >= 0, got {trials!r}")
    if _is_int(successes) and _is_int(trials) and successes > trials:
        problems.append(f"{where}: successes {successes} > trials {trials}")
    if "rate" in entry and not (_is_number(rate) and 0.0 <= rate <= 1.0):
        problems.append(f"{where}.rate: expected a number in [0, 1], got {rate!r}")
    if "ci95" in entry:
        _check_interval(entry["ci95"], f"{where}.ci95", problems)


def _check_stages(entry: Mapping[str, Any], where: str, problems: list[str]) -> None:
    if "stages" not in entry:
        return
    stages = entry["stages"]
    if not isinstance(stages, Mapping) or not all(_is_int(v) and v >= 0 for v in stages.values()):
        problems.append(f"{where}.stages: expected an object of non-negative int counts")
    elif _is_int(entry.get("trials")) and sum(stages.values()) != entry["trials"]:
        problems.append(f"{where}.stages: counts sum to {sum(stages.values())}, trials is {entry['trials']}")


#: ranking values that may be null, each with a ``<key>_reason`` string next to it
_RANKING_NULLABLE = ("pearson", "pearson_ci95", "mmrv_ci95")


def _check_ranking_reasons(ranking: Mapping[str, Any], problems: list[str]) -> None:
    for key in _RANKING_NULLABLE:
        reason_key = f"{key}_reason"
        if reason_key not in ranking:
            continue
        reason = ranking[reason_key]
        if not (reason is None or (isinstance(reason, str) and reason)):
            problems.append(f"ranking.{reason_key}: expected a non-empty string or null, got {reason!r}")
        elif reason is not None and ranking.get(key) is not None:
            problems.append(f"ranking.{reason_key}: given, but ranking.{key} is not null")


def _check_ranking_bootstrap(ranking: Mapping[str, Any], problems: list[str]) -> None:
    if "bootstrap" not in ranking:
        return
    block = ranking["bootstrap"]
    if not isinstance(block, Mapping):
        problems.append("ranking.bootstrap: expected an object")
        return
    resamples = block.get("resamples")
    if not (_is_int(resamples) and resamples >= 1):
        problems.append(f"ranking.bootstrap.resamples: expected an int >= 1, got {resamples!r}")
        resamples = None
    for key in ("pearson_skipped", "mmrv_skipped"):
        if key not in block:
            continue
        skipped = block[key]
        if not (_is_int(skipped) and skipped >= 0 and (resamples is None or skipped <= resamples)):
            problems.append(f"ranking.bootstrap.{key}: expected an int in [0, resamples], got {skipped!r}")


#: replay metrics that are null when not measured, with their reason in ``replay.skipped``
_REPLAY_METRICS = ("open_loop", "visual_gap", "dynamics", "image_stats")
_DYNAMICS_ERRORS = ("mean_position_error_m", "final_position_error_m", "max_position_error_m",
                    "mean_orientation_error_rad", "final_orientation_error_rad")  # fmt: skip
_DYNAMICS_AXES = ("mean_abs_position_error_m", "max_abs_position_error_m", "mean_abs_rotation_error_rad")


def _is_counts(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(k, str) and _is_int(v) and v >= 0 for k, v in value.items())


def _check_replay_reasons(replay: Mapping[str, Any], problems: list[str]) -> None:
    """``skipped``, ``notes``, ``embodiment`` and ``image_stats`` of a replay block, and a reason
    in ``skipped`` for every null metric and camera (when ``skipped`` is given)."""
    if "notes" in replay and not (
        isinstance(replay["notes"], list) and all(isinstance(n, str) for n in replay["notes"])
    ):
        problems.append("replay.notes: expected a list of strings")
    if "embodiment" in replay and not isinstance(replay["embodiment"], Mapping):
        problems.append("replay.embodiment: expected an object")
    stats = replay.get("image_stats")
    if "image_stats" in replay and not (stats is None or isinstance(stats, Mapping)):
        problems.append("replay.image_stats: expected an object or null")
    elif isinstance(stats, Mapping):
        for camera, entry in stats.items():
            if entry is None:
                continue
            if not (isinstance(entry, Mapping) and isinstance(entry.get("real"), Mapping)
                    and isinstance(entry.get("sim"), Mapping)):  # fmt: skip
                problems.append(f"replay.image_stats.{camera}: expected an object with 'real' and 'sim', or null")
            elif not (entry.get("frechet_colour") is None or (_is_number(entry["frechet_colour"])
                                                               and entry["frechet_colour"] >= 0)):  # fmt: skip
                problems.append(f"replay.image_stats.{camera}.frechet_colour: expected a number >= 0 or null")
    if "skipped" not in replay:
        return
    skipped = replay["skipped"]
    if not (isinstance(skipped, Mapping) and all(isinstance(v, str) and v for v in skipped.values())):
        problems.append("replay.skipped: expected an object of non-empty reason strings")
        return
    for key in _REPLAY_METRICS:
        if key in replay and replay[key] is None and key not in skipped:
            problems.append(f"replay.{key}: null without a reason in replay.skipped")
    for key in ("visual_gap", "image_stats"):
        block = replay.get(key)
        if isinstance(block, Mapping):
            for camera, value in block.items():
                if value is None and f"{key}.{camera}" not in skipped:
                    problems.append(f"replay.{key}.{camera}: null without a reason in replay.skipped")


def _check_dynamics(dynamics: Mapping[str, Any], problems: list[str]) -> None:
    """The ``replay.dynamics`` block: counts, errors (m, rad, >= 0), per-axis errors, starts,
    clips, workspace departures and per-episode entries (each optional but ``n_episodes``)."""
    where = "replay.dynamics"
    if not (_is_int(dynamics.get("n_episodes")) and dynamics["n_episodes"] >= 0):
        problems.append(f"{where}.n_episodes: expected an int >= 0")
    for key in _DYNAMICS_ERRORS:
        value = dynamics.get(key)
        if key in dynamics and not (value is None or (_is_number(value) and value >= 0)):
            problems.append(f"{where}.{key}: expected a number >= 0 or null, got {value!r}")
    for key in _DYNAMICS_AXES:
        value = dynamics.get(key)
        if key in dynamics and value is not None and not (
            isinstance(value, Mapping) and set(value) == {"x", "y", "z"}
            and all(_is_number(v) and v >= 0 for v in value.values())
        ):  # fmt: skip
            problems.append(f"{where}.{key}: expected {{x, y, z}} numbers >= 0 or null")
    for key in ("starts", "frames"):
        if key in dynamics and not _is_counts(dynamics[key]):
            problems.append(f"{where}.{key}: expected an object of int counts")
    if "clips" in dynamics:
        clips = dynamics["clips"]
        if not (isinstance(clips, Mapping) and _is_counts(clips.get("total"))
                and _is_int(clips.get("episodes_with_clips")) and clips["episodes_with_clips"] >= 0):  # fmt: skip
            problems.append(f"{where}.clips: expected {{total: {{reason: int}}, episodes_with_clips: int}}")
    if "workspace" in dynamics:
        ws = dynamics["workspace"]
        if not isinstance(ws, Mapping):
            problems.append(f"{where}.workspace: expected an object")
        else:
            for key in ("steps", "steps_outside", "episodes_leaving"):
                if not (_is_int(ws.get(key)) and ws[key] >= 0):
                    problems.append(f"{where}.workspace.{key}: expected an int >= 0")
            for key in ("fraction_steps_outside", "fraction_episodes_leaving"):
                if not (_is_number(ws.get(key)) and 0.0 <= ws[key] <= 1.0):
                    problems.append(f"{where}.workspace.{key}: expected a fraction in [0, 1]")
            if _is_int(ws.get("steps")) and _is_int(ws.get("steps_outside")) and ws["steps_outside"] > ws["steps"]:
                problems.append(f"{where}.workspace: steps_outside {ws['steps_outside']} > steps {ws['steps']}")
            if "outside_by_side" in ws and not _is_counts(ws["outside_by_side"]):
                problems.append(f"{where}.workspace.outside_by_side: expected an object of int counts")
    if "episodes" in dynamics:
        episodes = dynamics["episodes"]
        if not isinstance(episodes, list):
            problems.append(f"{where}.episodes: expected a list")
        else:
            if _is_int(dynamics.get("n_episodes")) and len(episodes) != dynamics["n_episodes"]:
                problems.append(f"{where}.episodes: {len(episodes)} entries, n_episodes is {dynamics['n_episodes']}")
            for k, entry in enumerate(episodes):
                if not (isinstance(entry, Mapping) and isinstance(entry.get("start"), str)
                        and entry.get("frame") in ("absolute", "relative_to_start")
                        and _is_counts(entry.get("clips"))):  # fmt: skip
                    problems.append(f"{where}.episodes[{k}]: expected start, frame (absolute | relative_to_start) "
                                    "and clips")  # fmt: skip
                elif not (_is_number(entry.get("mean_position_error_m")) and entry["mean_position_error_m"] >= 0):
                    problems.append(f"{where}.episodes[{k}].mean_position_error_m: expected a number >= 0")
    skipped = dynamics.get("skipped_episodes", {})
    if not (isinstance(skipped, Mapping) and all(isinstance(v, str) for v in skipped.values())):
        problems.append(f"{where}.skipped_episodes: expected an object of reason strings")


def _fill_ranking_reasons(metrics: dict[str, Any]) -> None:
    """Give every null ranking value a ``<key>_reason`` (in place, on a plain-JSON copy)."""
    ranking = metrics.get("ranking")
    if not isinstance(ranking, dict):
        return
    for key in _RANKING_NULLABLE:
        if key in ranking and ranking[key] is None and not ranking.get(f"{key}_reason"):
            ranking[f"{key}_reason"] = "not computed, or not a finite number"


def metrics_problems(metrics: Any) -> list[str]:
    """Every way ``metrics`` departs from the schema (empty list: valid). See the module doc.

    numpy scalars and arrays are checked as the Python values they are written as; NaN and
    infinity count as ``null``.
    """
    problems: list[str] = []
    if not isinstance(metrics, Mapping):
        return [f"metrics: expected an object, got {type(metrics).__name__}"]
    metrics = _jsonable(metrics)
    for key in _TOP_LEVEL:
        if key not in metrics:
            problems.append(f"missing top-level key {key!r}")
    if "schema_version" in metrics and metrics["schema_version"] != METRICS_SCHEMA_VERSION:
        problems.append(f"schema_version: expected {METRICS_SCHEMA_VERSION}, got {metrics['schema_version']!r}")
    if "created" in metrics and not isinstance(metrics["created"], str):
        problems.append("created: expected an ISO 8601 string")

    policy = metrics.get("policy")
    if "policy" in metrics:
        if not isinstance(policy, Mapping):
            problems.append("policy: expected an object")
        else:
            if not isinstance(policy.get("name"), str):
                problems.append("policy.name: expected a string")
            checkpoint = policy.get("checkpoint", 0)
            if not (checkpoint is None or isinstance(checkpoint, str)):
                problems.append("policy.checkpoint: expected a string or null")

    seeds = metrics.get("seeds")
    if "seeds" in metrics:
        if not isinstance(seeds, Mapping):
            problems.append("seeds: expected an object")
        else:
            for key in ("base_seed", "episodes_per_variant"):
                if not _is_int(seeds.get(key)):
                    problems.append(f"seeds.{key}: expected an int")

    closed_loop = metrics.get("closed_loop")
    if "closed_loop" in metrics:
        if not isinstance(closed_loop, Mapping):
            problems.append("closed_loop: expected an object")
        else:
            for variant, tasks in closed_loop.items():
                if not isinstance(tasks, Mapping):
                    problems.append(f"closed_loop.{variant}: expected an object of tasks")
                    continue
                for task, entry in tasks.items():
                    where = f"closed_loop.{variant}.{task}"
                    if not isinstance(entry, Mapping):
                        problems.append(f"{where}: expected an object")
                        continue
                    _check_counts(entry, where, problems)
                    length = entry.get("mean_length", "missing")
                    if not (length is None or _is_number(length)):
                        problems.append(f"{where}.mean_length: expected a number or null, got {length!r}")
                    events = entry.get("safety_events")
                    if not isinstance(events, Mapping) or not all(_is_int(v) for v in events.values()):
                        problems.append(f"{where}.safety_events: expected an object of int counts")
                    _check_stages(entry, where, problems)
                    if "errors" in entry and not (_is_int(entry["errors"]) and entry["errors"] >= 0):
                        problems.append(f"{where}.errors: expected an int >= 0, got {entry['errors']!r}")

    factors = metrics.get("factors")
    if "factors" in metrics:
        if not isinstance(factors, Mapping):
            problems.append("factors: expected an object")
        else:
            for name, bins in factors.items():
                if not isinstance(bins, list):
                    problems.append(f"factors.{name}: expected a list of bins")
                    continue
                for k, item in enumerate(bins):
                    where = f"factors.{name}[{k}]"
                    if not isinstance(item, Mapping):
                        problems.append(f"{where}: expected an object")
                        continue
                    _check_counts(item, where, problems)
                    if "value" in item:
                        if not isinstance(item["value"], str):
                            problems.append(f"{where}.value: expected a string")
                    elif not (_is_number(item.get("low")) and _is_number(item.get("high"))):
                        problems.append(f"{where}: expected numeric 'low' and 'high' (or a 'value' label)")
                    elif item["low"] > item["high"]:
                        problems.append(f"{where}: low > high")

    replay = metrics.get("replay")
    if replay is not None and "replay" in metrics:
        if not isinstance(replay, Mapping):
            problems.append("replay: expected an object or null")
        else:
            for key in ("open_loop", "visual_gap", "dynamics"):
                if key not in replay:
                    problems.append(f"replay: missing {key!r} (null when not measured)")
                elif not (replay[key] is None or isinstance(replay[key], Mapping)):
                    problems.append(f"replay.{key}: expected an object or null")
            open_loop = replay.get("open_loop")
            if isinstance(open_loop, Mapping):
                for key in ("real", "sim", "gap"):
                    if not (open_loop.get(key) is None or isinstance(open_loop.get(key), Mapping)):
                        problems.append(f"replay.open_loop.{key}: expected an object or null")
                    if key not in open_loop:
                        problems.append(f"replay.open_loop: missing {key!r}")
            visual = replay.get("visual_gap")
            if isinstance(visual, Mapping):
                for camera, value in visual.items():
                    if not (value is None or (_is_number(value) and value >= 0)):
                        problems.append(f"replay.visual_gap.{camera}: expected a number >= 0 or null")
            _check_replay_reasons(replay, problems)
            if isinstance(replay.get("dynamics"), Mapping):
                _check_dynamics(replay["dynamics"], problems)

    ranking = metrics.get("ranking")
    if ranking is not None and "ranking" in metrics:
        if not isinstance(ranking, Mapping):
            problems.append("ranking: expected an object or null")
        else:
            for key in ("pearson", "pearson_ci95", "mmrv", "mmrv_ci95"):
                if key not in ranking:
                    problems.append(f"ranking: missing {key!r}")
            if ranking.get("pearson") is not None and not (
                _is_number(ranking["pearson"]) and -1.0 <= ranking["pearson"] <= 1.0
            ):
                problems.append("ranking.pearson: expected a number in [-1, 1] or null")
            if "mmrv" in ranking and not (_is_number(ranking["mmrv"]) and ranking["mmrv"] >= 0):
                problems.append("ranking.mmrv: expected a number >= 0")
            for key in ("pearson_ci95", "mmrv_ci95"):
                if ranking.get(key) is not None:
                    _check_interval(ranking[key], f"ranking.{key}", problems, unit=False)
            _check_ranking_reasons(ranking, problems)
            _check_ranking_bootstrap(ranking, problems)

    rows = metrics.get("reference_rows")
    if "reference_rows" in metrics:
        if not isinstance(rows, Mapping):
            problems.append("reference_rows: expected an object")
        else:
            for name, row in rows.items():
                if not isinstance(row, Mapping):
                    problems.append(f"reference_rows.{name}: expected an object of variant rates")
                    continue
                for variant, rate in row.items():
                    if not (rate is None or (_is_number(rate) and 0.0 <= rate <= 1.0)):
                        problems.append(f"reference_rows.{name}.{variant}: expected a rate in [0, 1] or null")
    return problems


def validate_metrics(metrics: Any) -> None:
    """Raise :class:`MetricsValidationError` listing every schema problem of ``metrics``.

    Checks the required keys and their types (see the module docstring); extra keys pass.
    Numbers must be finite: NaN and infinity are not JSON (write ``null`` where allowed).
    """
    problems = metrics_problems(metrics)
    if problems:
        raise MetricsValidationError("metrics do not follow the schema:\n  " + "\n  ".join(problems))


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


# ---------------------------------------------------------------------------------------------
# Videos
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib object API, Agg canvas)
# ---------------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _pooled(tasks: Mapping[str, Mapping[str, Any]]) -> SuccessRate:
    successes = sum(int(e["successes"]) for e in tasks.values())
    trials = sum(int(e["trials"]) for e in tasks.values())
    return SuccessRate.from_counts(successes, trials)


def _plot_success_per_variant(closed_loop: Mapping[str, Mapping[str, Any]], path: Path) -> None:
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
                pooled = _pooled(closed_loop[variant])
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


def _plot_factors(factors: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> None:
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


def _plot_action_errors(open_loop: Mapping[str, Any], path: Path) -> None:
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


def _plot_feature_embedding(features: Mapping[str, ArrayLike], path: Path, max_points: int = 2000) -> None:
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


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if value != 0.0 and abs(value) < 10.0 ** -(digits - 1):  # keep tiny values readable
            return f"{value:.{digits}g}"
        return f"{value:.{digits}f}"
    return str(value)


def _ci(value: Any) -> str:
    if not value:
        return "–"
    return f"[{_num(value[0])}, {_num(value[1])}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _link(target: Path, output_dir: Path) -> str:
    try:
        return Path(os.path.relpath(Path(target).resolve(), output_dir.resolve())).as_posix()
    except ValueError:  # another drive
        return Path(target).resolve().as_posix()


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        items: list[tuple[str, Any]] = []
        for key, sub in value.items():
            items += _flatten(f"{prefix}.{key}" if prefix else str(key), sub)
        return items
    return [(prefix, value)]


def _closed_loop_section(metrics: Mapping[str, Any]) -> list[str]:
    closed_loop = metrics["closed_loop"]
    lines = ["## Closed-loop success", ""]
    if not closed_loop:
        return [*lines, "No closed-loop episodes.", ""]
    pooled_rows = []
    for variant, tasks in closed_loop.items():
        pooled = _pooled(tasks)
        pooled_rows.append(
            [variant, f"{pooled.successes}/{pooled.trials}", _num(pooled.rate), _ci([pooled.low, pooled.high])]
        )
    lines += ["Per variant, all tasks pooled (Wilson 95% interval):", ""]
    lines += _table(["variant", "successes/trials", "rate", "95% CI"], pooled_rows)
    rows = []
    for variant, tasks in closed_loop.items():
        for task, entry in tasks.items():
            events = entry.get("safety_events") or {}
            event_text = ", ".join(f"{k}: {v}" for k, v in sorted(events.items()) if v) or "none"
            failures = {k: v for k, v in (entry.get("stages") or {}).items() if k != "success"}
            failure_text = ", ".join(f"{k}: {v}" for k, v in failures.items()) if "stages" in entry else "n/a"
            rows.append(
                [
                    variant,
                    task,
                    f"{entry['successes']}/{entry['trials']}",
                    _num(entry["rate"]),
                    _ci(entry["ci95"]),
                    _num(entry.get("mean_length"), 1),
                    failure_text or "none",
                    event_text,
                ]
            )
    lines += ["Per variant and task:", ""]
    header = ["variant", "task", "successes/trials", "rate", "95% CI", "mean length",
              "failures by furthest stage", "safety events"]  # fmt: skip
    lines += _table(header, rows)
    lines += ["Failures by furthest stage: how far each failed episode got, e.g. `reached` = the TCP came to the "
              "object but never lifted it (`none`: it never got there).", ""]  # fmt: skip
    lines += _errors_lines(closed_loop)
    return [*lines, "![Success per variant](success_per_variant.png)", ""]


def _errors_lines(closed_loop: Mapping[str, Any]) -> list[str]:
    """Episodes a policy error ended (counted as failures), per variant and task, with the reasons."""
    rows = [[variant, task, str(entry["errors"]), "; ".join(f"{reason} ({count})" for reason, count in
                                                            (entry.get("error_reasons") or {}).items())]
            for variant, tasks in closed_loop.items() for task, entry in tasks.items()
            if entry.get("errors")]  # fmt: skip
    if not rows:
        return []
    return ["Episodes ended by a policy error (counted as failures):", "",
            *_table(["variant", "task", "errors", "reasons"], rows)]  # fmt: skip


def _reference_section(metrics: Mapping[str, Any]) -> list[str]:
    references = metrics.get("reference_rows") or {}
    closed_loop = metrics["closed_loop"]
    if not references:
        return []
    variants = list(closed_loop)
    for row in references.values():
        variants += [v for v in row if v not in variants]
    name = metrics["policy"]["name"]
    rows = [
        [f"**{name}** (this run)", *[_num(_pooled(closed_loop[v]).rate) if v in closed_loop else "–" for v in variants]]
    ]
    rows += [[ref, *[_num(row.get(v)) for v in variants]] for ref, row in references.items()]
    return [
        "## Reference rows",
        "",
        "Success rate per variant (all tasks pooled):",
        "",
        *_table(["policy", *variants], rows),
    ]


def _factor_section(metrics: Mapping[str, Any]) -> list[str]:
    factors = metrics.get("factors") or {}
    if not any(factors.values()):
        return []
    lines = ["## Success per randomisation factor", ""]
    for name, bins in factors.items():
        if not bins:
            continue
        rows = []
        for k, item in enumerate(bins):
            closing = "]" if k == len(bins) - 1 else ")"  # bins are [low, high), the last one closed
            label = item["value"] if "value" in item else f"[{_num(item['low'])}, {_num(item['high'])}{closing}"
            rows.append([label, f"{item['successes']}/{item['trials']}", _num(item["rate"]), _ci(item["ci95"])])
        lines += [f"### {name}", "", *_table(["bin", "successes/trials", "rate", "95% CI"], rows)]
    return [*lines, "![Success per factor](factors.png)", ""]


def _replay_section(metrics: Mapping[str, Any], has_action_plot: bool) -> list[str]:
    replay = metrics.get("replay")
    if not replay:
        return []
    lines = ["## Real-robot replay", "", *_replay_overview(replay)]
    open_loop = replay.get("open_loop")
    if open_loop:
        real, sim, gap = (open_loop.get(k) or {} for k in ("real", "sim", "gap"))
        lines += ["### Open-loop action error (gap = sim − real)", ""]
        names = list(real.get("names") or sim.get("names") or gap.get("names") or [])
        per_dim = [k for k in ("normalized_l1", "normalized_mse", "mse") if k in real or k in sim]
        if names and per_dim:
            header = ["dimension"]
            for key in per_dim:
                header += [f"{key} real", f"{key} sim", f"{key} gap"]
            rows = []
            for i, dim in enumerate(names):
                row: list[Any] = [dim]
                for key in per_dim:
                    for side in (real, sim, gap):
                        values = side.get(key)
                        row.append(_num(values[i], 4) if values is not None and i < len(values) else "–")
                rows.append(row)
            lines += _table(header, rows)
        scalar_keys = [
            k
            for k in dict.fromkeys([*real, *sim])
            if k not in ("names", *per_dim) and not isinstance(real.get(k, sim.get(k)), (list, dict))
        ]
        if scalar_keys:
            rows = [[k, _num(real.get(k), 4), _num(sim.get(k), 4), _num(gap.get(k), 4)] for k in scalar_keys]
            lines += _table(["metric", "real", "sim", "gap"], rows)
        if has_action_plot:
            lines += ["![Action errors, real vs sim](action_errors.png)", ""]
    visual = replay.get("visual_gap")
    skipped = replay.get("skipped") or {}
    if visual:
        lines += ["### Visual gap (Fréchet distance of encoder features, real vs sim)", ""]
        rows = [[cam, _num(v, 4) if v is not None else f"missing: {skipped.get(f'visual_gap.{cam}', 'not measured')}"]
                for cam, v in visual.items()]  # fmt: skip
        lines += _table(["camera", "Fréchet distance"], rows)
    lines += _image_stats_section(replay.get("image_stats"), skipped)
    dynamics = replay.get("dynamics")
    if dynamics:
        lines += _dynamics_section(dynamics)
    return lines


def _replay_overview(replay: Mapping[str, Any]) -> list[str]:
    """What the set is, and which metrics were skipped and why."""
    lines: list[str] = []
    kind = replay.get("embodiment")
    if isinstance(kind, Mapping):
        spaces = ", ".join(f"{k} ({v})" for k, v in (kind.get("action_spaces") or {}).items())
        dims = ", ".join(f"{k}-D ({v})" for k, v in (kind.get("action_dims") or {}).items())
        rates = ", ".join(_num(v, 3) for v in kind.get("control_hz") or [])
        lines += [
            f"Set `{replay.get('path', '?')}`: {replay.get('episodes', '?')} episodes; robot "
            f"{', '.join(kind.get('robots') or ['unknown'])}; actions {spaces} [{dims}]; cameras "
            f"{', '.join(kind.get('cameras') or []) or 'none'}; control rate {rates} Hz; joint positions recorded in "
            f"{kind.get('joint_positions', 0)} episodes, EE positions in {kind.get('ee_positions', 0)}.",
            "",
        ]
    skipped = replay.get("skipped") or {}
    if skipped:
        by_reason: dict[str, list[str]] = {}
        for key, reason in skipped.items():
            by_reason.setdefault(reason, []).append(key)
        items = [f"- {' and '.join(keys)} skipped: {reason}" for reason, keys in by_reason.items()]
        lines += ["Not measured:", "", *items, ""]
    notes = replay.get("notes") or []
    if notes:
        lines += ["Notes:", "", *[f"- {note}" for note in notes], ""]
    return lines


def _image_stats_section(stats: Any, skipped: Mapping[str, str]) -> list[str]:
    """Per camera: brightness, contrast and colour of real vs sim frames."""
    if not isinstance(stats, Mapping) or not stats:
        return []
    rows = []
    for camera, entry in stats.items():
        if entry is None:
            reason = skipped.get(f"image_stats.{camera}", "a side has no frames of this camera")
            rows.append([camera, f"missing: {reason}", "", "", "", ""])
            continue
        real, sim = entry["real"], entry["sim"]
        gap = ", ".join(f"{v:+.3f}" for v in entry.get("mean_rgb_gap") or [])
        rows.append([camera, f"{real.get('frames')} / {sim.get('frames')}",
                     f"{_num(real.get('brightness'))} / {_num(sim.get('brightness'))}",
                     f"{_num(real.get('contrast'))} / {_num(sim.get('contrast'))}", gap,
                     _num(entry.get("frechet_colour"), 4)])  # fmt: skip
    header = ["camera", "frames real / sim", "brightness real / sim", "contrast real / sim",
              "mean RGB gap (sim − real)", "Fréchet distance of colour moments"]  # fmt: skip
    return ["### Image statistics (encoder-free, real vs sim)", "", *_table(header, rows)]


def _mm(value: Any) -> str:
    return "–" if value is None else f"{value * 1000:.2f}"


def _dynamics_section(dynamics: Mapping[str, Any]) -> list[str]:
    """Errors (overall, per axis, per episode), starts, clips and workspace departures."""
    lines = ["### Dynamics replay (recorded actions executed in sim vs recorded EE trajectory)", ""]
    if dynamics.get("starts") or dynamics.get("control_hz"):
        starts = ", ".join(f"{k} ({v})" for k, v in (dynamics.get("starts") or {}).items())
        frames = ", ".join(f"{k} ({v})" for k, v in (dynamics.get("frames") or {}).items())
        rates = ", ".join(_num(v) for v in dynamics.get("control_hz") or [])
        physics = ", ".join(_num(v) for v in dynamics.get("physics_hz") or [])
        lines += [f"Starts: {starts}; errors compared {frames}; control rate {rates} Hz (physics {physics} Hz).", ""]
    scalars = [[k, _num(v, 4)] for k, v in dynamics.items() if v is None or isinstance(v, (int, float))]
    lines += _table(["metric", "value"], scalars)
    axes = [
        k for k in ("mean_abs_position_error_m", "max_abs_position_error_m") if isinstance(dynamics.get(k), Mapping)
    ]
    if axes:
        rotation = dynamics.get("mean_abs_rotation_error_rad")
        rows = [[axis, *[_mm(dynamics[k][axis]) for k in axes],
                 _num(rotation[axis], 4) if isinstance(rotation, Mapping) else "–"]
                for axis in ("x", "y", "z")]  # fmt: skip
        header = ["axis", *[f"{k.split('_abs')[0]} |error| (mm)" for k in axes], "mean |rotation error| (rad)"]
        lines += _table(header, rows)
    clips = dynamics.get("clips")
    if isinstance(clips, Mapping):
        total = clips.get("total") or {}
        lines += [f"Controller clips ({clips.get('episodes_with_clips', 0)} of {dynamics.get('n_episodes', '?')} "
                  "episodes clipped):", "", *_table(["reason", "clips"], list(total.items()))]  # fmt: skip
    ws = dynamics.get("workspace")
    if isinstance(ws, Mapping):
        if ws.get("steps_outside"):
            sides = ", ".join(f"{k} {v}" for k, v in (ws.get("outside_by_side") or {}).items())
            lines += [f"**The recorded trajectory leaves the simulated workspace** at {ws['steps_outside']} of "
                      f"{ws['steps']} steps ({ws['fraction_steps_outside']:.1%}), in {ws['episodes_leaving']} episodes "
                      f"({ws['fraction_episodes_leaving']:.1%}); steps by side: {sides}.", ""]  # fmt: skip
        else:
            lines += [f"The recorded trajectories stay inside the simulated workspace ({ws.get('steps')} steps).", ""]
    episodes = dynamics.get("episodes")
    if isinstance(episodes, list) and episodes:
        rows = [[e.get("episode_id"), e.get("start"), _mm(e.get("mean_position_error_m")),
                 _mm(e.get("max_position_error_m")), _num(e.get("mean_orientation_error_rad"), 4),
                 ", ".join(f"{k} {v}" for k, v in (e.get("clips") or {}).items() if v) or "none",
                 e.get("steps_outside_workspace", "–"), e.get("start_note") or ""]
                for e in episodes[:50]]  # fmt: skip
        header = ["episode", "start", "mean pos. error (mm)", "max pos. error (mm)", "mean orient. error (rad)",
                  "clips", "steps outside workspace", "start note"]  # fmt: skip
        lines += ["Per episode" + (" (first 50)" if len(episodes) > 50 else "") + ":", "", *_table(header, rows)]
    skipped = dynamics.get("skipped_episodes") or {}
    if skipped:
        lines += ["Episodes left out:", "", *[f"- {k}: {v}" for k, v in skipped.items()], ""]
    return lines


def _ranking_section(metrics: Mapping[str, Any]) -> list[str]:
    ranking = metrics.get("ranking")
    if not ranking:
        return []
    lines = ["## Ranking agreement, sim vs real", ""]
    rows = [
        ["Pearson r", _num(ranking.get("pearson")), _ci(ranking.get("pearson_ci95"))],
        ["MMRV (lower is better)", _num(ranking.get("mmrv")), _ci(ranking.get("mmrv_ci95"))],
    ]
    lines += _table(["metric", "value", "bootstrap 95% CI"], rows)
    notes = [
        f"- {label}: {ranking[f'{key}_reason']}"
        for key, label in (("pearson", "Pearson r"), ("pearson_ci95", "Pearson CI"), ("mmrv_ci95", "MMRV CI"))
        if ranking.get(key) is None and ranking.get(f"{key}_reason")
    ]
    bootstrap = ranking.get("bootstrap")
    if isinstance(bootstrap, Mapping) and _is_int(bootstrap.get("resamples")):
        notes.append(
            f"- Bootstrap: {bootstrap['resamples']} resamples of the policies; skipped for Pearson "
            f"(fewer than two distinct sim or real rates): {bootstrap.get('pearson_skipped', '–')}, "
            f"for MMRV: {bootstrap.get('mmrv_skipped', '–')}"
        )
    if notes:
        lines += [*notes, ""]
    policies, sim, real = ranking.get("policies"), ranking.get("sim"), ranking.get("real")
    if policies and sim and real and len(policies) == len(sim) == len(real):
        lines += _table(
            ["policy", "sim success", "real success"],
            [[p, _num(s), _num(r)] for p, s, r in zip(policies, sim, real, strict=True)],
        )
    return lines


def _media_section(
    videos: Mapping[str, Path] | None, attention_png: Path | None, output_dir: Path, has_embedding: bool
) -> list[str]:
    lines: list[str] = []
    if has_embedding:
        lines += ["## Encoder features", "", "![Feature embedding](feature_embedding.png)", ""]
    if attention_png is not None:
        lines += ["## Attention", "", f"![Attention]({_link(attention_png, output_dir)})", ""]
    if videos:
        lines += ["## Videos", ""]
        for name, video in videos.items():
            target = _link(video, output_dir)
            if Path(video).suffix.lower() in (".gif", ".png", ".jpg", ".jpeg", ".webp"):
                lines += [f"**{name}**", "", f"![{name}]({target})", ""]
            else:
                lines += [f"- [{name}]({target})"]
        lines += [""]
    return lines


def _markdown(
    metrics: Mapping[str, Any],
    output_dir: Path,
    videos: Mapping[str, Path] | None,
    attention_png: Path | None,
    written: Mapping[str, Path],
) -> str:
    policy, seeds = metrics["policy"], metrics["seeds"]
    lines = [
        f"# Evaluation report: {policy['name']}",
        "",
        f"- checkpoint: `{policy.get('checkpoint')}`",
        f"- created: {metrics['created']}",
        f"- base seed: {seeds['base_seed']}; episodes per variant: {seeds['episodes_per_variant']}",
        f"- metrics: [metrics.json](metrics.json) (schema version {metrics['schema_version']})",
        "",
    ]
    lines += _closed_loop_section(metrics)
    lines += _reference_section(metrics)
    lines += _factor_section(metrics)
    lines += _replay_section(metrics, "action_errors_png" in written)
    lines += _ranking_section(metrics)
    lines += _media_section(videos, attention_png, output_dir, "feature_embedding_png" in written)
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def write_report(
    metrics: Mapping[str, Any],
    output_dir: Path | str,
    videos: Mapping[str, Path] | None = None,
    attention_png: Path | None = None,
    features: Mapping[str, ArrayLike] | None = None,
) -> dict[str, Path]:
    """Validate ``metrics`` and write metrics.json, report.md and the PNG plots into ``output_dir``.

    Args:
        metrics: a dict following the schema in this module's docstring (numpy scalars and
            arrays are accepted and converted; NaN/inf become ``null``).
        output_dir: folder to write into (created if needed).
        videos: name -> path of episode videos (GIFs are embedded, other files linked),
            linked relative to ``output_dir``.
        attention_png: an attention-map image to embed, or None.
        features: name -> encoder features of shape (N, D), e.g. ``{"real": ..., "sim": ...}``;
            plotted as a 2-D PCA embedding in ``feature_embedding.png``.

    Returns:
        Name -> path of every file written: ``metrics_json``, ``report_md``,
        ``success_per_variant_png`` and, when their inputs exist, ``factors_png``,
        ``action_errors_png``, ``feature_embedding_png``.

    Raises:
        MetricsValidationError: ``metrics`` does not follow the schema (nothing is written).
    """
    clean = _jsonable(metrics)
    _fill_ranking_reasons(clean)
    validate_metrics(clean)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(clean, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    written["metrics_json"] = metrics_path

    _plot_success_per_variant(clean["closed_loop"], out / "success_per_variant.png")
    written["success_per_variant_png"] = out / "success_per_variant.png"
    if any(clean["factors"].values()):
        _plot_factors(clean["factors"], out / "factors.png")
        written["factors_png"] = out / "factors.png"
    open_loop = (clean.get("replay") or {}).get("open_loop")
    if open_loop and any(
        (open_loop.get(side) or {}).get(key) for side in ("real", "sim") for key in ("normalized_l1", "normalized_mse")
    ):
        _plot_action_errors(open_loop, out / "action_errors.png")
        written["action_errors_png"] = out / "action_errors.png"
    if features:
        _plot_feature_embedding(features, out / "feature_embedding.png")
        written["feature_embedding_png"] = out / "feature_embedding.png"

    report_path = out / "report.md"
    report_path.write_text(_markdown(clean, out, videos, attention_png, written), encoding="utf-8")
    written["report_md"] = report_path
    return written
