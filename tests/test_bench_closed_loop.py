"""benchmarks/bench_vla_closed_loop.py: the vla and bc rows side by side, from the same scenes."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_closed_loop", ROOT / "benchmarks" / "bench_vla_closed_loop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _metrics(rates: dict[str, tuple[int, int]]) -> dict:
    entries = {task: {"successes": s, "trials": n, "rate": s / n, "ci95": [0.0, 1.0]} for task, (s, n) in rates.items()}
    return {"closed_loop": {"in_distribution": entries}}


def test_seeds_train_side_by_side_on_shared_out_cores(tmp_path: Path) -> None:
    """``--parallel N``: N runs at once, each told to use its share of the cores; a failed run
    fails the benchmark."""
    import subprocess

    bench = _bench()
    assert bench.threads_per_run(1, cores=2) is None
    assert bench.threads_per_run(2, cores=2) == 1
    assert bench.threads_per_run(2, cores=16) == 8
    assert bench.threads_per_run(3, cores=2) == 1
    write = "import os, sys; open(sys.argv[1], 'w').write(os.environ.get('OMP_NUM_THREADS', 'unset'))"
    commands = {f"seed {n}": [sys.executable, "-c", write, str(tmp_path / f"threads{n}")] for n in range(3)}
    times = bench.run_all(commands, parallel=2)
    assert set(times) == set(commands) and all(t > 0 for t in times.values())
    expected = str(bench.threads_per_run(2))
    assert [(tmp_path / f"threads{n}").read_text() for n in range(3)] == [expected] * 3
    with pytest.raises(subprocess.CalledProcessError):
        bench.run_all({"ok": [sys.executable, "-c", "pass"], "bad": [sys.executable, "-c", "raise SystemExit(3)"]}, 2)


def test_the_benchmark_prints_the_vla_and_bc_rows_side_by_side(tmp_path: Path) -> None:
    bench = _bench()
    assert bench.policy_types("vla,bc") == ["vla", "bc"]
    with pytest.raises(argparse.ArgumentTypeError, match="expected registered policy types"):
        bench.policy_types("vla,diffusion")
    assert bench.folders(tmp_path, "vla") == (tmp_path / "train", tmp_path / "eval")
    assert bench.folders(tmp_path, "bc") == (tmp_path / "train_bc", tmp_path / "eval_bc")
    lines = bench.success_table({"vla": _metrics({"push": (3, 4), "stack": (1, 4)}),
                                 "bc": _metrics({"push": (2, 4), "stack": (0, 4)})})  # fmt: skip
    assert lines[0].split() == ["policy", "push", "stack", "mean"]
    assert lines[1].split()[0] == "vla" and "3/4 = 75.0%" in lines[1] and lines[1].endswith("50.0%")
    assert lines[2].split()[0] == "bc" and "0/4 = 0.0%" in lines[2] and lines[2].endswith("25.0%")


def test_seeds_get_their_own_folders_and_a_row_with_each_count_mean_and_spread(tmp_path: Path) -> None:
    bench = _bench()
    assert bench.folders(tmp_path, "vla", seed=2) == (tmp_path / "train_seed2", tmp_path / "eval_seed2")
    assert bench.folders(tmp_path, "bc", seed=1) == (tmp_path / "train_bc_seed1", tmp_path / "eval_bc_seed1")
    runs = [_metrics({"push": (s, 50)}) for s in (40, 44, 48)]
    lines = bench.seed_table({"vla": runs})
    assert lines[1].split() == ["vla", "in_distribution", "push", "40", "44", "48", "44.0", "4.0", "50"]
    assert bench.seed_table({"bc": runs[:1]})[1].split()[-3:] == ["40.0", "0.0", "50"]


def test_training_distractors_become_one_generate_override() -> None:
    bench = _bench()
    assert bench.distractor_overrides(0) == []
    assert bench.distractor_overrides(2) == ["++randomization.distractors.count={choice:[0,1,2]}"]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_held_out_variants_join_the_in_distribution_metrics_of_each_seed() -> None:
    bench = _bench()
    held_out = {"closed_loop": {"textures": {"pick_place": {"successes": 20, "trials": 30}}}}
    merged = bench.merged(_metrics({"push": (3, 4)}), held_out)
    assert list(merged["closed_loop"]) == ["in_distribution", "textures"]
    lines = bench.seed_table({"vla": [merged, merged]})
    assert lines[2].split() == ["vla", "textures", "pick_place", "20", "20", "20.0", "0.0", "30"]


def test_push_failures_are_sorted_by_where_the_object_went() -> None:
    bench = _load("bench_push_failures")

    def kind(**changes) -> str:
        fields = {"episode": 0, "side": "left", "instruction": "", "success": False, "steps": 100,
                  "start_distance": 0.2, "final_distance": 0.1, "closest_distance": 0.1, "final_distance_other": 0.4,
                  "moved": 0.1, "heading_error_deg": 10.0, "first_heading_error_deg": 5.0, "last_move_step": 40,
                  "radius": 0.045, "kind": ""}  # fmt: skip
        return bench.classify(bench.PushTrace(**{**fields, **changes}), start_distance_other=0.3, max_steps=100)

    assert kind(success=True) == "success"
    assert kind(moved=0.01) == "never_moved"
    assert kind(final_distance=0.3, final_distance_other=0.1) == "wrong_target"
    assert kind(heading_error_deg=60.0) == "wrong_direction"
    assert kind(closest_distance=0.03, final_distance=0.08) == "overshot"
    assert kind(closest_distance=0.08, final_distance=0.25) == "passed_beside"
    assert kind() == "stalled"
    assert kind(last_move_step=95) == "still_pushing"
    assert bench.angle_deg(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(45.0)
    assert bench.angle_deg(np.zeros(2), np.array([1.0, 0.0])) == 0.0


def test_training_variance_runs_name_their_seeds_and_threads() -> None:
    bench = _load("bench_training_variance")
    runs = bench.parse_runs("0:1:2,3:0:1")
    assert [(r.train_seed, r.data_seed, r.threads) for r in runs] == [(0, 1, 2), (3, 0, 1)]
    assert runs[0].label == "seed0_data1_threads2"
    for bad in ("0:1", "a:0:1", "0:0:0"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected TRAIN_SEED:DATA_SEED:THREADS"):
            bench.parse_runs(bad)
