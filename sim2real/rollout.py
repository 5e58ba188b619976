"""Record scripted-expert episodes in the canonical schema (simulator imported lazily by the env)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import sim2real
from sim2real.contracts.seeds import derived_rng, derived_seed
from sim2real.datasets.schema import Episode, EpisodeMetadata, EpisodeSteps
from sim2real.envs import Sim2RealEnv
from sim2real.sim.experts import make_expert
from sim2real.sim.scene_spec import SceneSpec


@dataclass(frozen=True)
class RolloutResult:
    episode: Episode
    success: bool


def record_expert_episode(
    env: Sim2RealEnv,
    scene: SceneSpec,
    expert_seed: int,
    expert_noise: float,
    episode_index: int,
    attempts: int,
    expert_noise_rate: float = 1.0,
) -> RolloutResult:
    """Run the scripted expert on ``scene`` and return the episode: T steps, each the
    observation before the action, the action, and the reward after it."""
    obs, _ = env.reset(options={"scene": scene})
    rng = derived_rng(expert_seed)
    expert = make_expert(scene, rng, expert_noise, expert_noise_rate)
    frames: dict[str, list[np.ndarray]] = {camera: [] for camera in env.cameras}
    states, actions, rewards = [], [], []
    success = False
    for _ in range(env.max_steps):
        action = expert.act(env.backend.privileged_state())  # the label
        for camera in env.cameras:
            frames[camera].append(obs["image"][camera])
        states.append(obs["state"])
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(expert.perturb(action))  # DART with expert_noise > 0
        rewards.append(reward)
        if terminated or truncated:
            success = bool(info["success"])
            break
    length = len(actions)
    is_last = np.zeros(length, bool)
    is_last[-1] = True
    steps = EpisodeSteps(
        images={camera: np.stack(frames[camera]) for camera in env.cameras},
        state=np.stack(states).astype(np.float32),
        action=np.stack(actions).astype(np.float32),
        reward=np.asarray(rewards, np.float32),
        discount=np.ones(length, np.float32),
        is_first=np.arange(length) == 0,
        is_last=is_last,
        is_terminal=is_last & success,
        language_instruction=scene.instruction,
    )
    extras: dict[str, int | float | str] = {f"clip_{k}": int(v) for k, v in sorted(env.backend.clip_counts.items())}
    extras.update({"attempts": attempts, "expert_noise": float(expert_noise),
                   "expert_noise_rate": float(expert_noise_rate), "expert_retries": expert.retries})  # fmt: skip
    metadata = EpisodeMetadata(
        episode_id=f"{scene.split}/{episode_index:07d}", episode_index=episode_index, seed=scene.seed,
        task=scene.task, backend=type(env.backend).__name__.removesuffix("Backend").lower(), robot=scene.robot.name,
        control_hz=float(env.backend.config.control_hz), split=scene.split, success=success,
        scene_spec_json=scene.to_json(), scene_spec_hash=scene.content_hash(),
        generator_version=sim2real.__version__, extras=extras,
    )  # fmt: skip
    return RolloutResult(Episode(steps, metadata), success)


def record_clean_expert_episodes(
    tasks: tuple[str, ...], count: int, seed: int, control_hz: float, image_size: int = 128
) -> list[Episode]:
    """``count`` scripted-expert episodes without expert noise (preset ``none``), tasks cycling over
    ``tasks``, recorded at ``control_hz`` (Hz) with ``image_size`` px square images; scene ``seed + i``."""
    from sim2real.randomizers import sample_scene
    from sim2real.sim.backend import BackendConfig

    episodes = []
    for index in range(count):
        task = tasks[index % len(tasks)]
        env = Sim2RealEnv(task, backend_config=BackendConfig(control_hz=control_hz), image_size=image_size)
        try:
            scene = sample_scene(task, seed + index)
            episodes.append(record_expert_episode(env, scene, derived_seed(seed, index), 0.0, index, 1).episode)
        finally:
            env.close()
    return episodes
