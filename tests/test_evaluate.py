"""evaluate.py's harness: reference policies, reproducibility, guardrails, the report, replay, bad input."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from sim2real.datasets import DatasetError
from sim2real.evaluation.closed_loop import evaluate_closed_loop
from sim2real.evaluation.document import MetricsDocument
from sim2real.evaluation.harness import EvaluationConfig, EvaluationError, PolicyConfig, ReplayConfig, run_evaluation
from sim2real.policies.checkpoint import CheckpointError


def test_expert_succeeds_and_random_fails_on_the_same_scenes() -> None:
    expert = evaluate_closed_loop("expert", {}, ["in_distribution"], ["pick_place", "push", "stack"], 3, progress=False)
    random = evaluate_closed_loop("random", {}, ["in_distribution"], ["pick_place", "push", "stack"], 3, progress=False)
    assert [r.seed for r in expert] == [r.seed for r in random]
    assert sum(r.success for r in expert) >= 8
    assert sum(r.success for r in random) == 0
    assert all(r.stage == "success" for r in expert if r.success)
    assert {r.stage for r in random} <= {"none", "reached", "moved"}  # random never lifts an object


def test_evaluation_is_reproducible() -> None:
    first = evaluate_closed_loop("expert", {}, ["lighting"], ["stack"], 2, seed=5, progress=False)
    again = evaluate_closed_loop("expert", {}, ["lighting"], ["stack"], 2, seed=5, progress=False)
    assert [(r.success, r.length, r.safety) for r in first] == [(r.success, r.length, r.safety) for r in again]


def _sensed_forces(monkeypatch: pytest.MonkeyPatch, **forces: float) -> None:
    """Make the simulator report ``forces`` (PrivilegedState fields, N) on every step."""
    from sim2real.sim.mujoco.backend import MujocoBackend

    read = MujocoBackend.privileged_state
    monkeypatch.setattr(MujocoBackend, "privileged_state", lambda self: dataclasses.replace(read(self), **forces))


def _one_expert_episode():
    [result] = evaluate_closed_loop("expert", {}, ["in_distribution"], ["pick_place"], 1, progress=False)
    return result


@pytest.mark.parametrize(
    ("force", "newtons", "reason"),
    [("robot_table_force", 10.5, "table_collision"), ("robot_contact_force", 60.5, "excess_contact_force")],
)
def test_a_force_just_over_its_guardrail_stops_the_episode_as_a_failure(
    monkeypatch: pytest.MonkeyPatch, force: str, newtons: float, reason: str
) -> None:
    _sensed_forces(monkeypatch, **{force: newtons})
    result = _one_expert_episode()
    assert result.safety.get(reason) == 1
    assert (result.success, result.length) == (False, 1)


def test_forces_just_under_the_guardrails_let_the_expert_succeed(monkeypatch: pytest.MonkeyPatch) -> None:
    _sensed_forces(monkeypatch, robot_table_force=9.5, robot_contact_force=59.5)
    result = _one_expert_episode()
    assert "table_collision" not in result.safety and "excess_contact_force" not in result.safety
    assert result.success and result.length > 1


def test_report_has_metrics_plots_and_videos(tmp_path: Path) -> None:
    config = EvaluationConfig(
        variants=["in_distribution", "objects"], tasks=["pick_place"], episodes_per_variant=2,
        output_dir=str(tmp_path / "eval"), videos=2, progress=False,
    )  # fmt: skip
    out = run_evaluation(config)
    metrics = json.loads((out / "metrics.json").read_text())
    MetricsDocument.from_dict(metrics)
    assert set(metrics["closed_loop"]) == {"in_distribution", "objects"}
    assert metrics["reference_rows"]["random"]["in_distribution"] == 0.0
    assert "light_intensity" in metrics["factors"]
    for name in ("report.md", "success_per_variant.png", "factors.png"):
        assert (out / name).stat().st_size > 0
    assert list((out / "videos").glob("*.gif"))
    assert "objects" in (out / "report.md").read_text()
    stages = metrics["closed_loop"]["in_distribution"]["pick_place"]["stages"]
    assert sum(stages.values()) == 2 and set(stages) <= {"success", "none", "reached", "lifted", "over_bowl"}
    assert "failures by furthest stage" in (out / "report.md").read_text()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from sim2real.generation import GenerationConfig, generate
    from sim2real.training.config import DataConfig, OptimConfig
    from sim2real.training.run import TrainConfig, train

    root = tmp_path_factory.mktemp("vla")
    generate(GenerationConfig(task="all", num_episodes=3, shard_size=3, output_dir=str(root / "d"), progress=False,
                              formats=("zarr",)))  # fmt: skip
    tiny = {"vision_width": 8, "embed_dim": 32, "layers": 1, "heads": 2, "tokens_per_frame": 2, "language": "learned"}
    train(TrainConfig(data=DataConfig(path=str(root / "d" / "zarr"), batch_size=4, workers=0), model=tiny,
                      train=OptimConfig(max_steps=4, val_every=4, checkpoint_every=4), output_dir=str(root / "run"),
                      progress=False))  # fmt: skip
    return root / "run" / "checkpoints" / "last"


def test_a_vla_checkpoint_is_evaluated_with_the_real_replay_set(checkpoint: Path, tmp_path: Path,
                                                                real_replay_dir: Path) -> None:  # fmt: skip
    bridge = real_replay_dir / "bridge_debug" / "bridge_dataset" / "1.0.0"
    config = EvaluationConfig(policy=PolicyConfig(name="vla", checkpoint=str(checkpoint)), tasks=["push"],
                              episodes_per_variant=1, output_dir=str(tmp_path / "eval"), reference_rows=False,
                              videos=1, progress=False,
                              replay=ReplayConfig(path=str(bridge), mapping="bridge", episodes=3))  # fmt: skip
    out = run_evaluation(config)
    replay = json.loads((out / "metrics.json").read_text())["replay"]
    assert replay["episodes"] == 3
    assert 0 <= replay["open_loop"]["real"]["gripper_accuracy"] <= 1
    assert set(replay["visual_gap"]) == {"front", "wrist"} and all(v >= 0 for v in replay["visual_gap"].values())
    assert replay["dynamics"]["n_episodes"] == 3 and replay["dynamics"]["mean_position_error_m"] >= 0
    # a WidowX set: fitted into the Panda's workspace, errors relative to the start, clips counted
    assert replay["dynamics"]["starts"] == {"workspace_fit": 3} and replay["dynamics"]["control_hz"] == [5.0]
    assert replay["dynamics"]["clips"]["total"]["workspace"] == 0
    assert replay["image_stats"]["front"]["frechet_colour"] >= 0 and replay["image_stats"]["side"] is None
    assert set(replay["skipped"]) == {"image_stats.side"}  # the sim episodes have no 'side' camera
    assert (out / "attention.png").is_file() and (out / "feature_embedding.png").is_file()


def test_an_expert_evaluation_with_a_replay_set_of_another_embodiment(tmp_path: Path) -> None:
    from sim2real.datasets import create_writer
    from sim2real.datasets.synthetic import synthetic_episode

    with create_writer("zarr", tmp_path / "arm.zarr") as writer:
        for index in range(2):
            episode = synthetic_episode(index, cameras=("front",))
            extras = {**episode.metadata.extras, "action_space": "joint_position"}
            writer.write(replace(episode, metadata=replace(episode.metadata, robot="xarm7", extras=extras)))
    config = EvaluationConfig(tasks=["push"], episodes_per_variant=1, reference_rows=False,
                              videos=0, progress=False, output_dir=str(tmp_path / "eval"),
                              replay=ReplayConfig(path=str(tmp_path / "arm.zarr")))  # fmt: skip
    out = run_evaluation(config)
    metrics = json.loads((out / "metrics.json").read_text())
    MetricsDocument.from_dict(metrics)
    replay = metrics["replay"]
    assert replay["open_loop"] is None and replay["dynamics"] is None and replay["visual_gap"] is None
    assert replay["skipped"]["dynamics"].startswith("actions are joint positions (7-D), not end-effector deltas")
    assert replay["image_stats"]["front"] is not None and replay["image_stats"]["wrist"] is None
    assert replay["skipped"]["image_stats.wrist"] == "the replay set has no 'wrist' camera (it has: front)"
    report = (out / "report.md").read_text()
    assert "dynamics skipped: actions are joint positions (7-D)" in report
    assert "| wrist | missing: the replay set has no 'wrist' camera (it has: front) |" in report


def test_an_unknown_foreign_start_fails_before_any_rollout(tmp_path: Path) -> None:
    config = EvaluationConfig(
        output_dir=str(tmp_path / "never"), progress=False, replay=ReplayConfig(foreign_start="nowhere")
    )
    with pytest.raises(EvaluationError, match=r"replay\.foreign_start='nowhere': expected one of workspace_fit"):
        run_evaluation(config)
    assert not (tmp_path / "never").exists()


def test_bad_requests_fail_before_any_rollout(checkpoint: Path, tmp_path: Path) -> None:
    base = EvaluationConfig(output_dir=str(tmp_path / "never"), progress=False)
    missing = tmp_path / "missing"
    absent = rf"policy\.checkpoint={re.escape(str(missing))}: no such checkpoint folder"
    with pytest.raises(EvaluationError, match=absent):
        run_evaluation(replace(base, policy=PolicyConfig(name="vla", checkpoint=str(missing))))
    with pytest.raises(EvaluationError, match=r"policy=vla needs policy\.checkpoint=<checkpoint folder>"):
        run_evaluation(replace(base, policy=PolicyConfig(name="vla")))
    with pytest.raises(EvaluationError, match="unknown variant 'night'"):
        run_evaluation(replace(base, variants=["night"]))
    six_d = tmp_path / "six_d"
    shutil.copytree(checkpoint.resolve(), six_d)
    config = json.loads((six_d / "config.json").read_text())
    config["action"]["dim"] = 6
    (six_d / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"action dim mismatch: the checkpoint predicts 6-D actions, expected 7"):
        run_evaluation(replace(base, policy=PolicyConfig(name="vla", checkpoint=str(six_d))))
    vla = PolicyConfig(name="vla", checkpoint=str(checkpoint))
    with pytest.raises(EvaluationError, match=r"policy\.execute_steps=9: must be in \[1, \d+\]"):
        run_evaluation(replace(base, policy=replace(vla, execute_steps=9)))
    with pytest.raises(EvaluationError, match=r"policy\.temporal_ensemble=0\.1: .* needs policy\.execute_steps=1"):
        run_evaluation(replace(base, policy=replace(vla, execute_steps=2, temporal_ensemble=0.1)))
    with pytest.raises(EvaluationError, match=r"policy\.decoding='mode': expected one of argmax, expectation"):
        run_evaluation(replace(base, policy=replace(vla, decoding="mode")))
    empty = tmp_path / "empty_replay"
    empty.mkdir()
    with pytest.raises(DatasetError, match=rf"{re.escape(str(empty))}: not a dataset of any known format"):
        run_evaluation(replace(base, replay=ReplayConfig(path=str(empty))))
    assert not (tmp_path / "never" / "metrics.json").exists()


def test_unmappable_replay_keys_are_named(real_replay_dir: Path, tmp_path: Path) -> None:
    from sim2real.evaluation.replay import load_replay_set

    with pytest.raises(DatasetError, match=r"features\.json: key 'episode_metadata/episode_id' is a tensor feature"):
        load_replay_set(real_replay_dir / "bridge_debug" / "bridge_dataset" / "1.0.0", "sim2real", 2)


def test_evaluate_yamls_hold_no_defaults_of_their_own():
    """configs/evaluate.yaml and configs/policy/*.yaml choose presets; every key and default is
    EvaluationConfig's (action selection: CLOSED_LOOP_SELECTION; tasks: the task registry)."""
    import importlib.util
    import sys
    from dataclasses import asdict

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from sim2real.entrypoint import runtime_config
    from sim2real.evaluation.action_selection import CLOSED_LOOP_SELECTION
    from sim2real.sim.tasks import TASKS

    configs = Path(__file__).parents[1] / "configs"
    for path in (configs / "policy").glob("*.yaml"):
        assert OmegaConf.to_container(OmegaConf.load(path)) == {"name": path.stem}, path.name
    assert set(OmegaConf.to_container(OmegaConf.load(configs / "evaluate.yaml"))) == {"defaults", "output_dir", "hydra"}
    if "evaluate_entry_point" not in sys.modules:
        spec = importlib.util.spec_from_file_location("evaluate_entry_point", configs.parent / "evaluate.py")
        assert spec is not None and spec.loader is not None
        sys.modules[spec.name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    with initialize_config_dir(str(configs), version_base="1.3"):
        config = runtime_config(
            compose("evaluate", overrides=["policy=vla", "episodes_per_variant=3"]), EvaluationConfig
        )
    defaults = EvaluationConfig(policy=PolicyConfig(name="vla"), episodes_per_variant=3, output_dir="eval/vla")
    composed = {k: v for k, v in asdict(config).items() if k not in ("defaults", "randomization")}
    assert composed == {k: v for k, v in asdict(defaults).items() if k != "randomization"}
    assert list(config.tasks) == TASKS.names()  # every registered task, whatever their number
    assert {"pick_place", "push", "stack"} <= set(config.tasks)
    selection = asdict(CLOSED_LOOP_SELECTION)
    assert {k: getattr(config.policy, k) for k in selection} == selection
