"""Checksums, shard comparison and `sim2real verify` on a small hand-built run (synthetic episodes,
no simulator): exact CRC-32C values, every kind of difference named, repair and the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import google_crc32c
import pytest

from sim2real.datasets import create_writer
from sim2real.datasets.integrity import (
    CorruptShardError,
    ShardProblem,
    VerifyReport,
    _compare_files,
    checksum,
    checksums,
    find_run_root,
    iter_lines,
    main,
    remove_path,
    require_intact,
    structure_problem,
    verify_dataset,
    verify_recorded_files,
    verify_shard,
)
from sim2real.datasets.schema import DatasetError
from sim2real.datasets.synthetic import synthetic_episode
from sim2real.generation import load_run

SHARD_SIZE = 2


def _crc(data: bytes) -> str:
    return google_crc32c.Checksum(data).hexdigest().decode()


def _write(format_name: str, path: Path, indices: range) -> None:
    with create_writer(format_name, path) as writer:
        for index in indices:
            writer.write(synthetic_episode(index, num_steps=3, image_size=(8, 8)))


def _record(path: Path) -> dict:
    whole, per_file, size = checksums(path)
    record = {"path": str(path), "crc32c": whole, "bytes": size}
    if path.is_dir():
        record["files_crc32c"] = per_file
    return record


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run of 2 shards x 2 episodes in zarr and hdf5, recorded like generate.py records it."""
    root = tmp_path / "run"
    root.mkdir()
    config = {"num_episodes": 4, "shard_size": SHARD_SIZE, "split": "train", "formats": ["zarr", "hdf5"]}
    (root / "run.json").write_text(json.dumps({"config": config, "generator_version": "test"}))
    state = load_run(root)
    (root / "shards").mkdir()
    for shard in range(2):
        paths = state.locate(shard)
        indices = range(shard * SHARD_SIZE, (shard + 1) * SHARD_SIZE)
        files = {}
        for name in ("zarr", "hdf5"):
            paths[name].parent.mkdir(parents=True, exist_ok=True)
            _write(name, paths[name], indices)
            files[name] = _record(paths[name])
        record = {"shard": shard, "episodes": [{"index": i} for i in indices], "files": files}
        (root / "shards" / f"shard-{shard:05d}.json").write_text(json.dumps(record))
    return root


def test_checksums_of_a_folder_cover_sorted_names_then_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    (folder / "sub").mkdir(parents=True)
    big = bytes(range(256)) * (1 << 14) + b"tail"  # more than one 4 MiB read block
    (folder / "sub" / "b.bin").write_bytes(big)
    (folder / "a.txt").write_bytes(b"hello")
    whole, per_file, size = checksums(folder)
    assert per_file == {"a.txt": _crc(b"hello"), "sub/b.bin": _crc(big)}
    assert size == 5 + len(big)
    assert whole == _crc(b"a.txt" + b"hello" + b"sub/b.bin" + big)
    assert checksum(folder) == whole
    single = folder / "a.txt"
    assert checksums(single) == (_crc(b"a.txt" + b"hello"), {"a.txt": _crc(b"hello")}, 5)
    assert checksum(single) == _crc(b"a.txt" + b"hello")


def test_compare_files_names_each_kind_of_difference(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / name).write_bytes(name.encode() * 10)
    recorded = _record(folder)
    assert _compare_files(folder, recorded) is None
    assert _compare_files(tmp_path / "nothing", recorded) == "missing"
    (folder / "b").write_bytes(b"B" * 10)
    assert _compare_files(folder, recorded) == (
        f"b: CRC-32C {_crc(b'B' * 10)}, the manifest says {recorded['files_crc32c']['b']}"
    )
    (folder / "b").unlink()
    assert _compare_files(folder, recorded) == "file b is missing"
    (folder / "c").unlink()
    assert _compare_files(folder, recorded) == "file b is missing (and 1 more)"
    for name in ("b", "c"):
        (folder / name).write_bytes(name.encode() * 10)
    (folder / "d").write_bytes(b"")
    (folder / "e").write_bytes(b"")
    assert _compare_files(folder, recorded) == "unexpected file d"
    single = tmp_path / "one.bin"
    single.write_bytes(b"0123456789")
    one = _record(single)
    single.write_bytes(b"01234")
    assert _compare_files(single, one) == f"truncated: 5 bytes, the manifest says {one['bytes']}"
    single.write_bytes(b"0123456789X")  # longer: not truncated, but the CRC differs
    assert _compare_files(single, one) == f"CRC-32C {checksum(single)}, the manifest says {one['crc32c']}"
    single.write_bytes(b"0123456789")
    assert _compare_files(single, {"crc32c": one["crc32c"]}) is None  # no size recorded
    assert _compare_files(folder, {"crc32c": "0", "bytes": 1}) == f"CRC-32C {checksum(folder)}, the manifest says 0"


def test_structure_problem_reads_each_format(run: Path) -> None:
    paths = load_run(run).locate(0)
    for name in ("zarr", "hdf5"):
        assert structure_problem(name, paths[name], 2) is None
        assert structure_problem(name, paths[name], 3) == "holds 2 episodes, the manifest says 3"
    bad = run / "bad.hdf5"
    bad.write_bytes(b"not\nhdf5")
    problem = structure_problem("hdf5", bad, 2)
    assert problem is not None
    assert re.match(r"unreadable as hdf5 \(\w+Error: ", problem)
    assert "\n" not in problem


def test_an_intact_run_verifies_and_the_report_says_so(run: Path, capsys) -> None:
    state = load_run(run)
    records = state.records()
    assert [verify_shard(run, r, state.locate) for r in records] == [[], []]
    require_intact(run, records[1], state.locate)
    report = verify_dataset(run / "zarr")
    assert report.root == run.resolve()
    assert report.ok
    assert report.shards == 2
    assert report.bytes == sum(f["bytes"] for r in records for f in r["files"].values())
    assert report.problems == []
    assert report.repaired == []
    assert report.summary().endswith(": all intact")
    assert f"{report.root}: 2 shards, " in report.summary()
    assert verify_recorded_files(run) == 4
    assert verify_recorded_files(run / "zarr") == 2
    assert verify_recorded_files(state.locate(1)["hdf5"]) == 1
    with pytest.raises(SystemExit) as exit_info:
        main([str(run), "--no-progress"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip().endswith("all intact")
    with pytest.raises(SystemExit) as exit_info:
        main([str(run), "--no-progress", "--json"])
    assert exit_info.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {"root": str(run.resolve()), "ok": True, "shards": 2, "problems": [], "repaired": []}


def test_a_damaged_shard_is_named_refused_and_repaired(run: Path, capsys) -> None:
    state = load_run(run)
    hdf5 = state.locate(1)["hdf5"]
    data = bytearray(hdf5.read_bytes())
    data[len(data) // 2] ^= 0xFF
    hdf5.write_bytes(bytes(data))
    problems = verify_shard(run, state.records()[1], state.locate)
    assert [(p.path, p.shard, p.first_episode, p.num_episodes) for p in problems] == [(hdf5, 1, 2, 2)]
    line = problems[0].line()
    assert line.startswith(f"{hdf5} (shard 1, episodes 2-3): CRC-32C ")
    with pytest.raises(CorruptShardError, match=r"\(shard 1, episodes 2-3\).*run `sim2real verify .* --repair`"):
        require_intact(run, state.records()[1], state.locate)
    with pytest.raises(CorruptShardError) as error:
        verify_recorded_files(run)
    assert str(error.value) == (
        f"{line}; run `sim2real verify {run.resolve()} --repair`, then the generate command that wrote it"
    )
    kept = verify_dataset(run)  # no repair unless asked
    assert kept.repaired == []
    assert hdf5.exists()
    assert capsys.readouterr().err == ""  # no progress bar unless asked
    assert verify_recorded_files(run / "zarr") == 2  # the zarr copy of every shard is intact
    with pytest.raises(SystemExit) as exit_info:
        main([str(run), "--no-progress"])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == line
    assert out[1].endswith(": 1 bad shard(s)")
    with pytest.raises(SystemExit):
        main([str(run)])
    assert "verify" in capsys.readouterr().err  # the progress bar
    report = verify_dataset(run, repair=True)
    assert not report.ok
    assert report.repaired == [1]
    assert report.summary().endswith(": 1 bad shard(s); removed shards [1]: rerun the same generate command")
    assert list(iter_lines(report)) == [line, report.summary()]
    assert not hdf5.exists()
    assert not state.locate(1)["zarr"].exists()
    assert not (run / "shards" / "shard-00001.json").exists()
    assert state.locate(0)["zarr"].exists()
    assert 0 <= report.seconds < 60
    after = verify_dataset(run)
    assert after.ok
    assert after.shards == 1


def test_every_bad_shard_is_reported_and_the_command_repairs(run: Path, capsys) -> None:
    state = load_run(run)
    for shard in (0, 1):
        remove_path(state.locate(shard)["hdf5"])
    report = verify_dataset(run)
    assert [(p.shard, p.problem) for p in report.problems] == [(0, "missing"), (1, "missing")]
    with pytest.raises(SystemExit) as exit_info:
        main([str(run), "--no-progress", "--repair", "--json"])
    assert exit_info.value.code == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["ok"], data["shards"], data["repaired"]) == (False, 2, [0, 1])
    assert len(data["problems"]) == 2
    assert not (run / "shards" / "shard-00000.json").exists()


def test_an_empty_shard_record_and_a_missing_file(run: Path) -> None:
    state = load_run(run)
    remove_path(state.locate(0)["zarr"])
    problems = verify_shard(run, state.records()[0], state.locate)
    assert [p.problem for p in problems] == ["missing"]
    empty = {"shard": 0, "episodes": [], "files": {}}
    assert verify_shard(run, empty, state.locate) == []
    assert verify_shard(run, {"shard": 0, "episodes": []}, state.locate) == []
    report = VerifyReport(run, problems=[ShardProblem(run / "x", 4, 6, 3, "missing")])
    assert report.problems[0].line() == f"{run / 'x'} (shard 4, episodes 6-8): missing"


def test_find_run_root_looks_four_folders_up(run: Path, tmp_path: Path) -> None:
    deep = run / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    assert find_run_root(deep) == run.resolve()
    assert find_run_root(run / "a" / "b") == run.resolve()
    no_run = r"no manifest\.json or shards/ here or in the 4 folders above; expected a folder written by generate\.py$"
    with pytest.raises(DatasetError, match=no_run):
        find_run_root(deep / "e")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "manifest.json").write_text("{}")
    assert find_run_root(legacy) == legacy.resolve()
    foreign = tmp_path / "foreign.zarr"
    _write("zarr", foreign, range(1))
    assert verify_recorded_files(foreign) == 0


def test_remove_path_handles_files_folders_links_and_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    (folder / "x").mkdir(parents=True)
    file = tmp_path / "f"
    file.write_text("x")
    link = tmp_path / "l"
    link.symlink_to(tmp_path / "gone")
    for path in (folder, file, link, tmp_path / "never"):
        remove_path(path)
        assert not path.exists()
        assert not path.is_symlink()


def test_the_summary_gives_size_time_and_rate(tmp_path: Path) -> None:
    report = VerifyReport(tmp_path, shards=2, bytes=3_000_000, seconds=0.5)
    assert report.summary() == f"{tmp_path}: 2 shards, 3.0 MB in 0.50 s (6 MB/s): all intact"
    report = VerifyReport(tmp_path, shards=3, bytes=12_000_000, seconds=4.0, repaired=[2])
    report.problems.append(ShardProblem(tmp_path / "x", 2, 4, 2, "missing"))
    assert report.summary() == (
        f"{tmp_path}: 3 shards, 12.0 MB in 4.00 s (3 MB/s): 1 bad shard(s); removed shards [2]: "
        "rerun the same generate command"
    )
