"""A gymnasium.Env over any backend + task, so any policy can be rolled out closed-loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from sim2real.contracts.actions import ACTION_DIM, STATE_DIM
from sim2real.randomizers import RandomizationConfig, load_preset, sample_scene
from sim2real.randomizers.sensor_noise import SensorNoise
from sim2real.sim.backend import Backend, BackendConfig, make_backend
from sim2real.sim.scene_spec import SceneSpec
from sim2real.sim.tasks import TASKS, make_task

SceneSampler = Callable[[str, int], SceneSpec]


class Sim2RealEnv(gym.Env):
    """Observation: ``{"image": {camera: uint8 (H, W, 3)}, "state": float32 (14,)}``;
    action: float32 (7,) end-effector delta (see :mod:`sim2real.sim.control`);
    reward 1.0 on the step the task succeeds, which also terminates the episode;
    ``info["success"]``, ``info["instruction"]`` and ``info["clip_counts"]`` every step.

    ``reset(seed=s)`` samples the scene of seed ``s`` from ``randomization`` (a preset name
    or config) and ``split``; ``reset(options={"scene": spec})`` applies a given SceneSpec.
    Observations carry the scene's sensor noise; ``clean_observation()`` gives them without.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        task: str,
        backend: str | Backend = "mujoco",
        backend_config: BackendConfig | None = None,
        scene_sampler: SceneSampler | None = None,
        randomization: str | RandomizationConfig = "none",
        split: str = "train",
        max_steps: int | None = None,
        cameras: tuple[str, ...] = ("front", "wrist"),
        image_size: int = 128,
    ) -> None:
        TASKS.get(task)  # fail early, listing the known tasks
        self.task = make_task(task)
        self.backend: Backend = make_backend(backend, backend_config) if isinstance(backend, str) else backend
        config = load_preset(randomization) if isinstance(randomization, str) else randomization
        self.sample = scene_sampler or (lambda name, seed: sample_scene(name, seed, config, split))
        self.max_steps = max_steps or self.task.max_steps
        self.cameras = cameras
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Dict(
                    {c: gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8) for c in cameras}
                ),
                "state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
            }
        )
        limits = self.backend.config.controller
        high = np.r_[[limits.max_position_delta] * 3, [limits.max_rotation_delta] * 3, 1.0].astype(np.float32)
        low = np.r_[-high[:6], 0.0].astype(np.float32)
        self.action_space = gym.spaces.Box(low, high, (ACTION_DIM,), np.float32)
        self.scene: SceneSpec | None = None
        self._scene_hash = ""
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        scene = (options or {}).get("scene")
        if scene is None:
            scene_seed = seed if seed is not None else int(self.np_random.integers(2**31))
            scene = self.sample(self.task.name, scene_seed)
        if scene.task != self.task.name:
            raise ValueError(f"scene is for task {scene.task!r}, this env runs {self.task.name!r}")
        unknown = set(self.cameras) - {c.name for c in scene.cameras}
        if unknown:
            raise KeyError(f"unknown cameras {sorted(unknown)}; the scene has {[c.name for c in scene.cameras]}")
        self.backend.reset(scene)
        self.scene = scene
        self._scene_hash = scene.content_hash()  # once per episode: hashing the JSON costs ~1 ms
        self.noise = SensorNoise(scene.sensor_noise)
        self._steps = 0
        return self._observation(), self._info(False)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if self.scene is None:
            raise RuntimeError("call reset() before step()")
        self.backend.step(action)
        self._steps += 1
        success = self.task.success(self.backend.privileged_state(), self.scene)
        truncated = self._steps >= self.max_steps and not success
        return self._observation(), float(success), success, truncated, self._info(success)

    def clean_observation(self) -> dict[str, Any]:
        images = self.backend.images()
        return {"image": {c: images[c] for c in self.cameras}, "state": self.backend.proprio()}

    def _observation(self) -> dict[str, Any]:
        obs = self.clean_observation()
        if self.noise.active:
            obs = {"image": {c: self.noise.image(im) for c, im in obs["image"].items()},
                   "state": self.noise.state(obs["state"])}  # fmt: skip
        return obs

    def _info(self, success: bool) -> dict[str, Any]:
        assert self.scene is not None
        return {
            "success": success,
            "instruction": self.scene.instruction,
            "clip_counts": dict(self.backend.clip_counts),
            "scene_hash": self._scene_hash,
        }

    def render(self) -> np.ndarray:
        return self.backend.images()[self.cameras[0]]

    def close(self) -> None:
        self.backend.close()
