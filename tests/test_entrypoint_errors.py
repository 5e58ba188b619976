"""The entry points refuse a bad setting in one line on stderr, with exit code 2 (1 for corrupt
data or storage), no traceback, no folder left behind and the dataset unopened."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {"image_size": 32, "vision_width": 8, "embed_dim": 32, "layers": 1, "heads": 2, "tokens_per_frame": 2,
        "keypoints": 0, "language": "learned", "language_dim": 16, "language_buckets": 64}  # fmt: skip
TINY_TRAIN = [*(f"model.{k}={v}" for k, v in TINY.items()), "train.max_steps=2", "train.checkpoint_every=2",
              "train.val_every=2", "train.val_batches=1", "data.batch_size=2", "data.val_fraction=0.25",
              "data.workers=0", "progress=false"]  # fmt: skip


def run(
    script: str, *overrides: str, env: dict[str, str] | None = None, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``python <script> <overrides>`` from the repository root, after ``prefix`` (a command wrapper)."""
    command = [*prefix, sys.executable, str(ROOT / script), *overrides]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def assert_refused(result: subprocess.CompletedProcess[str], code: int, *named: str) -> str:
    """Exit ``code``, one line on stderr naming each of ``named``, no traceback; returns the line."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "Error executing job" not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert all(name in lines[0] for name in named), lines[0]
    assert result.returncode == code, output
    return lines[0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-episode Zarr store of 32x32 synthetic frames, alone in its folder."""
    from sim2real.datasets import create_writer
    from sim2real.datasets.synthetic import synthetic_episode

    path = tmp_path_factory.mktemp("dataset") / "episodes.zarr"
    with create_writer("zarr", path) as writer:
        for index in range(4):
            writer.write(synthetic_episode(index, num_steps=12, image_size=(32, 32)))
    return path


def assert_unopened(dataset: Path) -> None:
    assert not list(dataset.parent.rglob(".sim2real_cache")), "the dataset was opened"


def read_only(folder: Path) -> list[str]:
    """A command prefix under which ``folder`` cannot be written: its mode for a normal user; for
    root (whom modes do not stop) a read-only bind mount in a private mount namespace."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"',
              str(folder)]  # fmt: skip
    if shutil.which("unshare") is None or subprocess.run([*prefix, "true"], capture_output=True).returncode:
        pytest.skip("running as root without mount namespaces: no folder can be made unwritable")
    return prefix


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("train.max_steps=0", ("train.max_steps=0", ">= 1")),
        ("train.lr=-1", ("train.lr=-1", "> 0")),
        ("train.augment_color=1.5", ("train.augment_color=1.5", "[0, 1)")),
        ("data.balance=episode", ("data.balance=episode", "frame, task")),
        ("model.embed_dim=7", ("model.embed_dim=7", "heads")),
    ],
)
def test_a_bad_train_setting_is_one_line_before_the_dataset_opens(
    dataset: Path, tmp_path: Path, override: str, named: tuple[str, ...]
) -> None:
    out = tmp_path / "run"
    result = run("train.py", f"data.path={dataset}", f"output_dir={out}", *TINY_TRAIN, override)
    assert_refused(result, 2, *named)
    assert not out.exists()
    assert_unopened(dataset)


def test_a_missing_dataset_is_named(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "run"
    result = run("train.py", f"data.path={tmp_path / 'absent'}", f"output_dir={out}")
    assert_refused(result, 2, "data.path=", str(tmp_path / "absent"))
    assert not (tmp_path / "deep").exists()


@pytest.mark.parametrize("script", ["train.py", "generate.py", "evaluate.py"])
def test_an_output_dir_that_is_a_file_is_named(dataset: Path, tmp_path: Path, script: str) -> None:
    file = tmp_path / "taken"
    file.write_text("keep me")
    result = run(script, f"output_dir={file}", *([f"data.path={dataset}"] if script == "train.py" else []))
    assert_refused(result, 2, f"output_dir={file}", "is a file")
    assert file.read_text() == "keep me" and sorted(tmp_path.iterdir()) == [file]
    assert_unopened(dataset)


def test_an_unwritable_output_dir_is_named(dataset: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    prefix = read_only(locked)
    try:
        result = run("train.py", f"data.path={dataset}", f"output_dir={locked / 'run'}", prefix=prefix)
    finally:
        locked.chmod(0o755)
    assert_refused(result, 2, f"output_dir={locked / 'run'}", str(locked))
    assert not list(locked.iterdir())
    assert_unopened(dataset)


def test_a_bad_generate_option_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = run("generate.py", "workers=0", "num_episodes=1", f"output_dir={out}")
    assert_refused(result, 2, "workers", "0")
    assert not out.exists()


def test_truncated_weights_are_named_before_any_rollout(tmp_path: Path) -> None:
    from sim2real.policies.checkpoint import MODEL_FILE, save_checkpoint
    from sim2real.policies.synthetic import tiny_config
    from sim2real.policies.tokenizer import ActionTokenizer
    from sim2real.policies.vla import VLAModel

    stats = {"action_p01": [-0.05] * 6 + [0.0], "action_p99": [0.05] * 6 + [1.0]}
    checkpoint = save_checkpoint(tmp_path / "ckpt", VLAModel(tiny_config()), ActionTokenizer.from_stats(stats), stats)
    weights = checkpoint / MODEL_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    out = tmp_path / "eval"
    result = run("evaluate.py", "policy=vla", f"policy.checkpoint={checkpoint}", "tasks=[push]",
                 "episodes_per_variant=1", f"output_dir={out}")  # fmt: skip
    assert_refused(result, 1, str(weights), "truncated")
    assert not out.exists()


def test_a_read_only_dataset_without_data_cache_dir_is_told_to_set_it(dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "readonly" / dataset.name
    shutil.copytree(dataset, copy)
    prefix = read_only(copy.parent)
    try:
        result = run("train.py", f"data.path={copy}", f"output_dir={tmp_path / 'run'}", *TINY_TRAIN, prefix=prefix)
    finally:
        copy.parent.chmod(0o755)
    assert_refused(result, 1, "read-only" if prefix else "permission denied", "data.cache_dir")


def test_a_read_only_dataset_trains_with_data_cache_dir(dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "readonly" / dataset.name
    shutil.copytree(dataset, copy)
    prefix = read_only(copy.parent)
    cache = tmp_path / "cache"
    try:
        result = run("train.py", f"data.path={copy}", f"output_dir={tmp_path / 'run'}", f"data.cache_dir={cache}",
                     *TINY_TRAIN, prefix=prefix)  # fmt: skip
    finally:
        copy.parent.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "checkpoints" / "last" / "model.safetensors").is_file()
    assert len(list(cache.glob("*/meta.json"))) == 1 and not list(copy.parent.rglob(".sim2real_cache"))


def test_hydra_full_error_shows_the_traceback(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run("train.py", f"data.path={dataset}", f"output_dir={out}", "train.max_steps=0",
                 env={"HYDRA_FULL_ERROR": "1"})  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "train.max_steps=0" in result.stderr.splitlines()[-1]
    assert not out.exists()
