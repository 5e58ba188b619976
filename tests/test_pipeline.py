"""``sim2real pipeline``: its settings file, its command lines and one tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim2real import pipeline
from sim2real.errors import UsageError


def test_settings_file_gives_each_step_its_overrides_and_the_common_knobs_win_over_none():
    settings = pipeline.PipelineSettings.load()
    lines = pipeline.commands(settings, Path("/out"), {"train": ["train.lr=0.5"]})
    assert [line[0] for line in lines.values()] == ["generate.py", "train.py", "evaluate.py"]
    assert f"num_episodes={settings.episodes}" in lines["generate"]
    assert f"train.max_steps={settings.steps}" in lines["train"]
    assert lines["train"][-1] == "train.lr=0.5"  # an extra override comes last, so it wins
    assert "data.path=/out/data/zarr" in lines["train"]
    assert "policy.checkpoint=/out/train/checkpoints/last" in lines["evaluate"]
    assert f"tasks=[{settings.task}]" in lines["evaluate"]
    for step in pipeline.STEPS:  # the file's own overrides precede the knobs
        assert lines[step][1 : 1 + len(settings.overrides[step])] == settings.overrides[step]


def test_an_unknown_settings_key_is_refused_naming_it(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("task: pick_place\nepisodes: 2\nsteps: 1\neval_episodes: 1\nworkers: 1\npreset: light\nepochs: 3\n")
    with pytest.raises(UsageError, match=r"unknown keys \['epochs'\]"):
        pipeline.PipelineSettings.load(path)


def test_a_malformed_set_is_refused_before_any_work(monkeypatch):
    monkeypatch.setattr(pipeline, "_run", lambda *a: pytest.fail("a step ran"))
    with pytest.raises(UsageError, match="STEP:OVERRIDE"):
        pipeline.main(["--set", "training:train.lr=1"])


@pytest.mark.slow
def test_a_tiny_pipeline_writes_a_report_with_its_closed_loop_result(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "BRIDGE", tmp_path / "absent")
    out = tmp_path / "run"
    pipeline.main(["--out", str(out), "--episodes", "2", "--steps", "4", "--eval-episodes", "1", "--workers", "1",
                   "--set", "generate:formats=[zarr]", "--set", "generate:shard_size=2",
                   "--set", "train:train.val_every=2", "--set", "train:train.checkpoint_every=4",
                   "--set", "train:model.language=learned", "--set", "evaluate:videos=0"])  # fmt: skip
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    entry = metrics["closed_loop"]["in_distribution"]["pick_place"]
    assert entry["trials"] == 1 and 0 <= entry["successes"] <= 1
    assert (out / "eval" / "report.md").read_text().count("pick_place") >= 1
    assert (out / "train" / "checkpoints" / "last" / "model.safetensors").exists()
