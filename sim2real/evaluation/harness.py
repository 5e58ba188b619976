"""The evaluation run behind ``evaluate.py``: closed-loop rollouts, reference rows, per-factor
breakdown, rollout videos, attention map, real-robot replay and ranking agreement, assembled
into ``metrics.json`` + ``report.md`` + plots."""

from __future__ import annotations

import csv
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.errors import UsageError
from sim2real.evaluation.closed_loop import NO_MILESTONE, EpisodeResult, evaluate_closed_loop
from sim2real.evaluation.metrics import (
    RankingInputError,
    categorical_breakdown,
    factor_breakdown,
    ranking_agreement,
)
from sim2real.evaluation.policies import PolicyConfig, is_trained_policy
from sim2real.evaluation.replay import FOREIGN_STARTS
from sim2real.evaluation.report import closed_loop_entry, new_metrics, write_report, write_video
from sim2real.randomizers import VARIANTS
from sim2real.randomizers.factors import CATEGORICAL
from sim2real.sim.tasks import TASK_NAMES, TASKS


class EvaluationError(UsageError, ValueError):
    """An evaluation request that cannot run; raised before any rollout."""


@dataclass
class ReplayConfig:
    """``replay.*``: the real-robot replay set."""

    path: str | None = None  # a real-robot dataset: RLDS folder, Zarr, HDF5 (any readable format)
    mapping: str | None = None  # RLDS mapping name, e.g. bridge
    episodes: int = 25
    foreign_start: str = FOREIGN_STARTS[0]  # another robot's dynamics replay starts: workspace_fit | recorded_ee


@dataclass
class RankingConfig:
    """``ranking.*``: sim-vs-real ranking agreement."""

    real_success_csv: str | None = None  # CSV: policy,real_success[,metrics_json]


@dataclass
class EvaluationConfig:
    """``evaluate.py``'s settings, by their command-line keys; ``tasks`` defaults to every registered task."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    # in_distribution, textures, lighting, camera, distractors, objects, instructions
    variants: list[str] = field(default_factory=lambda: ["in_distribution"])
    tasks: list[str] = field(default_factory=lambda: list(TASK_NAMES))
    episodes_per_variant: int = 20  # per task and variant
    workers: int = 1
    seed: int = 1000  # evaluation scenes: seeds apart from generation's
    randomization: Any = "default"  # a preset name or a preset's data (randomization=<preset>)
    backend: str = "mujoco"  # mujoco | isaac (docs/isaac.md)
    backend_options: dict[str, Any] = field(default_factory=dict)  # the backend's own settings (its options class)
    output_dir: str = "eval/run"
    reference_rows: bool = True  # the expert and a random policy on the same seeds
    videos: int = 4
    progress: bool = True
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    ranking: RankingConfig = field(default_factory=RankingConfig)


def validate(config: EvaluationConfig) -> None:
    """Check names, paths and layouts before any rollout starts."""
    from sim2real.evaluation.policies import check_rollout_policy
    from sim2real.randomizers import resolve_randomization

    trained = is_trained_policy(config.policy.name)
    for variant in config.variants:
        if variant not in VARIANTS:
            raise EvaluationError(f"unknown variant {variant!r}; known variants: {list(VARIANTS)}")
    for task in config.tasks:
        TASKS.get(task)
    resolve_randomization(config.randomization)
    from sim2real.sim.backend import parse_backend_options

    parse_backend_options(config.backend, config.backend_options)  # unknown backend, key or value: one line
    if config.backend == "isaac":
        from sim2real.sim.isaac.app import require_isaacsim

        require_isaacsim()  # fails at once, with the install steps
    if config.episodes_per_variant < 1 or config.workers < 1:
        raise EvaluationError("episodes_per_variant and workers must be >= 1")
    if trained:
        _check_checkpoint(config)
    check_rollout_policy(
        config.policy.name, config.policy.rollout_options(), config.tasks[0], config.seed, config.randomization
    )  # python / remote: import, methods, server, metadata, one action
    if config.replay.foreign_start not in FOREIGN_STARTS:
        raise EvaluationError(
            f"replay.foreign_start={config.replay.foreign_start!r}: expected one of {', '.join(FOREIGN_STARTS)}"
        )
    if config.ranking.real_success_csv and not Path(config.ranking.real_success_csv).is_file():
        raise EvaluationError(f"ranking.real_success_csv: no such file {config.ranking.real_success_csv}")


def _check_checkpoint(config: EvaluationConfig) -> None:
    """The checkpoint loads whole (weights included), is of the policy type evaluated, acts in the
    env's 7-D layout, and fits the action-selection options; a file that does not load is named
    before any rollout."""
    checkpoint = config.policy.checkpoint
    if not checkpoint:
        raise EvaluationError(f"policy={config.policy.name} needs policy.checkpoint=<checkpoint folder>")
    if not Path(checkpoint).exists():
        raise EvaluationError(f"policy.checkpoint={checkpoint}: no such checkpoint folder")
    from sim2real.policies.checkpoint import load_checkpoint
    from sim2real.policies.inference import check_action_selection

    loaded = load_checkpoint(checkpoint, expected_action_dim=7)
    if loaded.policy != config.policy.name:
        raise EvaluationError(f"policy.checkpoint={checkpoint}: a {loaded.policy} checkpoint; evaluate it with "
                              f"policy={loaded.policy}")  # fmt: skip
    try:
        selection = config.policy
        check_action_selection(loaded.config.chunk, selection.execute_steps, selection.temporal_ensemble,
                               selection.decoding, "policy.", decodings=loaded.model.decodings)  # fmt: skip
    except ValueError as error:
        raise EvaluationError(str(error)) from error


def _closed_loop_block(results: list[EpisodeResult]) -> dict[str, Any]:
    grouped: dict[str, dict[str, list[EpisodeResult]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        grouped[r.variant][r.task].append(r)
    block: dict[str, Any] = {}
    for variant, tasks in grouped.items():
        block[variant] = {}
        for task, episodes in tasks.items():
            safety: dict[str, int] = defaultdict(int)
            for episode in episodes:
                for name, count in episode.safety.items():
                    safety[name] += count
            order = (NO_MILESTONE, *TASKS.get(task).milestones, "success")
            block[variant][task] = closed_loop_entry([e.success for e in episodes], [e.length for e in episodes],
                                                     dict(safety), stages=[e.stage for e in episodes],
                                                     stage_order=order, errors=[e.error for e in episodes])  # fmt: skip
    return block


def _factor_block(results: list[EpisodeResult]) -> dict[str, Any]:
    successes = np.array([r.success for r in results])
    factors: dict[str, Any] = {}
    for name in results[0].factors:
        values = [r.factors[name] for r in results]
        if name in CATEGORICAL:
            factors[name] = [
                {"value": value, **rate.to_dict()} for value, rate in categorical_breakdown(values, successes)
            ]
        elif len(set(values)) > 1:
            factors[name] = [b.to_dict() for b in factor_breakdown(np.asarray(values, float), successes)]
    return factors


def _videos(results: list[EpisodeResult], out: Path, count: int) -> dict[str, Path]:
    recorded = [r for r in results if r.frames]
    picks = [r for r in recorded if r.success][: (count + 1) // 2] + [r for r in recorded if not r.success][
        : count // 2
    ]
    videos = {}
    for r in picks:
        name = f"{'success' if r.success else 'failure'}_{r.variant}_{r.task}_{r.episode}"
        paths = write_video(r.frames, out / "videos" / f"{name}.gif", fps=10)
        stage = "" if r.success else f" (furthest stage: {r.stage})"
        videos[f"{name} — {r.instruction}{stage}"] = paths[0]
    return videos


def _attention(config: EvaluationConfig, out: Path) -> Path | None:
    """Where the policy looks for one instruction: TokenLearner maps over the first scene."""
    if not is_trained_policy(config.policy.name):
        return None
    import torch
    from PIL import Image

    from sim2real.envs import Sim2RealEnv
    from sim2real.evaluation.closed_loop import scene_seed
    from sim2real.policies import load_policy
    from sim2real.randomizers import resolve_randomization, sample_scene

    policy = load_policy(config.policy.checkpoint)
    task = config.tasks[0]
    preset = resolve_randomization(config.randomization)
    env = Sim2RealEnv(task, randomization=preset)
    try:
        scene = sample_scene(task, scene_seed(config.seed, "in_distribution", task, 0), preset)
        observation, _ = env.reset(options={"scene": scene})
    finally:
        env.close()
    images = {c: torch.from_numpy(observation["image"][c][None]) for c in policy.config.cameras}
    maps = policy.attention_maps(images, scene.instruction)
    if maps is None:  # a policy type without attention maps
        return None
    tiles = []
    for camera in policy.config.cameras:
        heat = maps[camera][0].sum(dim=0).cpu().numpy()
        heat = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-9)
        image = observation["image"][camera].astype(float)
        overlay = 0.55 * image + 0.45 * np.stack([255 * heat, 40 * np.ones_like(heat), 255 * (1 - heat)], -1)
        tiles.append(np.concatenate([observation["image"][camera], overlay.clip(0, 255).astype(np.uint8)], axis=1))
    path = out / "attention.png"
    Image.fromarray(np.concatenate(tiles, axis=0)).resize((512, 256 * len(tiles))).save(path)
    (out / "attention.txt").write_text(scene.instruction + "\n")
    return path


def _ranking(config: EvaluationConfig, metrics: dict[str, Any]) -> dict[str, Any] | None:
    """CSV rows ``policy,real_success[,metrics_json]``: sim rate from that policy's metrics.json
    (in-distribution mean over tasks), or from this run for the evaluated policy."""
    csv_path = config.ranking.real_success_csv
    if not csv_path:
        return None
    names, sim, real = [], [], []
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            if "policy" not in row or "real_success" not in row:
                raise EvaluationError(f"{csv_path}: expected columns policy,real_success[,metrics_json]")
            source = metrics if not row.get("metrics_json") else json.loads(Path(row["metrics_json"]).read_text())
            rates = [t["rate"] for t in source["closed_loop"]["in_distribution"].values()]
            names.append(row["policy"])
            sim.append(float(np.mean(rates)))
            try:
                real.append(float(row["real_success"]))
            except (TypeError, ValueError):
                raise EvaluationError(
                    f"{csv_path}: real_success of policy {row['policy']!r} is "
                    f"{row['real_success']!r}; expected a fraction in [0, 1]"
                ) from None
    try:
        block = ranking_agreement(np.array(sim), np.array(real), policies=names)
    except RankingInputError as error:  # a NaN, infinite or out-of-range rate; the message names the policy
        raise EvaluationError(f"{csv_path}: {error}") from error
    block.update(policies=names, sim=sim, real=real)
    return block


def run_evaluation(config: EvaluationConfig) -> Path:
    """Run everything and write the report; return the report folder."""
    validate(config)
    replay_set = None
    if config.replay.path:
        from sim2real.evaluation.replay import load_replay_set

        replay_set = load_replay_set(config.replay.path, config.replay.mapping, config.replay.episodes)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = config.policy.rollout_options()
    trained = is_trained_policy(config.policy.name)
    if trained and config.workers > 1:  # one torch thread per worker process: no oversubscription
        options["num_threads"] = 1
    start = time.perf_counter()
    results = evaluate_closed_loop(config.policy.name, options, list(config.variants), list(config.tasks),
                                   config.episodes_per_variant, config.seed, config.randomization, config.workers,
                                   config.videos, config.progress, config.backend,
                                   config.backend_options)  # fmt: skip
    rollout_seconds = time.perf_counter() - start
    metrics = new_metrics(config.policy.name, config.policy.checkpoint, config.seed, config.episodes_per_variant)
    metrics["closed_loop"] = _closed_loop_block(results)
    metrics["factors"] = _factor_block(results)
    metrics["timing"] = {"rollout_seconds": rollout_seconds, "episodes": len(results),
                         "steps_per_second": sum(r.length for r in results) / rollout_seconds}  # fmt: skip
    if config.reference_rows:
        for name in ("expert", "random"):
            if name == config.policy.name:
                continue
            reference = evaluate_closed_loop(name, {}, ["in_distribution"], list(config.tasks),
                                             config.episodes_per_variant, config.seed, config.randomization,
                                             config.workers, 0, config.progress, config.backend,
                                             config.backend_options)  # fmt: skip
            metrics["reference_rows"][name] = {
                "in_distribution": float(np.mean([r.success for r in reference])),
                **{f"in_distribution/{t}": float(np.mean([r.success for r in reference if r.task == t]))
                   for t in config.tasks},
            }  # fmt: skip
    features = None
    if replay_set is not None and trained:
        from sim2real.evaluation.replay import replay_metrics
        from sim2real.policies import load_policy

        policy = load_policy(config.policy.checkpoint)
        sim_episodes = _held_out_sim_episodes(config, count=min(len(replay_set.episodes), 10))
        metrics["replay"], embedding = replay_metrics(
            policy, replay_set, sim_episodes, config.backend, config.backend_options,
            foreign_start=config.replay.foreign_start,
        )  # fmt: skip
        camera = policy.cameras[0]
        if camera in embedding:  # a policy type with per-camera encoder features
            features = {"real": embedding[camera][0], "sim": embedding[camera][1]}
    elif replay_set is not None:  # no encoder: dynamics replay and image statistics
        from sim2real.evaluation.replay import replay_metrics

        sim_episodes = _held_out_sim_episodes(config, count=min(len(replay_set.episodes), 4))
        metrics["replay"], _ = replay_metrics(None, replay_set, sim_episodes, config.backend, config.backend_options,
                                              foreign_start=config.replay.foreign_start)  # fmt: skip
    metrics["ranking"] = _ranking(config, metrics)
    videos = _videos(results, out, config.videos)
    attention = _attention(config, out)
    report_start = time.perf_counter()
    write_report(metrics, out, videos=videos, attention_png=attention, features=features)
    metrics["timing"]["report_seconds"] = time.perf_counter() - report_start
    (out / "timing.json").write_text(json.dumps(metrics["timing"], indent=1))
    return out


def _held_out_sim_episodes(config: EvaluationConfig, count: int) -> list[Any]:
    """Expert episodes on held-out (evaluation-seed) scenes, for the sim side of the replay metrics."""
    from sim2real.contracts.seeds import derived_seed
    from sim2real.envs import Sim2RealEnv
    from sim2real.evaluation.closed_loop import scene_seed
    from sim2real.randomizers import resolve_randomization, sample_scene
    from sim2real.rollout import record_expert_episode

    episodes = []
    preset = resolve_randomization(config.randomization)
    for index in range(count):
        task = config.tasks[index % len(config.tasks)]
        env = Sim2RealEnv(task)
        try:
            scene = sample_scene(task, scene_seed(config.seed + 1, "in_distribution", task, index), preset)
            episodes.append(record_expert_episode(env, scene, derived_seed(config.seed, index), 0.0, index, 1).episode)
        finally:
            env.close()
    return episodes
