"""The report's markdown: tables of the metrics document, its figures and media, linked relative
to the report folder."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sim2real.evaluation.document import pooled_success

__all__ = ["markdown_report"]


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


def _closed_loop_section(metrics: Mapping[str, Any]) -> list[str]:
    closed_loop = metrics["closed_loop"]
    lines = ["## Closed-loop success", ""]
    if not closed_loop:
        return [*lines, "No closed-loop episodes.", ""]
    pooled_rows = []
    for variant, tasks in closed_loop.items():
        pooled = pooled_success(tasks)
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
        [
            f"**{name}** (this run)",
            *[_num(pooled_success(closed_loop[v]).rate) if v in closed_loop else "–" for v in variants],
        ]
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
    if isinstance(bootstrap, Mapping) and isinstance(bootstrap.get("resamples"), int):
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


def markdown_report(
    metrics: Mapping[str, Any],
    output_dir: Path,
    videos: Mapping[str, Path] | None,
    attention_png: Path | None,
    written: Mapping[str, Path],
) -> str:
    """``report.md`` for the plain metrics data
    (:meth:`~sim2real.evaluation.document.MetricsDocument.to_dict`): closed loop, reference rows,
    factors, replay, ranking and media sections; ``written`` names the figures drawn
    (``factors_png``, ``action_errors_png``, ``feature_embedding_png`` ...) to embed."""
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
