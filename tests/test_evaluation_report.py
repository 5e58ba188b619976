"""The metrics.json document, the report writer, and the video helpers."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sim2real.contracts.typed import SchemaError
from sim2real.evaluation.document import (
    METRICS_SCHEMA_VERSION,
    MetricsDocument,
    closed_loop_entry,
    load_metrics,
    metrics_problems,
    new_metrics,
)
from sim2real.evaluation.media import contact_sheet, write_video
from sim2real.evaluation.metrics import (
    action_errors,
    action_scale,
    aggregate_trajectory_errors,
    categorical_breakdown,
    factor_breakdown,
    frechet_distance_from_features,
    open_loop_gap,
    ranking_agreement,
    trajectory_errors,
)
from sim2real.evaluation.report import write_report

VARIANTS = ("in_distribution", "textures", "lighting", "camera", "distractors", "objects", "instructions")
TASKS = ("pick_cube", "place_in_bin")


def synthetic_metrics(episodes_per_variant: int = 100, seed: int = 0) -> dict:
    """A full metrics dict shaped like a 100-episode-per-variant evaluation."""
    rng = np.random.default_rng(seed)
    metrics = new_metrics("vla-small", "checkpoints/step_10000.pt", base_seed=seed, episodes_per_variant=100)
    per_task = episodes_per_variant // len(TASKS)
    all_success, all_light, all_color = [], [], []
    for k, variant in enumerate(VARIANTS):
        metrics["closed_loop"][variant] = {}
        for task in TASKS:
            light = rng.uniform(0.2, 2.0, per_task)
            success = rng.random(per_task) < (0.9 - 0.08 * k) * np.clip(light, 0.3, 1.0)
            lengths = rng.integers(20, 120, per_task)
            events = {"joint_limit_clips": int(rng.integers(0, 5)), "workspace_clips": int(rng.integers(0, 3))}
            metrics["closed_loop"][variant][task] = closed_loop_entry(success, lengths, events)
            all_success.append(success)
            all_light.append(light)
            all_color += list(rng.choice(["red", "green", "blue"], per_task))
    successes = np.concatenate(all_success)
    metrics["factors"]["light_intensity"] = [
        b.to_dict() for b in factor_breakdown(np.concatenate(all_light), successes)
    ]
    metrics["factors"]["object_color"] = [
        {"value": name, **rate.to_dict()} for name, rate in categorical_breakdown(all_color, successes)
    ]

    true = rng.normal(0.0, 0.01, (400, 7))
    true[:, 6] = rng.random(400) < 0.5
    scale = action_scale(true)
    real = action_errors(true + rng.normal(0, 0.004, true.shape), true, scale).to_dict()
    sim = action_errors(true + rng.normal(0, 0.003, true.shape), true, scale).to_dict()
    feats_real, feats_sim = rng.normal(0, 1, (episodes_per_variant, 64)), rng.normal(0.3, 1, (episodes_per_variant, 64))
    trajectories = []
    for _ in range(10):
        pos, rpy = rng.normal(0, 0.1, (50, 3)), rng.normal(0, 0.3, (50, 3))
        trajectories.append(trajectory_errors(pos + 0.005, rpy + 0.01, pos, rpy))
    metrics["replay"] = {
        "open_loop": {"real": real, "sim": sim, "gap": open_loop_gap(real, sim)},
        "visual_gap": {"front": frechet_distance_from_features(feats_real, feats_sim), "wrist": None},
        "dynamics": aggregate_trajectory_errors(trajectories),
    }
    sim_rates, real_rates = [0.787, 0.857, 0.710, 0.567, 0.027, 0.170], [0.907, 0.853, 0.920, 0.760, 0.133, 0.293]
    metrics["ranking"] = {
        **ranking_agreement(sim_rates, real_rates, n_bootstrap=500),
        "policies": ["a", "b", "c", "d", "e", "f"],
        "sim": sim_rates,
        "real": real_rates,
    }
    metrics["reference_rows"] = {
        "scripted_expert": dict.fromkeys(VARIANTS, 1.0),
        "random_policy": {"in_distribution": 0.02, "textures": 0.01},
    }
    metrics["features"] = {"real": feats_real, "sim": feats_sim}  # not part of the schema; passed separately
    return metrics


def test_write_report_produces_all_files(tmp_path: Path):
    metrics = synthetic_metrics()
    features = metrics.pop("features")
    frames = [np.full((48, 64, 3), 10 * t, dtype=np.uint8) for t in range(15)]
    videos = {"in_distribution / episode 0": write_video(frames, tmp_path / "videos" / "ep0.gif", mp4=False)[0]}
    attention = contact_sheet(frames, tmp_path / "attention.png")

    start = time.perf_counter()
    written = write_report(metrics, tmp_path / "report", videos=videos, attention_png=attention, features=features)
    print(f"report for {len(VARIANTS)} variants x 100 episodes rendered in {time.perf_counter() - start:.2f} s")

    expected = {
        "metrics_json",
        "report_md",
        "success_per_variant_png",
        "factors_png",
        "action_errors_png",
        "feature_embedding_png",
    }
    assert set(written) == expected
    for path in written.values():
        assert path.is_file() and path.stat().st_size > 0
    for key in expected - {"metrics_json", "report_md"}:
        with Image.open(written[key]) as image:
            assert image.format == "PNG" and image.size[0] > 100

    loaded = json.loads(written["metrics_json"].read_text())
    MetricsDocument.from_dict(loaded)
    assert loaded["schema_version"] == METRICS_SCHEMA_VERSION
    assert loaded["replay"]["visual_gap"]["wrist"] is None
    assert loaded["ranking"]["mmrv"] == pytest.approx(0.188 / 6)

    report = written["report_md"].read_text()
    for variant in VARIANTS:
        assert variant in report
    for needle in (
        "vla-small",
        "light_intensity",
        "object_color",
        "scripted_expert",
        "MMRV",
        "Pearson",
        "Fréchet",
        "gripper_accuracy",
        "mean_position_error_m",
        "success_per_variant.png",
        "factors.png",
        "action_errors.png",
        "feature_embedding.png",
        "../attention.png",
        "../videos/ep0.gif",
    ):
        assert needle in report, needle


def test_closed_loop_entry_counts_episodes_by_furthest_stage(tmp_path: Path):
    stages = ["success", "reached", "reached", "none"]
    entry = closed_loop_entry([True, False, False, False], stages=stages, stage_order=["none", "reached", "lifted"])
    assert list(entry["stages"].items()) == [("none", 1), ("reached", 2), ("lifted", 0), ("success", 1)]
    metrics = new_metrics("p", None, base_seed=1, episodes_per_variant=4)
    metrics["closed_loop"]["in_distribution"] = {"pick_place": entry}
    report = write_report(metrics, tmp_path)["report_md"].read_text()
    assert "none: 1, reached: 2, lifted: 0" in report


def test_write_report_minimal(tmp_path: Path):
    metrics = new_metrics("p", None, base_seed=1, episodes_per_variant=4)
    metrics["closed_loop"]["in_distribution"] = {"pick_cube": closed_loop_entry([True, False, True, True])}
    written = write_report(metrics, tmp_path)
    assert set(written) == {"metrics_json", "report_md", "success_per_variant_png"}
    assert "3/4" in written["report_md"].read_text()
    assert not (tmp_path / "factors.png").exists()


def test_validate_metrics_reports_every_problem():
    good = synthetic_metrics(episodes_per_variant=20)
    good.pop("features")
    assert metrics_problems(json.loads(json.dumps(good, default=float))) == []

    bad = new_metrics("p", None, base_seed=0, episodes_per_variant=1)
    del bad["seeds"]
    bad["closed_loop"] = {
        "v": {
            "t": {"successes": 5, "trials": 3, "rate": 1.5, "ci95": [0.9, 0.1]},
            "u": {**closed_loop_entry([True, False]), "stages": {"success": 1}},
        }
    }
    bad["ranking"] = {"pearson": 2.0, "pearson_ci95": None, "mmrv": float("nan"), "mmrv_ci95": None}
    bad["factors"] = {"light": [{"successes": 1, "trials": 1, "rate": 1.0, "ci95": [0.2, 1.0]}]}
    problems = metrics_problems(bad)
    joined = "\n".join(problems)
    for needle in (
        "missing keys ['seeds']",
        "closed_loop.v.t: successes 5 > trials 3",
        "closed_loop.v.t.rate: expected a number in [0, 1], got 1.5",
        "closed_loop.v.t.ci95: expected [low, high] numbers in [0, 1] with low <= high, got [0.9, 0.1]",
        "closed_loop.v.t: missing keys ['mean_length', 'safety_events']",
        "closed_loop.v.u.stages: counts sum to 1, trials is 2",
        "ranking.pearson: expected a number in [-1, 1] or null, got 2.0",
        "ranking.mmrv: expected a number >= 0, got None",
        "factors.light[0]: expected numeric 'low' and 'high' (or a 'value' label)",
    ):
        assert needle in joined, needle
    with pytest.raises(SchemaError) as raised:
        MetricsDocument.from_dict(bad)
    assert len(raised.value.problems) == len(problems) and "successes 5 > trials 3" in str(raised.value)
    with pytest.raises(SchemaError):
        write_report(bad, Path("/nonexistent/never-written"))
    assert not Path("/nonexistent/never-written").exists()


def test_numpy_values_are_written_as_plain_json(tmp_path: Path):
    metrics = new_metrics("p", "ckpt", base_seed=np.int64(3), episodes_per_variant=np.int64(2))
    entry = closed_loop_entry(np.array([1, 0]), np.array([10, 12]))
    entry["successes"], entry["rate"] = np.int64(entry["successes"]), np.float64(entry["rate"])
    metrics["closed_loop"]["lighting"] = {"t": entry}
    metrics["ranking"] = {"pearson": float("nan"), "pearson_ci95": None, "mmrv": np.float64(0.1), "mmrv_ci95": None}
    written = write_report(metrics, tmp_path)
    loaded = json.loads(written["metrics_json"].read_text())
    assert loaded["ranking"]["pearson"] is None
    assert loaded["closed_loop"]["lighting"]["t"]["mean_length"] == 11.0


def test_metrics_json_round_trips_through_the_document(tmp_path: Path):
    metrics = synthetic_metrics(episodes_per_variant=20)
    metrics.pop("features")
    metrics["timing"] = {"rollout_seconds": 1.5}  # a key the schema does not name is kept
    written = write_report(metrics, tmp_path)
    data = json.loads(written["metrics_json"].read_text())
    document = MetricsDocument.from_dict(data)
    assert document.to_dict() == data
    assert load_metrics(written["metrics_json"]) == document
    assert data["timing"] == {"rollout_seconds": 1.5}
    entry = document.closed_loop["textures"]["pick_cube"]
    assert (entry.successes, entry.trials) == tuple(data["closed_loop"]["textures"]["pick_cube"][k]
                                                    for k in ("successes", "trials"))  # fmt: skip
    assert "stages" not in data["closed_loop"]["textures"]["pick_cube"]  # left out, not written as null
    assert [b.value for b in document.factors["object_color"]] == ["blue", "green", "red"]


def test_an_invalid_document_names_the_key_the_value_and_the_expectation():
    data = new_metrics("p", None, base_seed=0, episodes_per_variant=1)
    data["seeds"]["base_seed"] = "zero"
    data["closed_loop"] = {"v": {"t": {**closed_loop_entry([True]), "successes": -1, "colour": 1}}}
    with pytest.raises(SchemaError) as raised:
        MetricsDocument.from_dict(data)
    assert raised.value.problems == [
        "seeds.base_seed: expected an int, got 'zero'",
        "closed_loop.v.t.successes: expected an int >= 0, got -1",
    ]
    with pytest.raises(SchemaError, match=r"^schema_version: expected 1, got 2$"):
        MetricsDocument.from_dict({**new_metrics("p", None, 0, 1), "schema_version": 2})


def test_write_video_gif_frame_count(tmp_path: Path):
    frames = [np.full((30, 41, 3), (17 * t) % 256, dtype=np.uint8) for t in range(12)]
    frames[3][:5, :5] = [255, 0, 0]
    written = write_video(frames, tmp_path / "episode.mp4", fps=10)
    assert written[0] == tmp_path / "episode.gif"
    with Image.open(written[0]) as gif:
        assert gif.n_frames == 12
        assert gif.size == (41, 30)
        assert gif.info["duration"] == 100
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        assert written[1] == tmp_path / "episode.mp4" and written[1].stat().st_size > 0
    else:
        assert len(written) == 1
    with pytest.raises(ValueError):
        write_video([], tmp_path / "empty.gif")


def test_contact_sheet_layout(tmp_path: Path):
    frames = [np.full((20, 30, 3), t, dtype=np.uint8) for t in range(50)]
    path = contact_sheet(frames, tmp_path / "sheet.png", columns=4, max_frames=10, gap=2)
    with Image.open(path) as sheet:
        # 10 frames in 4 columns -> 3 rows: width 4 * (30 + 2) + 2, height 3 * (20 + 2) + 2
        assert sheet.size == (4 * 32 + 2, 3 * 22 + 2)
        pixels = np.asarray(sheet)
    assert pixels[2, 2, 0] == 0  # first frame is the first tile
    assert pixels[2 + 2 * 22, 2 + 32, 0] == 49  # last frame is the 10th tile (row 2, column 1)
