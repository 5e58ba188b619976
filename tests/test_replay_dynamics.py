"""Dynamics replay measures the simulator, not the harness; replay sets of another embodiment give
what can be measured, with the reasons for the rest.

The self-check: our own scripted-expert episodes, written to Zarr and read back as if they were a
real recording, replay from their recorded joint positions at their recorded control rate with a
mean position error <= 5 mm.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim2real.datasets import Episode, EpisodeMetadata, EpisodeSteps, create_writer
from sim2real.evaluation.document import MetricsDocument, metrics_problems, new_metrics
from sim2real.evaluation.markdown import _replay_section
from sim2real.evaluation.replay import (
    REPLAY_START,
    ReplaySet,
    action_space,
    dynamics_replay,
    load_replay_set,
    replay_metrics,
    replay_physics_hz,
)
from sim2real.rollout import record_clean_expert_episodes
from sim2real.sim.control import ControllerConfig

#: the issue's bound for the self-check (m)
SELF_CHECK_MEAN_ERROR_M = 0.005


def _expert_episodes(count: int, control_hz: float, seed: int = 11) -> list[Episode]:
    """Scripted-expert episodes (no expert noise, preset ``none``), tasks cycling, at ``control_hz``."""
    return record_clean_expert_episodes(("pick_place", "push", "stack"), count, seed, control_hz, image_size=32)


@pytest.fixture(scope="module")
def expert_episodes() -> list[Episode]:
    return _expert_episodes(3, 10.0)


def _with_metadata(episode: Episode, **changes: Any) -> Episode:
    extras = changes.pop("extras", None)
    metadata = dataclasses.replace(episode.metadata, **changes)
    if extras is not None:
        metadata = dataclasses.replace(metadata, extras={**episode.metadata.extras, **extras})
    return Episode(episode.steps, metadata)


def _with_state(episode: Episode, state: np.ndarray) -> Episode:
    return Episode(dataclasses.replace(episode.steps, state=state.astype(np.float32)), episode.metadata)


# ---------------------------------------------------------------------------------------------
# The self-check
# ---------------------------------------------------------------------------------------------


def test_our_own_episodes_replayed_as_if_real_reproduce_their_trajectory(
    expert_episodes: list[Episode], tmp_path: Path
) -> None:
    with create_writer("zarr", tmp_path / "as_real.zarr") as writer:
        for episode in expert_episodes:
            writer.write(episode)
    replay = load_replay_set(tmp_path / "as_real.zarr", None, 10)
    block = dynamics_replay(replay.episodes)
    assert block is not None
    print(f"self-check: mean {block['mean_position_error_m'] * 1000:.3f} mm, max "
          f"{block['max_position_error_m'] * 1000:.3f} mm, per axis {block['mean_abs_position_error_m']}")  # fmt: skip
    assert block["n_episodes"] == 3
    assert block["starts"] == {"recorded_joints": 3} and block["frames"] == {"absolute": 3}
    assert block["control_hz"] == [10.0]
    assert block["mean_position_error_m"] <= SELF_CHECK_MEAN_ERROR_M
    assert all(e["mean_position_error_m"] <= SELF_CHECK_MEAN_ERROR_M for e in block["episodes"])
    assert block["mean_orientation_error_rad"] <= 0.01
    assert set(block["mean_abs_position_error_m"]) == {"x", "y", "z"}
    # the recorded trajectories stay inside the workspace, and no workspace or joint-limit clip hides anything
    assert block["workspace"]["steps_outside"] == 0 and block["workspace"]["episodes_leaving"] == 0
    assert block["clips"]["total"]["workspace"] == 0 and block["clips"]["total"]["joint_limit"] == 0
    for entry in block["episodes"]:
        assert entry["start"] == "recorded_joints" and entry["start_note"] is None
        assert max(abs(v) for v in entry["start_offset_m"]) < 1e-4
    assert block["workspace"]["steps"] == sum(e.num_steps for e in expert_episodes)


def test_each_episode_is_replayed_at_its_own_control_rate() -> None:
    slow = _expert_episodes(1, 5.0, seed=3)
    block = dynamics_replay(slow)
    assert block is not None
    assert block["control_hz"] == [5.0] and block["physics_hz"] == [500.0]
    assert block["mean_position_error_m"] <= SELF_CHECK_MEAN_ERROR_M
    # a 5 Hz recording replayed at 10 Hz would move each delta in half the time: a larger error
    fast = _with_metadata(slow[0], control_hz=10.0)
    wrong = dynamics_replay([fast])
    assert wrong is not None and wrong["mean_position_error_m"] > block["mean_position_error_m"]


def test_a_control_rate_the_physics_cannot_divide_is_a_reason_not_a_crash(expert_episodes: list[Episode]) -> None:
    odd = _with_metadata(expert_episodes[0], control_hz=33.3, episode_id="odd/0")
    block = dynamics_replay([expert_episodes[1], odd])
    assert block is not None and block["n_episodes"] == 1
    assert block["skipped_episodes"]["odd/0"].startswith("control rate 33.3 Hz cannot be simulated: physics_hz")
    alone, _ = replay_metrics(None, ReplaySet("odd", [odd], 33.3), None)
    assert alone["dynamics"] is None and "control rate 33.3 Hz cannot be simulated" in alone["skipped"]["dynamics"]


@pytest.mark.parametrize(("control_hz", "physics_hz"), [(10.0, 500.0), (5.0, 500.0), (15.0, 450.0), (30.0, 600.0),
                                                        (12.5, 500.0), (100.0, 1000.0)])  # fmt: skip
def test_the_physics_rate_divides_the_control_period_into_whole_ramp_segments(
    control_hz: float, physics_hz: float
) -> None:
    from sim2real.sim.backend import BackendConfig

    segments = ControllerConfig().interpolation_segments
    assert replay_physics_hz(control_hz, segments) == pytest.approx(physics_hz)
    config = BackendConfig(control_hz=control_hz, physics_hz=replay_physics_hz(control_hz, segments))
    assert config.physics_steps_per_control_step() % segments == 0


# ---------------------------------------------------------------------------------------------
# Starts: recorded joints, recorded EE position, fitted into the workspace
# ---------------------------------------------------------------------------------------------


def test_a_set_of_our_robot_without_usable_joints_starts_from_its_recorded_ee_position(
    expert_episodes: list[Episode],
) -> None:
    episode = expert_episodes[0]
    no_joints = episode.steps.state.copy()
    no_joints[:, 7:] = np.nan
    other_convention = episode.steps.state.copy()
    other_convention[:, 12] += np.pi / 2  # Franka's joint-6 zero, not the sim's
    block = dynamics_replay([_with_state(episode, no_joints), _with_state(episode, other_convention)])
    assert block is not None
    assert block["starts"] == {"recorded_ee": 2} and block["frames"] == {"relative_to_start": 2}
    first, second = block["episodes"]
    assert first["start_note"] == "no recorded joint positions at the first step"
    assert "from the recorded EE pose" in second["start_note"] and "mm" in second["start_note"]
    for entry in (first, second):
        assert max(abs(v) for v in entry["start_offset_m"]) < 2e-3  # it starts where the recording did
        assert entry["mean_position_error_m"] <= SELF_CHECK_MEAN_ERROR_M  # same motion from the same pose


def _foreign_episode(positions: np.ndarray, robot: str = "ur5e", episode_id: str = "foreign/0") -> Episode:
    """Another robot's episode whose EE moves through ``positions`` (T, 3) m pointing down, with
    the deltas between them as 7-D actions and no joint positions."""
    steps = len(positions)
    state = np.full((steps, 14), np.nan, np.float32)
    state[:, :3] = positions
    state[:, 3:6] = 0.0
    state[:, 6] = 1.0
    action = np.zeros((steps, 7), np.float32)
    action[:-1, :3] = np.diff(positions, axis=0)
    action[:, 6] = 1.0
    is_last = np.arange(steps) == steps - 1
    frames = np.full((steps, 16, 16, 3), 90, np.uint8)
    metadata = EpisodeMetadata(episode_id=episode_id, episode_index=0, seed=-1, task="real", backend="real",
                               robot=robot, control_hz=10.0, split="train", success=False)  # fmt: skip
    return Episode(
        EpisodeSteps(
            images={"front": frames},
            state=state,
            action=action,
            reward=np.zeros(steps, np.float32),
            discount=np.ones(steps, np.float32),
            is_first=np.arange(steps) == 0,
            is_last=is_last,
            is_terminal=np.zeros(steps, bool),
            language_instruction="put the cube down",
        ),
        metadata,
    )


def test_a_long_descent_of_another_robot_is_fitted_into_the_workspace_not_clipped_at_its_floor() -> None:
    # the case: a 0.42 m descent; from a fixed start 0.15 m above the table it ran into the floor
    descent = np.c_[np.full(22, 0.5), np.zeros(22), np.linspace(0.50, 0.08, 22)]
    block = dynamics_replay([_foreign_episode(descent)])
    assert block is not None
    [entry] = block["episodes"]
    assert entry["start"] == "workspace_fit" and entry["frame"] == "relative_to_start"
    low, high = ControllerConfig().workspace_low, ControllerConfig().workspace_high
    start_z = -entry["start_offset_m"][2] + descent[0, 2]
    assert low[2] + 0.42 - 2e-3 <= start_z <= high[2] + 2e-3  # room for the whole descent above the floor
    assert entry["clips"]["workspace"] == 0 and block["workspace"]["steps_outside"] == 0
    assert block["mean_position_error_m"] < 0.05  # the fixed start of before: 0.197 m on the Panda set


def test_a_trajectory_longer_than_the_workspace_is_reported_leaving_it() -> None:
    low, high = ControllerConfig().workspace_low, ControllerConfig().workspace_high
    tall = (high[2] - low[2]) + 0.1  # 0.1 m more than the workspace is high
    steps = int(np.ceil(tall / 0.04)) + 1
    descent = np.c_[np.full(steps, 0.5), np.zeros(steps), np.linspace(0.7, 0.7 - tall, steps)]
    block = dynamics_replay([_foreign_episode(descent), _foreign_episode(descent[:5], episode_id="foreign/1")])
    assert block is not None
    ws = block["workspace"]
    assert ws["episodes_leaving"] == 1 and ws["fraction_episodes_leaving"] == 0.5
    assert 0 < ws["steps_outside"] < steps and set(ws["outside_by_side"]) <= {"z_low", "z_high"}
    assert ws["fraction_steps_outside"] == pytest.approx(ws["steps_outside"] / (steps + 5))
    assert block["clips"]["total"]["workspace"] > 0  # and the controller's clips say so too
    assert block["episodes"][0]["clips"]["workspace"] == block["clips"]["total"]["workspace"]
    assert block["episodes"][0]["steps_outside_workspace"] == ws["steps_outside"]


def test_another_robot_at_its_recorded_position_only_on_request() -> None:
    path = np.c_[np.linspace(0.3, 0.35, 6), np.full(6, 0.1), np.full(6, 0.2)]
    fitted = dynamics_replay([_foreign_episode(path)])
    recorded = dynamics_replay([_foreign_episode(path)], foreign_start="recorded_ee")
    assert fitted is not None and recorded is not None
    assert fitted["starts"] == {"workspace_fit": 1}
    assert np.allclose(np.asarray(fitted["episodes"][0]["start_offset_m"]), path[0] - REPLAY_START, atol=2e-3)
    assert recorded["starts"] == {"recorded_ee": 1}
    assert max(abs(v) for v in recorded["episodes"][0]["start_offset_m"]) < 2e-3
    with pytest.raises(ValueError, match="foreign_start='nowhere'"):
        dynamics_replay([_foreign_episode(path)], foreign_start="nowhere")


# ---------------------------------------------------------------------------------------------
# Other embodiments: what can be measured, and why the rest is not
# ---------------------------------------------------------------------------------------------


def _joint_position_episode(dim: int, cameras: tuple[str, ...] = ("front",)) -> Episode:
    """A humanoid-like episode: ``dim``-D joint-position actions, no EE state."""
    rng = np.random.default_rng(dim)
    base = _foreign_episode(np.zeros((6, 3)), robot="unitree_h1", episode_id=f"humanoid/{dim}")
    images = {c: rng.integers(0, 255, (6, 16, 16, 3), dtype=np.uint8) for c in cameras}
    steps = dataclasses.replace(base.steps, images=images, action=rng.normal(0, 0.1, (6, dim)).astype(np.float32),
                                state=np.full((6, 14), np.nan, np.float32))  # fmt: skip
    return Episode(steps, dataclasses.replace(base.metadata, extras={"action_space": "joint_position"}))


def test_action_space_comes_from_the_metadata_and_from_the_actions(expert_episodes: list[Episode]) -> None:
    assert action_space(expert_episodes[0]) == ("ee_delta", None)
    space, reason = action_space(_joint_position_episode(14))
    assert space == "joint_position" and reason == "actions are joint positions (14-D), not 7-D end-effector deltas"
    undeclared = _joint_position_episode(14)
    undeclared = Episode(undeclared.steps, dataclasses.replace(undeclared.metadata, extras={}))
    assert action_space(undeclared) == ("unknown", "actions are 14-D, not 7-D end-effector deltas")
    nan = expert_episodes[0].steps.action.copy()
    nan[2, 0] = np.nan
    nan_episode = Episode(dataclasses.replace(expert_episodes[0].steps, action=nan), expert_episodes[0].metadata)
    assert action_space(nan_episode) == ("unknown", "actions hold NaN or infinite values")


class _FeaturePolicy:
    """A stand-in for a trained policy: per-camera features = per-frame colour means; records what
    each camera input was fed."""

    def __init__(self) -> None:
        self.config = dataclasses.make_dataclass("C", [("cameras", tuple), ("image_size", int)])(("front", "wrist"), 16)
        self.fed: list[dict[str, np.ndarray]] = []

    def image_features(self, images: dict[str, Any]) -> dict[str, Any]:
        import torch

        self.fed.append({c: x.numpy() for c, x in images.items()})
        rng = np.random.default_rng(len(self.fed))
        return {c: torch.from_numpy(x.float().mean(dim=(1, 2)).numpy() + rng.normal(0, 1, (x.shape[0], 3)))
                for c, x in images.items()}  # fmt: skip


def test_a_set_of_another_embodiment_gives_the_visual_gap_and_says_what_was_skipped(
    expert_episodes: list[Episode], tmp_path: Path
) -> None:
    humanoid = ReplaySet("humanoid", [_joint_position_episode(14), _joint_position_episode(14)], 10.0)
    policy = _FeaturePolicy()
    block, embedding = replay_metrics(policy, humanoid, expert_episodes)
    assert block["open_loop"] is None and block["dynamics"] is None
    reason = "actions are joint positions (14-D), not 7-D end-effector deltas"
    assert block["skipped"]["open_loop"].startswith(reason) and block["skipped"]["dynamics"].startswith(reason)
    # the set has no wrist camera: reported missing, never stood in for by the front camera
    assert block["visual_gap"]["front"] >= 0 and block["visual_gap"]["wrist"] is None
    assert block["skipped"]["visual_gap.wrist"] == "the replay set has no 'wrist' camera (it has: front)"
    assert set(embedding) == {"front"}
    real_calls = policy.fed[: len(humanoid.episodes)]
    assert all(not call["wrist"].any() for call in real_calls)  # the encoder's wrist slot got no real frames
    assert block["image_stats"]["front"]["frechet_colour"] >= 0 and block["image_stats"]["wrist"] is None
    assert "image_stats.wrist" in block["skipped"]
    assert block["embodiment"]["action_spaces"] == {"joint_position": 2}
    assert block["embodiment"]["action_dims"] == {"14": 2}

    metrics = new_metrics("vla", "ckpt", 0, 1)
    metrics["replay"] = block
    MetricsDocument.from_dict(json.loads(json.dumps(metrics)))
    report = "\n".join(_replay_section(metrics, False))
    assert f"open_loop and dynamics skipped: {reason}" in report
    assert "| wrist | missing: the replay set has no 'wrist' camera (it has: front) |" in report


def test_a_joint_position_set_on_disk_loads_and_only_an_unreadable_set_is_an_error(
    expert_episodes: list[Episode], tmp_path: Path
) -> None:
    from sim2real.datasets import DatasetError

    arm = _with_metadata(expert_episodes[0], robot="xarm7", extras={"action_space": "joint_position"})
    with create_writer("hdf5", tmp_path / "arm.hdf5") as writer:
        writer.write(arm)
    replay = load_replay_set(tmp_path / "arm.hdf5", None, 5)
    block, _ = replay_metrics(None, replay, expert_episodes[:1])
    assert block["dynamics"] is None and "joint positions (7-D)" in block["skipped"]["dynamics"]
    assert block["image_stats"]["front"] is not None
    assert metrics_problems({**new_metrics("expert", None, 0, 1), "replay": block}) == []
    (tmp_path / "broken").mkdir()
    with pytest.raises(DatasetError, match="not a dataset of any known format"):
        load_replay_set(tmp_path / "broken", None, 5)


def test_a_mixed_set_replays_its_usable_episodes_and_names_the_rest(expert_episodes: list[Episode]) -> None:
    no_ee = expert_episodes[1].steps.state.copy()
    no_ee[:, :3] = np.nan
    episodes = [expert_episodes[0], _with_state(expert_episodes[1], no_ee), _joint_position_episode(14)]
    block, _ = replay_metrics(None, ReplaySet("mixed", episodes, 10.0), None)
    dynamics = block["dynamics"]
    assert dynamics["n_episodes"] == 1
    assert dynamics["skipped_episodes"] == {
        expert_episodes[1].metadata.episode_id: "the set records no end-effector positions",
        "humanoid/14": "actions are joint positions (14-D), not 7-D end-effector deltas",
    }
    assert any("1 of 3 episodes left out of open loop and dynamics" in note for note in block["notes"])
    assert block["image_stats"] is None and "image_stats" in block["skipped"]
    assert metrics_problems({**new_metrics("expert", None, 0, 1), "replay": block}) == []


def test_the_validator_requires_a_reason_for_every_null_replay_metric_and_camera(
    expert_episodes: list[Episode],
) -> None:
    block, _ = replay_metrics(_FeaturePolicy(), ReplaySet("h", [_joint_position_episode(14)] * 2, 10.0),
                              expert_episodes[:1])  # fmt: skip
    metrics = {**new_metrics("vla", "c", 0, 1), "replay": block}
    assert metrics_problems(metrics) == []
    del block["skipped"]["visual_gap.wrist"]
    del block["skipped"]["dynamics"]
    problems = metrics_problems(metrics)
    assert "replay.visual_gap.wrist: null without a reason in replay.skipped" in problems
    assert "replay.dynamics: null without a reason in replay.skipped" in problems


def test_the_validator_checks_the_dynamics_block(expert_episodes: list[Episode]) -> None:
    block = dynamics_replay(expert_episodes[:1])
    assert block is not None
    replay = {"open_loop": None, "visual_gap": None, "dynamics": block}
    assert metrics_problems({**new_metrics("expert", None, 0, 1), "replay": replay}) == []
    broken = json.loads(json.dumps(block))
    broken["clips"]["total"]["workspace"] = -1
    broken["workspace"]["fraction_steps_outside"] = 1.5
    broken["mean_abs_position_error_m"] = {"x": 0.1}
    broken["episodes"][0]["frame"] = "sideways"
    broken["n_episodes"] = 2
    problems = metrics_problems({**new_metrics("expert", None, 0, 1), "replay": {**replay, "dynamics": broken}})
    for expected in ("replay.dynamics.clips", "replay.dynamics.workspace.fraction_steps_outside",
                     "replay.dynamics.mean_abs_position_error_m", "replay.dynamics.episodes[0]",
                     "replay.dynamics.episodes: 1 entries, n_episodes is 2"):  # fmt: skip
        assert any(p.startswith(expected) for p in problems), (expected, problems)


def test_the_bridge_set_replays_fitted_into_the_workspace(real_replay_dir: Path) -> None:
    replay = load_replay_set(real_replay_dir / "bridge_debug" / "bridge_dataset" / "1.0.0", "bridge", 5)
    block = dynamics_replay(replay.episodes)
    assert block is not None
    assert block["starts"] == {"workspace_fit": 5} and block["control_hz"] == [5.0]
    assert block["clips"]["total"]["workspace"] == 0 and block["clips"]["total"]["joint_limit"] == 0
    assert block["workspace"]["steps_outside"] == 0
    assert 0 < block["mean_position_error_m"] < 0.02
    assert block["mean_orientation_error_rad"] is not None
