"""Policies that evaluation rolls out: a VLA checkpoint, the scripted expert, a random policy.

Each is built by name from ``ROLLOUT_POLICIES`` and exposes ``reset(env)`` at the start of an
episode and ``act(observation, instruction) -> float32 (7,)``. The expert reads privileged
state from the env's backend; the others see only observations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sim2real.evaluation.action_selection import CLOSED_LOOP_SELECTION as _SELECTION
from sim2real.registry import Registry
from sim2real.sim.control import ACTION_DIM


class RolloutPolicy(Protocol):
    name: str

    def reset(self, env: Any) -> None: ...

    def act(self, observation: dict[str, Any], instruction: str) -> np.ndarray: ...


ROLLOUT_POLICIES: Registry[type] = Registry("rollout policy")


@ROLLOUT_POLICIES.register("expert")
class ExpertRollout:
    """The task's scripted expert (privileged state), as a reference row."""

    name = "expert"

    def __init__(self, seed: int = 0, noise: float = 0.0, **_: Any) -> None:
        self.seed, self.noise = seed, noise
        self._env: Any = None
        self._expert: Any = None

    def reset(self, env: Any) -> None:
        from sim2real.sim.experts import make_expert

        self._env = env
        self._expert = make_expert(env.scene, np.random.default_rng([self.seed, env.scene.seed]), self.noise)

    def act(self, observation: dict[str, Any], instruction: str) -> np.ndarray:
        return self._expert.act(self._env.backend.privileged_state())


@ROLLOUT_POLICIES.register("random")
class RandomRollout:
    """Uniform random actions within the env's action space (seeded per episode)."""

    name = "random"

    def __init__(self, seed: int = 0, **_: Any) -> None:
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._space: Any = None

    def reset(self, env: Any) -> None:
        self._rng = np.random.default_rng([self.seed, env.scene.seed])
        self._space = env.action_space

    def act(self, observation: dict[str, Any], instruction: str) -> np.ndarray:
        return self._rng.uniform(self._space.low, self._space.high).astype(np.float32)


@ROLLOUT_POLICIES.register("vla")
class VLARollout:
    """A trained VLA checkpoint through its inference API."""

    name = "vla"

    def __init__(
        self,
        checkpoint: str | None = None,
        num_threads: int | None = None,
        temporal_ensemble: float | None = _SELECTION.temporal_ensemble,
        execute_steps: int = _SELECTION.execute_steps,
        decoding: str = _SELECTION.decoding,
        **_: Any,
    ) -> None:
        if not checkpoint:
            raise ValueError("policy=vla needs policy.checkpoint=<path to a checkpoint folder>")
        from sim2real.policies import VLAPolicy

        self.policy = VLAPolicy.from_checkpoint(
            Path(checkpoint),
            num_threads=num_threads,
            temporal_ensemble=temporal_ensemble,
            execute_steps=execute_steps,
            decoding=decoding,
        )
        self.checkpoint = str(checkpoint)

    def reset(self, env: Any) -> None:
        self.policy.reset()

    def act(self, observation: dict[str, Any], instruction: str) -> np.ndarray:
        action = np.asarray(self.policy.act(observation, instruction), np.float32)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"policy returned an action of shape {action.shape}, the env takes ({ACTION_DIM},)")
        return action


def make_rollout_policy(name: str, **options: Any) -> RolloutPolicy:
    return ROLLOUT_POLICIES.get(name)(**options)
