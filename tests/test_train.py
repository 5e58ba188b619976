"""train.py's run: checkpoints, exact resume after a kill, NaN handling, bad input, sweep summary."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sim2real.generation import GenerationConfig, generate
from sim2real.training.config import DataConfig, OptimConfig
from sim2real.training.run import TrainConfig, TrainingError, TrainSettingError, train
from sim2real.training.sweep import summarize_sweep

TINY = {"vision_width": 8, "embed_dim": 32, "layers": 1, "heads": 2, "tokens_per_frame": 2, "language": "learned",
        "language_dim": 16, "language_buckets": 64, "dropout": 0.1}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "d"
    generate(GenerationConfig(task="all", num_episodes=3, shard_size=3, output_dir=str(out), progress=False,
                              formats=("zarr",)))  # fmt: skip
    return out / "zarr"


def _config(data: Path, out: Path, overrides: dict[str, object] | None = None) -> TrainConfig:
    """A tiny run on ``data`` into ``out``; ``overrides`` by command-line key (``{"train.max_steps": 4}``)."""
    config = TrainConfig(data=DataConfig(path=str(data), batch_size=4, workers=0, val_fraction=0.34), model=dict(TINY),
                         train=OptimConfig(max_steps=8, warmup_steps=2, val_every=4, checkpoint_every=4, log_every=1,
                                           val_batches=2),
                         output_dir=str(out), progress=False)  # fmt: skip
    for key, value in (overrides or {}).items():
        group, name = key.split(".")
        if group == "model":
            config.model[name] = value
        else:
            setattr(getattr(config, group), name, value)
    return config


@pytest.fixture(scope="module")
def source(data: Path, tmp_path_factory) -> Path:
    """A checkpoint to fine-tune from: 4 steps on ``data``."""
    out = tmp_path_factory.mktemp("source") / "run"
    train(_config(data, out, {"train.max_steps": 4}))
    return out / "checkpoints" / "last"


def _losses(out: Path) -> dict[int, float]:
    with open(out / "metrics.csv", newline="") as handle:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(handle) if r["split"] == "train"}


def test_training_writes_checkpoints_logs_and_a_summary(data: Path, tmp_path: Path) -> None:
    summary = train(_config(data, tmp_path / "run"))
    checkpoints = tmp_path / "run" / "checkpoints"
    assert (checkpoints / "last").resolve().name == "step_0000008"
    assert {p.name for p in (checkpoints / "last").iterdir()} >= {"model.safetensors", "config.json"}
    assert np.isfinite(summary["val"]["loss"]) and 0 <= summary["val"]["token_accuracy"] <= 1
    assert len(_losses(tmp_path / "run")) == 8
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 8


def test_a_rerun_of_a_finished_run_reports_the_same_validation(data: Path, tmp_path: Path) -> None:
    first = train(_config(data, tmp_path / "run"))
    again = train(_config(data, tmp_path / "run"))
    assert again["val"]["loss"] == pytest.approx(first["val"]["loss"], rel=1e-4)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["val"] == again["val"]


def test_a_killed_run_resumes_on_the_same_loss_curve(data: Path, tmp_path: Path, monkeypatch) -> None:
    straight = tmp_path / "straight"
    train(_config(data, straight))
    import sim2real.policies.training as training

    original = training.train_step

    def crash_at_six(*args, **kwargs):
        if kwargs["step"] == 6:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    killed = tmp_path / "killed"
    monkeypatch.setattr(training, "train_step", crash_at_six)
    with pytest.raises(KeyboardInterrupt):
        train(_config(data, killed))
    monkeypatch.setattr(training, "train_step", original)
    train(_config(data, killed))
    assert _losses(killed) == _losses(straight)
    weights = Path("checkpoints") / "last" / "model.safetensors"
    assert (killed / weights).read_bytes() == (straight / weights).read_bytes()


def test_bc_trains_resumes_after_a_kill_on_the_same_curve_fine_tunes_and_evaluates(data: Path, tmp_path: Path,
                                                                                   monkeypatch) -> None:  # fmt: skip
    from sim2real.evaluation.harness import EvaluationConfig, EvaluationError, PolicyConfig, run_evaluation
    from sim2real.policies import load_checkpoint

    straight = tmp_path / "straight"
    summary = train(_config(data, straight, {"model.type": "bc"}))
    assert np.isfinite(summary["val"]["loss"]) and 0 <= summary["val"]["token_accuracy"] <= 1
    assert load_checkpoint(straight / "checkpoints" / "last").policy == "bc"
    import sim2real.policies.training as training

    original = training.train_step

    def crash_at_six(*args, **kwargs):
        if kwargs["step"] == 6:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    killed = tmp_path / "killed"
    monkeypatch.setattr(training, "train_step", crash_at_six)
    with pytest.raises(KeyboardInterrupt):
        train(_config(data, killed, {"model.type": "bc"}))
    monkeypatch.setattr(training, "train_step", original)
    train(_config(data, killed, {"model.type": "bc"}))
    assert _losses(killed) == _losses(straight)
    weights = Path("checkpoints") / "last" / "model.safetensors"
    assert (killed / weights).read_bytes() == (straight / weights).read_bytes()

    source = str(straight / "checkpoints" / "last")
    with pytest.raises(TrainSettingError, match=r"a bc checkpoint, model=vla; fine-tune it with model=bc"):
        train(_config(data, tmp_path / "wrong", {"finetune.init_from": source}))
    tuned = train(
        _config(data, tmp_path / "ft", {"model.type": "bc", "train.max_steps": 4, "finetune.init_from": source})
    )
    assert 0 < tuned["frozen"]["trainable"] < tuned["frozen"]["total"]

    config = EvaluationConfig(policy=PolicyConfig(name="bc", checkpoint=source), tasks=["push"], episodes_per_variant=1,
                              output_dir=str(tmp_path / "eval"), reference_rows=False, videos=0,
                              progress=False)  # fmt: skip
    metrics = json.loads((run_evaluation(config) / "metrics.json").read_text())
    assert metrics["policy"]["name"] == "bc" and metrics["closed_loop"]["in_distribution"]["push"]["trials"] == 1
    assert (tmp_path / "eval" / "attention.png").is_file()
    with pytest.raises(EvaluationError, match=r"a bc checkpoint; evaluate it with policy=bc"):
        run_evaluation(replace(config, policy=PolicyConfig(name="vla", checkpoint=source)))


def test_an_unknown_policy_type_or_a_setting_of_another_type_is_named(data: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainSettingError, match=r"model=diffusion: not a policy type; known: bc, vla"):
        train(_config(data, tmp_path / "a", {"model.type": "diffusion"}))
    with pytest.raises(TrainSettingError, match=r"model\.bins: not a setting of model=bc"):
        train(_config(data, tmp_path / "b", {"model.type": "bc", "model.bins": 64}))


def test_resuming_with_other_settings_is_refused_before_any_work(data: Path, tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    train(_config(data, run, {"train.max_steps": 4}))
    import sim2real.training.run as run_module

    monkeypatch.setattr(run_module, "load_training_data", lambda *a, **k: pytest.fail("data loaded before the check"))
    with pytest.raises(TrainingError, match=r"other settings \(data\.batch_size 4 -> 2, train\.lr 0\.0003 -> 0\.001\)"):
        train(_config(data, run, {"train.max_steps": 8, "data.batch_size": 2, "train.lr": 1e-3}))
    monkeypatch.undo()
    summary = train(
        _config(data, run, {"train.max_steps": 6, "data.workers": 1})
    )  # more steps, another loader: resumes
    assert summary["steps"] == 6 and len(_losses(run)) == 6


def test_a_run_saved_before_successful_only_existed_resumes(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_config(data, run, {"train.max_steps": 4}))
    saved = json.loads((run / "train_config.json").read_text())
    del saved["data"]["successful_only"]  # a run from before the setting: every episode was used
    (run / "train_config.json").write_text(json.dumps(saved))
    assert train(_config(data, run, {"train.max_steps": 6}))["steps"] == 6
    with pytest.raises(TrainingError, match="successful_only False -> True"):
        train(_config(data, run, {"train.max_steps": 8, "data.successful_only": True}))


#: a ``train_config.json`` as runs saved it before the settings were grouped (flat field names)
FLAT_SAVED_CONFIG = {
    "data_path": "DATA", "output_dir": "OUT", "cameras": ["front", "wrist"], "history": 1, "chunk": 4,
    "max_episodes": None, "val_fraction": 0.34, "successful_only": False, "loader_workers": 0, "batch_size": 4,
    "cache_dir": None, "policy": "vla", "model": TINY, "max_steps": 4, "lr": 0.0003, "weight_decay": 0.05,
    "warmup_steps": 2, "grad_clip": 1.0, "ema_decay": 0.999, "augment_shift": 4, "val_every": 4, "val_batches": 2,
    "checkpoint_every": 4, "log_every": 1, "seed": 0, "device": "auto", "mixed_precision": True,
    "finetune_from": None, "finetune_mode": "head", "progress": False,
}  # fmt: skip


#: settings that runs saved in the flat layout cannot hold; resuming counts them at their defaults
SETTINGS_ADDED_SINCE_THE_FLAT_LAYOUT = {"data.seed", "train.augment_color", "data.balance"}


def test_a_run_saved_with_the_flat_config_layout_resumes(data: Path, tmp_path: Path) -> None:
    from sim2real.training.config import saved_settings

    run = tmp_path / "run"
    config = _config(data, run, {"train.max_steps": 4})
    assert saved_settings({**FLAT_SAVED_CONFIG, "data_path": str(data), "output_dir": str(run)}) == {
        k: v
        for k, v in config.settings().items()
        if not (k.startswith("model.") and v is None) and k not in SETTINGS_ADDED_SINCE_THE_FLAT_LAYOUT
    }
    train(config)
    flat = {**FLAT_SAVED_CONFIG, "data_path": str(data), "output_dir": str(run)}
    (run / "train_config.json").write_text(json.dumps(flat))
    with pytest.raises(TrainSettingError, match=r"other settings \(train\.lr 0\.0003 -> 0\.001\)"):
        train(_config(data, run, {"train.max_steps": 6, "train.lr": 1e-3}))
    summary = train(_config(data, run, {"train.max_steps": 6, "data.workers": 1}))
    assert summary["steps"] == 6 and len(_losses(run)) == 6
    saved = json.loads((run / "train_config.json").read_text())
    assert saved["data"]["workers"] == 1 and saved["finetune"]["init_from"] is None


def test_successful_only_drops_the_unsuccessful_episodes() -> None:
    from types import SimpleNamespace

    from sim2real.training.run import _select_episodes

    data = SimpleNamespace(num_episodes=10, success=np.array([True, False] * 5))
    config = TrainConfig(data=DataConfig(path="d", val_fraction=0.2), train=OptimConfig(seed=3))
    every_train, every_val = _select_episodes(config, data)
    assert sorted(every_train + every_val) == list(range(10))
    kept_train, kept_val = _select_episodes(replace(config, data=replace(config.data, successful_only=True)), data)
    assert kept_train == [e for e in every_train if e % 2 == 0] and kept_val == [e for e in every_val if e % 2 == 0]
    failed = SimpleNamespace(num_episodes=4, success=np.zeros(4, bool))
    with pytest.raises(TrainingError, match=r"data\.successful_only: no training episode of d is marked successful"):
        _select_episodes(replace(config, data=replace(config.data, successful_only=True)), failed)


def test_a_capped_run_normalizes_with_the_stats_of_its_own_episodes(data: Path, tmp_path: Path) -> None:
    """``data.max_episodes=N`` normalizes and tokenizes as a dataset of N episodes would: the
    stats (action percentiles, state mean/std) of the first N episodes, not of the whole dataset."""
    from sim2real.datasets.training_cache import compute_stats, load_training_data
    from sim2real.policies import load_checkpoint

    cache = load_training_data(data)
    end = int(cache.episode_ends[1])
    expected = compute_stats(cache.state[:end], cache.action[:end])
    assert not np.array_equal(expected["state_mean"], cache.stats["state_mean"])  # the cap changes them
    train(_config(data, tmp_path / "capped", {"train.max_steps": 2, "data.max_episodes": 2, "data.val_fraction": 0.5}))
    saved = load_checkpoint(tmp_path / "capped" / "checkpoints" / "last")
    for key, value in expected.items():
        np.testing.assert_array_equal(saved.stats[key], value)
    np.testing.assert_allclose(saved.tokenizer.p01, expected["action_p01"], rtol=1e-6)
    np.testing.assert_allclose(saved.tokenizer.p99, expected["action_p99"], rtol=1e-6)
    assert cache.stats_of_first(3) is cache.stats


def test_data_seed_draws_the_split_and_the_batches_and_train_seed_the_rest(data: Path, tmp_path: Path) -> None:
    """``data.seed`` alone decides the validation split and the batch order, ``train.seed`` the
    initialisation: runs that share one of them share what it decides, and differ in the rest."""
    from types import SimpleNamespace

    from sim2real.policies import load_checkpoint
    from sim2real.training.run import StepBatchSampler, _select_episodes

    episodes = SimpleNamespace(num_episodes=40, success=np.ones(40, bool))

    def split(train_seed: int, data_seed: int | None) -> tuple[list[int], list[int]]:
        config = TrainConfig(
            data=DataConfig(path="d", val_fraction=0.25, seed=data_seed), train=OptimConfig(seed=train_seed)
        )
        return _select_episodes(config, episodes)

    assert split(0, 5) == split(1, 5) == split(5, None) != split(0, None)
    assert list(StepBatchSampler(100, 8, 5, 0, 3)) == list(StepBatchSampler(100, 8, 5, 0, 3))
    assert list(StepBatchSampler(100, 8, 5, 0, 3)) != list(StepBatchSampler(100, 8, 6, 0, 3))

    def initial_weights(train_seed: int, data_seed: int) -> dict[str, torch.Tensor]:
        out = tmp_path / f"init_{train_seed}_{data_seed}"
        train(_config(data, out, {"train.max_steps": 1, "train.seed": train_seed, "data.seed": data_seed,
                                  "train.lr": 1e-12, "train.warmup_steps": 0}))  # fmt: skip
        return load_checkpoint(out / "checkpoints" / "last").model.state_dict()

    same_init = initial_weights(3, 0), initial_weights(3, 1)
    assert all(torch.allclose(same_init[0][k], same_init[1][k], atol=1e-6) for k in same_init[0])
    other = initial_weights(4, 0)
    assert not all(torch.allclose(same_init[0][k], other[k], atol=1e-6) for k in other)
    with pytest.raises(TrainSettingError, match=r"data\.seed=-1: expected an integer >= 0, or null for train\.seed"):
        train(_config(data, tmp_path / "bad", {"data.seed": -1}))


class _TwoTasks:
    """Episode layout of a dataset whose task 0 has 60 frames in 2 episodes and task 1 has 10 in 2."""

    episode_ends = np.array([30, 60, 65, 70])
    task_index = np.array([0, 0, 1, 1])

    def episode_range(self, episode: int) -> tuple[int, int]:
        return (int(self.episode_ends[episode - 1]) if episode else 0), int(self.episode_ends[episode])


def test_task_balance_gives_every_task_the_same_share_of_the_batches(tmp_path: Path) -> None:
    """``data.balance=task``: a task of short episodes is drawn as often as one of long ones; the
    batches stay a function of (seed, step), so a resumed run draws what an unbroken one would."""
    from sim2real.datasets.torch_dataset import ChunkedEpisodeDataset
    from sim2real.training.run import StepBatchSampler

    dataset = ChunkedEpisodeDataset(_TwoTasks(), [0, 1, 2, 3], history=1, chunk=4)  # type: ignore[arg-type]
    weights = dataset.task_balanced_weights()
    assert (
        weights.shape == (70,) and weights[:60].sum() == pytest.approx(0.5) and weights[60:].sum() == pytest.approx(0.5)
    )

    def short_task_share(sampler: StepBatchSampler) -> float:
        return float(np.mean(np.concatenate([np.asarray(batch) for batch in sampler]) >= 60))

    assert short_task_share(StepBatchSampler(70, 64, 0, 0, 200, weights=weights)) == pytest.approx(0.5, abs=0.02)
    assert short_task_share(StepBatchSampler(70, 64, 0, 0, 200)) == pytest.approx(10 / 70, abs=0.02)
    unbroken = list(StepBatchSampler(70, 64, 0, 0, 20, weights=weights))
    assert list(StepBatchSampler(70, 64, 0, 12, 20, weights=weights)) == unbroken[12:]
    with pytest.raises(TrainSettingError, match=r"data\.balance=episode: expected one of frame, task"):
        train(_config(tmp_path, tmp_path / "bad", {"data.balance": "episode"}))


def test_a_nan_loss_stops_and_names_the_step_and_last_good_checkpoint(data: Path, tmp_path: Path, monkeypatch) -> None:
    import sim2real.policies.training as training

    original = training.train_step

    def nan_at_five(*args, **kwargs):
        if kwargs["step"] == 5:
            raise training.NonFiniteLossError(5)
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "train_step", nan_at_five)
    with pytest.raises(TrainingError, match=r"stopped at step 5.*last good checkpoint .*\(step 4\)"):
        train(_config(data, tmp_path / "nan"))
    assert (tmp_path / "nan" / "checkpoints" / "step_0000004").is_dir()


def test_bad_inputs_are_clear_errors(data: Path, source: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="known model settings"):
        train(_config(data, tmp_path / "a", {"model.width_multiplier": 2}))
    absent = tmp_path / "absent"
    with pytest.raises(TrainSettingError, match=rf"data\.path={re.escape(str(absent))}: no such file or directory"):
        train(_config(absent, tmp_path / "b"))
    cameras = r"the checkpoint uses cameras \['front', 'wrist'\], data\.cameras=\[front\]; use the same"
    with pytest.raises(TrainSettingError, match=rf"finetune\.init_from={re.escape(str(source))}: {cameras}"):
        train(_config(data, tmp_path / "c", {"data.cameras": ("front",), "finetune.init_from": str(source)}))


def test_finetuning_from_a_checkpoint_freezes_the_encoders(data: Path, source: Path, tmp_path: Path) -> None:
    summary = train(_config(data, tmp_path / "ft", {"train.max_steps": 4, "finetune.init_from": str(source)}))
    assert 0 < summary["frozen"]["trainable"] < summary["frozen"]["total"]


def test_finetuning_starts_from_the_weights_of_finetune_init_from(data: Path, source: Path, tmp_path: Path) -> None:
    from sim2real.policies import load_checkpoint
    from sim2real.policies.training import freeze_for_finetune

    config = _config(data, tmp_path / "ft", {"train.max_steps": 4, "finetune.init_from": str(source)})
    train(config)
    tuned = load_checkpoint(tmp_path / "ft" / "checkpoints" / "last").model
    freeze_for_finetune(tuned, config.finetune.mode)
    frozen = [name for name, param in tuned.named_parameters() if not param.requires_grad]
    assert len(frozen) > 10
    start, end = load_checkpoint(source).model.state_dict(), tuned.state_dict()
    assert [name for name in frozen if not torch.equal(end[name], start[name])] == []


def test_sweep_summary_ranks_runs_by_validation_loss(tmp_path: Path) -> None:
    for name, loss in (("run_0", 2.0), ("run_1", 1.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({"lr": 1e-4, "steps": 10, "val": {"loss": loss}}))
    rows = summarize_sweep(tmp_path)
    assert [r["run"] for r in rows] == ["run_1", "run_0"]
    assert "run_1" in (tmp_path / "sweep_summary.md").read_text()
    assert (tmp_path / "sweep_summary.csv").read_text().splitlines()[1].startswith("1,run_1")


def test_torchrun_ddp_with_two_gloo_processes(data: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
               str(root / "train.py"), f"data.path={data}", f"output_dir={out}",
               *[f"model.{k}={v}" for k, v in TINY.items()],
               "train.max_steps=4", "train.checkpoint_every=4", "train.val_every=4", "data.batch_size=2",
               "data.workers=0", "data.val_fraction=0.34", "train.log_every=1", "progress=false"]  # fmt: skip
    subprocess.run(command, cwd=root, check=True, timeout=300, capture_output=True)
    assert (out / "checkpoints" / "last" / "model.safetensors").is_file()
    assert len(_losses(out)) == 4


def test_train_yaml_holds_no_defaults_of_its_own():
    """configs/train.yaml chooses the schema and the model type; every key and default is TrainConfig's,
    and the composed config is a TrainConfig carrying them."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from sim2real.entrypoint import runtime_config
    from sim2real.policies.vla.config import VLAConfig

    configs = Path(__file__).parents[1] / "configs"
    yaml = OmegaConf.to_container(OmegaConf.load(configs / "train.yaml"))
    assert set(yaml) == {"defaults", "hydra"} and yaml["defaults"][1] == {"model": "vla"}
    _load_train_entry_point()
    with initialize_config_dir(str(configs), version_base="1.3"):
        config = runtime_config(compose("train", overrides=["data.path=d", "data.workers=3"]), TrainConfig)
    defaults = TrainConfig(data=DataConfig(path="d", workers=3))
    assert (config.data, config.train, config.finetune) == (defaults.data, defaults.train, defaults.finetune)
    assert (config.output_dir, config.progress, config.policy) == (defaults.output_dir, defaults.progress, "vla")
    model_defaults = VLAConfig()
    for key, value in config.model.items():
        assert key == "type" or value == getattr(model_defaults, key) or value is None, f"model.{key}"
    assert (model_defaults.history, model_defaults.chunk) == (defaults.data.history, defaults.data.chunk)
    assert list(model_defaults.cameras) == list(defaults.data.cameras)


def _load_train_entry_point() -> None:
    """Import train.py (it registers its schema and model groups)."""
    import importlib.util
    import sys

    if "train_entry_point" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location("train_entry_point", Path(__file__).parents[1] / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


def test_loader_workers_default_to_in_process_on_the_cpu():
    import torch

    from sim2real.training.run import loader_workers

    assert loader_workers(None, torch.device("cpu")) == 0
    assert loader_workers(3, torch.device("cpu")) == 3
    assert 1 <= loader_workers(None, torch.device("cuda")) <= 8
    with pytest.raises(TrainingError, match=r"data\.workers=-1"):
        loader_workers(-1, torch.device("cpu"))


def test_a_negative_worker_count_is_refused_before_any_work(tmp_path: Path, monkeypatch) -> None:
    import sim2real.training.run as run_module

    monkeypatch.setattr(run_module, "load_training_data", lambda *a, **k: pytest.fail("data loaded before the check"))
    with pytest.raises(TrainingError, match=r"data\.workers=-2"):
        train(
            TrainConfig(data=DataConfig(path=str(tmp_path / "missing"), workers=-2), output_dir=str(tmp_path / "run"))
        )
