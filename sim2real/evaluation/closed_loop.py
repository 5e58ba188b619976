"""Closed-loop evaluation: roll a policy out over scene variants on fixed seeds, with the
safety guardrails a real deployment has, in parallel worker processes.

Episode ``j`` of task ``t`` in variant ``v`` uses scene seed
``derived_seed(seed, name_key(v), name_key(t), j)`` (:mod:`sim2real.contracts.seeds`), so every
policy meets the same scenes, and a task's scenes stay the same whichever other tasks and
variants exist. Guardrails: the controller clips joint limits, joint velocity, workspace and
per-step deltas (counted); the episode stops, as a failure, when the robot presses on the table
(``max_table_force``, N) or any contact force on the robot exceeds ``max_contact_force`` (N). A
policy that fails during an episode (``PolicyEpisodeError``: a server error, a lost connection, a
late reply) ends that episode as a failure with its ``error``.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim2real.contracts.seeds import derived_seed, name_key
from sim2real.evaluation.policies import is_trained_policy
from sim2real.randomizers import VARIANTS, resolve_randomization, sample_scene
from sim2real.randomizers.factors import scene_factors

VARIANT_ORDER = tuple(VARIANTS)
#: the stage of an episode that reached none of its task's milestones
NO_MILESTONE = "none"


@dataclass(frozen=True)
class EvalJob:
    """One worker's share: (variant, task, episode) triples with the options to run them."""

    policy: str
    policy_options: dict[str, Any]
    randomization: str | dict[str, Any]
    seed: int
    episodes: tuple[tuple[str, str, int], ...]
    record_video: tuple[tuple[str, str, int], ...] = ()
    max_contact_force: float = 60.0
    max_table_force: float = 10.0
    cameras: tuple[str, ...] = ("front", "wrist")
    backend: str = "mujoco"
    backend_options: dict[str, Any] = field(default_factory=dict)  # checked by the backend's options class


@dataclass
class EpisodeResult:
    variant: str
    task: str
    episode: int
    seed: int
    instruction: str
    success: bool
    length: int
    safety: dict[str, int]
    factors: dict[str, float | str]
    frames: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0
    stage: str = NO_MILESTONE  # "success", else the furthest of the task's milestones reached
    error: str | None = None  # why the policy failed during the episode (a failure), else None


def guardrail_stop(state: Any, max_table_force: float, max_contact_force: float) -> str | None:
    """Why a real cell's safety stop would end the episode now, or None.

    ``state`` has ``robot_table_force`` and ``robot_contact_force`` (N, the largest contact
    normal force on the robot from the table, and from anything); a force above its limit (N)
    stops the episode as a failure: ``table_collision`` or ``excess_contact_force``."""
    if state.robot_table_force > max_table_force:
        return "table_collision"
    if state.robot_contact_force > max_contact_force:
        return "excess_contact_force"
    return None


def episode_stage(success: bool, milestones: tuple[str, ...], reached: int) -> str:
    """``success``, else the name of the furthest milestone reached (``reached`` of them), else
    :data:`NO_MILESTONE`."""
    if success:
        return "success"
    return milestones[reached - 1] if reached else NO_MILESTONE


def scene_seed(base_seed: int, variant: str, task: str, episode: int) -> int:
    """Scene seed of episode ``episode`` of ``task`` in ``variant``: keyed by the names, so it does
    not depend on which other tasks or variants are registered."""
    return derived_seed(base_seed, name_key(variant), name_key(task), episode)


def _run_job(job: EvalJob) -> list[EpisodeResult]:
    import time

    from sim2real.envs import Sim2RealEnv
    from sim2real.evaluation.policies import PolicyEpisodeError, make_rollout_policy
    from sim2real.sim.backend import BackendConfig, make_backend

    config = resolve_randomization(job.randomization)
    backend = make_backend(job.backend, BackendConfig(options=dict(job.backend_options)))
    policy = make_rollout_policy(job.policy, seed=job.seed, **job.policy_options)
    envs: dict[str, Sim2RealEnv] = {}
    results = []
    try:
        for variant, task, episode in job.episodes:
            start = time.perf_counter()
            env = envs.setdefault(task, Sim2RealEnv(task, backend, cameras=job.cameras))
            seed = scene_seed(job.seed, variant, task, episode)
            scene = sample_scene(task, seed, config, VARIANTS[variant])
            observation, info = env.reset(options={"scene": scene})
            initial = backend.privileged_state()
            record = (variant, task, episode) in job.record_video
            frames = [observation["image"][job.cameras[0]]] if record else []
            safety: dict[str, int] = {}
            success, length, reached, error = False, 0, 0, None
            try:
                policy.reset(env)
                for length in range(1, env.max_steps + 1):  # noqa: B007
                    observation, _, terminated, truncated, info = env.step(policy.act(observation, scene.instruction))
                    if record:
                        frames.append(observation["image"][job.cameras[0]])
                    state = backend.privileged_state()
                    reached = max(reached, env.task.milestones_reached(state, scene, initial))
                    stop = guardrail_stop(state, job.max_table_force, job.max_contact_force)
                    if stop is not None:
                        safety[stop] = 1
                        break
                    if terminated or truncated:
                        success = bool(info["success"])
                        break
            except PolicyEpisodeError as failure:  # the episode fails; the error is counted
                error = str(failure)
            for reason, count in backend.clip_counts.items():
                safety[f"clip_{reason}"] = int(count)
            stage = episode_stage(success, env.task.milestones, reached)
            results.append(EpisodeResult(variant, task, episode, seed, scene.instruction, success, length, safety,
                                         scene_factors(scene), frames, time.perf_counter() - start, stage,
                                         error))  # fmt: skip
    finally:
        getattr(policy, "close", lambda: None)()
        backend.close()
    return results


def evaluate_closed_loop(
    policy: str,
    policy_options: dict[str, Any],
    variants: list[str],
    tasks: list[str],
    episodes_per_variant: int,
    seed: int = 0,
    randomization: str | dict[str, Any] = "default",
    workers: int = 1,
    videos_per_variant: int = 4,
    progress: bool = True,
    backend: str = "mujoco",
    backend_options: dict[str, Any] | None = None,
) -> list[EpisodeResult]:
    """Run every (variant, task, episode) on ``backend`` (with its ``backend_options``) and return the
    results in a fixed order."""
    for variant in variants:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; known variants: {list(VARIANTS)}")
    resolve_randomization(randomization)
    triples = [(v, t, e) for v in variants for t in tasks for e in range(episodes_per_variant)]
    video = tuple(
        (v, t, e) for v in variants for t in tasks for e in range(min(videos_per_variant, episodes_per_variant))
    )
    chunks = [tuple(triples[i::workers]) for i in range(workers)] if workers > 1 else [tuple(triples)]
    if workers > 1 and is_trained_policy(policy):  # one torch thread per worker process: no oversubscription
        policy_options = {**policy_options, "num_threads": 1}
    jobs = [EvalJob(policy, policy_options, randomization, seed, c, video, backend=backend,
                    backend_options=dict(backend_options or {})) for c in chunks if c]  # fmt: skip
    from tqdm import tqdm

    results: list[EpisodeResult] = []
    if len(jobs) == 1:
        bar = tqdm(total=len(triples), desc=f"evaluate {policy}", unit="ep", disable=not progress)
        results = _run_job(jobs[0])
        bar.update(len(results))
        bar.close()
    else:
        with mp.get_context("spawn").Pool(len(jobs)) as pool:
            bar = tqdm(total=len(triples), desc=f"evaluate {policy}", unit="ep", disable=not progress)
            for part in pool.imap_unordered(_run_job, jobs):
                results.extend(part)
                bar.update(len(part))
            bar.close()
    order = {t: i for i, t in enumerate(triples)}
    return sorted(results, key=lambda r: order[(r.variant, r.task, r.episode)])
