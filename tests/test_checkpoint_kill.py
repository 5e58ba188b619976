"""Checkpoints survive ``kill -9``: a run saving every step is killed at random moments, and
``checkpoints/last`` always loads; the next start removes the work folders the killed saves left."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim2real.policies.checkpoint import load_checkpoint, remove_stale_temporaries

ROOT = Path(__file__).resolve().parents[1]
TINY = {"image_size": 32, "vision_width": 8, "embed_dim": 32, "layers": 1, "heads": 2, "tokens_per_frame": 2,
        "keypoints": 0, "language": "learned", "language_dim": 16, "language_buckets": 64}  # fmt: skip
WORK_FOLDER = re.compile(r"\..+\.(tmp|old)-(\d+)")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sim2real.datasets import create_writer
    from sim2real.datasets.synthetic import synthetic_episode

    path = tmp_path_factory.mktemp("dataset") / "episodes.zarr"
    with create_writer("zarr", path) as writer:
        for index in range(4):
            writer.write(synthetic_episode(index, num_steps=12, image_size=(32, 32)))
    return path


def start(dataset: Path, out: Path, max_steps: int, log: Path) -> subprocess.Popen[bytes]:
    """``train.py`` saving a checkpoint after every step, its output into ``log``."""
    command = [sys.executable, str(ROOT / "train.py"), f"data.path={dataset}", f"output_dir={out}",
               *(f"model.{k}={v}" for k, v in TINY.items()), f"train.max_steps={max_steps}",
               "train.checkpoint_every=1", "train.val_every=100000", "train.val_batches=1", "data.batch_size=2",
               "data.val_fraction=0.25", "data.workers=0", "progress=false"]  # fmt: skip
    with open(log, "wb") as handle:
        return subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)


def last_step(out: Path) -> int:
    link = out / "checkpoints" / "last"
    return int(link.readlink().name.split("_")[1]) if link.is_symlink() else 0


def work_folders(out: Path) -> dict[Path, int]:
    """The save work folders in ``checkpoints/`` and the pid in each name."""
    folder = out / "checkpoints"
    matches = ((p, WORK_FOLDER.fullmatch(p.name)) for p in folder.iterdir()) if folder.is_dir() else ()
    return {p: int(m[2]) for p, m in matches if m}


def wait_for_a_save(process: subprocess.Popen[bytes], out: Path, after: int) -> None:
    """Block until the run has saved a checkpoint past step ``after``."""
    deadline = time.monotonic() + 120
    while last_step(out) <= after:
        assert process.poll() is None, f"training exited with {process.returncode}"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)


def kill_mid_save(process: subprocess.Popen[bytes], out: Path, rng: random.Random) -> None:
    """SIGKILL at a random moment: half the time as soon as a save's temporary folder appears."""
    if rng.random() < 0.5:
        deadline = time.monotonic() + 30
        while process.pid not in work_folders(out).values() and time.monotonic() < deadline:
            time.sleep(0.001)
    else:
        time.sleep(rng.uniform(0.0, 0.5))
    process.kill()
    process.wait()


@pytest.mark.slow
def test_kill_9_during_checkpoint_writes_never_breaks_last(dataset: Path, tmp_path: Path) -> None:
    rng = random.Random(7)
    out = tmp_path / "run"
    killed: set[int] = set()
    for attempt in range(5):
        before = last_step(out)
        process = start(dataset, out, 100000, tmp_path / f"attempt-{attempt}.log")
        wait_for_a_save(process, out, before)
        assert not set(work_folders(out).values()) & killed, "a killed save's folder survived the next start"
        kill_mid_save(process, out, rng)
        killed.add(process.pid)
        assert load_checkpoint(out / "checkpoints" / "last").meta["step"] == last_step(out) > before
    left = len(work_folders(out))
    final = start(dataset, out, last_step(out) + 1, tmp_path / "final.log")
    assert final.wait(timeout=300) == 0, (tmp_path / "final.log").read_text()
    assert work_folders(out) == {}
    if left:
        assert f"removed {left} stale checkpoint" in (tmp_path / "final.log").read_text()


def test_a_save_killed_between_its_renames_gets_the_old_checkpoint_back(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / f".step_0000004.old-{pid}").mkdir()
    (tmp_path / f".step_0000004.old-{pid}" / "model.safetensors").write_bytes(b"old")
    (tmp_path / f".step_0000008.tmp-{pid}").mkdir()
    (tmp_path / ".step_0000012.tmp-1").mkdir()  # pid 1 runs: a save under way
    assert remove_stale_temporaries(tmp_path) == 1
    assert (tmp_path / "step_0000004" / "model.safetensors").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".step_0000012.tmp-1", "step_0000004"]
