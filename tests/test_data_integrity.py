"""Data that cannot rot: one writer per shard, checksums that are checked, `sim2real verify`,
a full disk, leftovers of killed runs. The concurrency and kill tests run real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import h5py
import pytest

from sim2real.datasets.claims import ShardClaim, claim_path, current_holder
from sim2real.datasets.integrity import CorruptShardError, verify_dataset
from sim2real.datasets.schema import CorruptDataError
from sim2real.datasets.training_cache import load_training_data
from sim2real.generation import GenerationConfig, GenerationError, generate

ROOT = Path(__file__).resolve().parents[1]
DATA_FORMATS = ("zarr", "rlds", "hdf5")
OPTIONS = {"task": "pick_place", "num_episodes": 6, "shard_size": 2, "seed": 3}


def _config(out: Path, **overrides: object) -> GenerationConfig:
    return replace(GenerationConfig(output_dir=str(out), progress=False, **OPTIONS), **overrides)  # type: ignore[arg-type]


def _command(out: Path, *extra: str) -> list[str]:
    options = [f"{key}={value}" for key, value in OPTIONS.items()]
    return [sys.executable, str(ROOT / "generate.py"), *options, "progress=false", f"output_dir={out}", *extra]


def _data_files(root: Path) -> dict[str, bytes]:
    """Every file of every format folder (not manifests or logs, whose timings differ), by relative name."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for name in DATA_FORMATS
        for path in sorted((root / name).rglob("*"))
        if path.is_file() and path.name != "index.json" and ".sim2real_cache" not in path.parts
    }


def _assert_same_data(root: Path, reference: Path) -> None:
    got, want = _data_files(root), _data_files(reference)
    assert sorted(got) == sorted(want)
    assert [name for name in want if got[name] != want[name]] == []


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "data"
    generate(_config(out))
    return out


@pytest.fixture
def copy(reference: Path, tmp_path: Path) -> Path:
    out = tmp_path / "data"
    shutil.copytree(reference, out)
    return out


# ------------------------------------------------------------------------------ one writer per shard
def test_two_identical_commands_into_one_folder_write_each_shard_once(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    processes = [subprocess.Popen(_command(out, "workers=2"), cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]  # fmt: skip
    outputs = [p.communicate(timeout=240)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    _assert_same_data(out, reference)
    assert verify_dataset(out).ok
    assert json.loads((out / "manifest.json").read_text())["complete"]
    assert not list(out.rglob("*.incomplete")) and not list((out / "claims").iterdir())


def test_overlapping_shard_ranges_in_two_jobs_equal_one_run(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    jobs = [
        subprocess.Popen(_command(out, f"shard_range=[{a},{b}]"), cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for a, b in ((0, 2), (1, 3))
    ]  # fmt: skip
    outputs = [j.communicate(timeout=240)[0] for j in jobs]
    assert [j.returncode for j in jobs] == [0, 0], outputs
    subprocess.run([sys.executable, "-m", "sim2real.cli", "index", str(out)], cwd=ROOT, check=True, capture_output=True)
    _assert_same_data(out, reference)
    assert verify_dataset(out).ok


def test_a_claim_held_by_a_live_process_is_refused_and_names_it(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from sim2real.datasets.claims import "
         "ShardClaim; c = ShardClaim(Path(sys.argv[1]), 4); assert c.acquire(); print('held', flush=True); "
         "time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        claim = ShardClaim(tmp_path, 4)
        assert not claim.acquire()
        found = current_holder(claim_path(tmp_path, 4))
        assert found is not None and found.pid == holder.pid
        assert f"pid {holder.pid} on " in found.describe()
        holder.send_signal(signal.SIGKILL)  # a dead holder's claim is free at once
        holder.wait()
        assert claim.acquire() and current_holder(claim_path(tmp_path, 4)) is not None
        claim.release()
        assert not claim_path(tmp_path, 4).exists()
    finally:
        holder.kill()


# ------------------------------------------------------------------------------ the run's options
def test_options_are_recorded_before_the_first_episode_and_a_rerun_with_others_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "data"
    process = subprocess.Popen(_command(out, "workers=1"), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "zarr").glob(".*.incomplete")):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (out / "run.json").is_file() and not list((out / "shards").glob("*.json"))
    with pytest.raises(GenerationError) as refused:
        generate(_config(out, seed=4, expert_noise=0.03))
    assert "seed: 3 -> 4" in str(refused.value) and "expert_noise: 0.0 -> 0.03" in str(refused.value)
    assert list((out / "zarr").glob(".*.incomplete"))  # a refused run touches nothing


def test_leftovers_of_dead_processes_are_removed_and_counted(
    reference: Path, copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (copy / "zarr" / ".shard-00001.zarr.incomplete").mkdir()
    (copy / "hdf5" / ".shard-00002.hdf5.incomplete").write_bytes(b"partial")
    (copy / "shards" / f".shard-00001.json.tmp-{dead.pid}").write_text("{")
    generate(_config(copy))
    assert "removed 3 temporary file(s)" in capsys.readouterr().err
    assert not list(copy.rglob("*.incomplete")) and not list(copy.rglob(".*.tmp-*"))
    _assert_same_data(copy, reference)


# ------------------------------------------------------------------------------ checksums checked
def _flip(path: Path, offset: int, count: int = 16) -> None:
    data = bytearray(path.read_bytes())
    offset = min(offset, len(data) - count)
    data[offset : offset + count] = bytes(255 - b for b in data[offset : offset + count])
    path.write_bytes(bytes(data))


def _damage(root: Path, name: str, how: str) -> Path:
    """Damage shard 1 of format ``name``: flip 16 bytes inside its data, or truncate it; return the file."""
    if name == "zarr":
        target = sorted((root / "zarr" / "shard-00001.zarr" / "data" / "img_front").glob("c*"))[0]
        offset = len(target.read_bytes()) // 2
    elif name == "hdf5":
        target = root / "hdf5" / "shard-00001.hdf5"
        with h5py.File(target, "r") as file:
            offset = file["data/demo_1/obs/front_image"].id.get_offset() + 1000
    else:
        target = next((root / "rlds").rglob("*.tfrecord-00001-of-*"))
        offset = len(target.read_bytes()) // 2
    if how == "flip":
        _flip(target, offset)
    else:
        os.truncate(target, len(target.read_bytes()) // 3)
    return target


@pytest.mark.parametrize("how", ["flip", "truncate"])
@pytest.mark.parametrize("name", DATA_FORMATS)
def test_a_damaged_shard_is_named_refused_and_repaired(
    reference: Path, copy: Path, name: str, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = _damage(copy, name, how)
    report = verify_dataset(copy)
    assert not report.ok and {p.shard for p in report.problems} == {1}
    assert str(damaged) in report.problems[0].line() or str(damaged.relative_to(copy / name)).split("/")[0] in (
        report.problems[0].line()
    )
    assert "episodes 2-3" in report.problems[0].line()
    with pytest.raises(CorruptShardError, match=r"shard 1, episodes 2-3"):
        generate(_config(copy))  # a resume checks the shards it skips
    format_path = {"zarr": copy / "zarr", "hdf5": copy / "hdf5", "rlds": next((copy / "rlds").rglob("1.0.0"))}[name]
    with pytest.raises(CorruptShardError, match=r"shard-00001|tfrecord-00001"):
        load_training_data(format_path, cache_dir=copy / "cache")  # training decodes nothing unverified
    assert not (copy / "cache").exists()
    repaired = verify_dataset(copy, repair=True)
    assert repaired.repaired == [1]
    generate(_config(copy))
    _assert_same_data(copy, reference)
    assert verify_dataset(copy).ok


def test_verify_command_prints_one_line_per_bad_shard_and_exits_1(copy: Path) -> None:
    _damage(copy, "zarr", "flip")
    _damage(copy, "hdf5", "truncate")
    result = subprocess.run([sys.executable, "-m", "sim2real.cli", "verify", str(copy / "zarr"), "--no-progress"],
                            cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and "Traceback" not in result.stderr
    zarr_line = next(line for line in lines if "shard-00001.zarr" in line)
    hdf5_line = next(line for line in lines if "shard-00001.hdf5" in line)
    assert "(shard 1, episodes 2-3): data/img_front/c" in zarr_line and "CRC-32C" in zarr_line
    assert "(shard 1, episodes 2-3): truncated: " in hdf5_line
    assert lines[2].endswith("1 bad shard(s)")


def test_a_truncated_hdf5_file_read_directly_names_the_file(copy: Path) -> None:
    from sim2real.datasets import open_dataset

    path = copy / "hdf5" / "shard-00001.hdf5"
    os.truncate(path, path.stat().st_size // 3)
    with pytest.raises(CorruptDataError, match=rf"{path}: cannot be read \(OSError"):
        open_dataset(path).episode(1)


# ------------------------------------------------------------------------------ a full disk
@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip()})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_cleanly_and_a_resume_after_freeing_space_completes(
    reference: Path, small_disk: Path
) -> None:
    out = small_disk / "data"
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (6 << 20))  # the run needs ~47 MB: it fills the disk on shard 1 or 2
    result = subprocess.run(_command(out, "workers=1"), cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 1, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if "no space left on device" in line]
    assert lines and str(out) in lines[0]
    assert not list(out.rglob("*.incomplete")) and not list(out.rglob(".*.tmp-*"))
    assert list((out / "shards").glob("*.json"))  # what was finished stays
    ballast.unlink()
    subprocess.run(["mount", "-o", "remount,size=96m", str(small_disk)], check=True)  # make room
    subprocess.run(_command(out, "workers=1"), cwd=ROOT, check=True, capture_output=True, timeout=240)
    _assert_same_data(out, reference)
    assert verify_dataset(out).ok


def test_inspect_refuses_a_damaged_dataset_in_one_line(copy: Path) -> None:
    damaged = _damage(copy, "zarr", "flip")
    result = subprocess.run([sys.executable, "-m", "sim2real.cli", "inspect", str(copy / "zarr"), "-o",
                             str(copy / "inspect")], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert (
        f"shard-00001.zarr (shard 1, episodes 2-3): {damaged.relative_to(copy / 'zarr' / 'shard-00001.zarr')}"
        in (lines[0])
    )


def test_the_manifest_counts_episodes_successes_and_yield(reference: Path) -> None:
    manifest = json.loads((reference / "manifest.json").read_text())
    records = [json.loads(p.read_text()) for p in sorted((reference / "shards").glob("shard-*.json"))]
    assert manifest["num_episodes"] == sum(len(r["episodes"]) for r in records) == OPTIONS["num_episodes"]
    assert manifest["successes"] == sum(r["successes"] for r in records)
    assert manifest["attempts"] == sum(r["attempts"] for r in records) >= manifest["num_episodes"]
    assert manifest["yield"] == pytest.approx(manifest["successes"] / manifest["attempts"])
