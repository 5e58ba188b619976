"""policy=python: any importable object with reset() and act(observation, instruction), checked
before the first rollout (import, methods, action shape)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim2real.errors import UsageError
from sim2real.evaluation.closed_loop import evaluate_closed_loop
from sim2real.evaluation.harness import EvaluationConfig, PolicyConfig, run_evaluation
from sim2real.evaluation.policies import PolicySetupError, rollout_option_keys

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).stem  # this module is importable as a policy target (pytest puts tests/ on sys.path)


class WrappedExpert:
    """The scripted expert behind the python-policy interface (its reset takes the env)."""

    def __init__(self, seed: int = 0, noise: float = 0.0) -> None:
        from sim2real.evaluation.policies import ExpertRollout

        self.expert = ExpertRollout(seed=seed, noise=noise)

    def reset(self, env: Any) -> None:
        self.expert.reset(env)

    def act(self, observation: dict[str, Any], instruction: str) -> np.ndarray:
        assert observation["state"].dtype == np.float32 and observation["state"].shape == (14,)
        assert all(image.dtype == np.uint8 and image.shape[2] == 3 for image in observation["image"].values())
        return self.expert.act(observation, instruction)


class Still:
    """Stands still with the gripper open; counts its calls."""

    def __init__(self, gripper: float = 1.0) -> None:
        self.gripper, self.resets, self.calls = gripper, 0, 0

    def reset(self) -> None:
        self.resets += 1

    def act(self, observation: dict[str, Any], instruction: str) -> list[float]:
        self.calls += 1
        return [0.0] * 6 + [self.gripper]


class NoAct:
    def reset(self) -> None: ...


class SixD(Still):
    def act(self, observation: dict[str, Any], instruction: str) -> list[float]:
        return [0.0] * 6


def test_python_policy_wrapping_the_expert_gives_the_experts_successes() -> None:
    tasks = ["pick_place", "push", "stack"]
    expert = evaluate_closed_loop("expert", {}, ["in_distribution"], tasks, 2, seed=3, progress=False)
    wrapped = evaluate_closed_loop("python", {"target": f"{HERE}:WrappedExpert"}, ["in_distribution"], tasks, 2,
                                   seed=3, progress=False)  # fmt: skip
    assert sum(r.success for r in expert) >= 4
    assert [(r.seed, r.success, r.length) for r in wrapped] == [(r.seed, r.success, r.length) for r in expert]
    assert all(r.error is None for r in wrapped)


def test_kwargs_reach_the_class_and_an_object_is_used_as_it_is() -> None:
    from sim2real.evaluation.policies import make_rollout_policy

    policy = make_rollout_policy("python", target=f"{HERE}:Still", kwargs={"gripper": 0.5})
    assert policy.policy.gripper == 0.5
    assert rollout_option_keys("python") == ("target", "kwargs")
    assert rollout_option_keys("expert") == () and rollout_option_keys("nope") == ()


@pytest.mark.parametrize(
    ("target", "named"),
    [
        ("no_such_package.policies:Policy", "no module named 'no_such_package'"),
        (f"{HERE}:Absent", f"{HERE} has no attribute 'Absent'"),
        (f"{HERE}:NoAct", "NoAct lacks act()"),
        (f"{HERE}:SixD", "act() returned float64 (6,); expected float32 (7,)"),
        ("sim2real.evaluation.policies", "expected package.module:ClassName"),
    ],
)
def test_a_bad_target_is_named_before_any_rollout(tmp_path: Path, target: str, named: str) -> None:
    config = EvaluationConfig(policy=PolicyConfig(name="python", target=target), tasks=["push"],
                              episodes_per_variant=1, output_dir=str(tmp_path / "never"), progress=False)  # fmt: skip
    with pytest.raises(PolicySetupError) as caught:
        run_evaluation(config)
    assert named in str(caught.value) and f"policy.target={target}" in str(caught.value)
    assert not (tmp_path / "never").exists()


def test_bad_kwargs_and_an_unknown_policy_are_named(tmp_path: Path) -> None:
    base = EvaluationConfig(tasks=("push",), episodes_per_variant=1, output_dir=str(tmp_path / "never"),
                            progress=False)  # fmt: skip
    with pytest.raises(PolicySetupError, match=r"policy\.kwargs=\{'speed': 2\}.*unexpected keyword"):
        run_evaluation(replace(base, policy=PolicyConfig(name="python", target=f"{HERE}:Still",
                                                         kwargs={"speed": 2})))  # fmt: skip
    known = "bc, expert, python, random, remote, vla"
    with pytest.raises(UsageError, match=rf"unknown policy 'pi0'; known policies: {known}"):
        run_evaluation(replace(base, policy=PolicyConfig(name="pi0")))
    assert not (tmp_path / "never").exists()


def test_the_command_line_names_a_missing_target_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "policy=python",
                             "policy.target=no_such_package.policies:Policy", "policy.kwargs={gain:2}",
                             "tasks=[push]", "episodes_per_variant=1", f"output_dir={out}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stdout + result.stderr
    assert "policy.target=no_such_package.policies:Policy: no module named 'no_such_package'" in lines[0]
    assert not out.exists()
