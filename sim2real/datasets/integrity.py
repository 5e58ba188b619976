"""Checksums of dataset shards and their verification: ``sim2real verify PATH [--repair]``.

Each shard record of a generation run (``shards/shard-<k>.json``, merged into ``manifest.json``)
holds, per format, the CRC-32C of the shard (``crc32c``: over relative names and bytes of its
files, sorted), of each of its files (``files_crc32c``: a Zarr store is a folder of chunk files),
and its size in bytes. :func:`verify_shard` checks a shard's files against them and against the
format's own structure (the episode count, TFRecord framing); :func:`verify_dataset` does it for
every shard and, with ``repair``, deletes bad shards so that the same generate command writes
exactly them again.

CRC-32C is hardware-accelerated (SSE 4.2): reading the files from the page cache costs more
than the checksum itself.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google_crc32c

from sim2real.datasets.schema import CorruptDataError, DatasetError
from sim2real.errors import storage_error

MANIFEST = "manifest.json"
SHARD_RECORDS_DIR = "shards"
_BLOCK = 1 << 22


class CorruptShardError(CorruptDataError):
    """A shard whose files differ from their recorded checksums or cannot be read as their format."""


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def _relative_name(file: Path, path: Path) -> str:
    return file.name if file == path else file.relative_to(path).as_posix()


def _crc_file(file: Path, into: Iterable[Any] = ()) -> tuple[str, int]:
    """CRC-32C (8 hex digits) and size (bytes) of one file; each block also updates ``into``."""
    digest = google_crc32c.Checksum()
    others = list(into)
    size = 0
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
            for other in others:
                other.update(block)
            size += len(block)
    return digest.hexdigest().decode(), size


def checksums(path: Path) -> tuple[str, dict[str, str], int]:
    """(CRC-32C of the whole shard, CRC-32C per file by relative name, total bytes) of a file or folder.

    The whole-shard digest covers each file's relative name then its bytes, in sorted order."""
    whole = google_crc32c.Checksum()
    per_file: dict[str, str] = {}
    total = 0
    for file in _files(path):
        name = _relative_name(file, path)
        whole.update(name.encode())
        per_file[name], size = _crc_file(file, into=[whole])
        total += size
    return whole.hexdigest().decode(), per_file, total


def checksum(path: Path) -> str:
    """CRC-32C (hex) of a file, or of a folder's files (relative names and bytes, sorted)."""
    return checksums(path)[0]


@dataclass(frozen=True)
class ShardProblem:
    """What is wrong with one format's file of one shard."""

    path: Path
    shard: int
    first_episode: int
    num_episodes: int
    problem: str

    def line(self) -> str:
        last = self.first_episode + self.num_episodes - 1
        return f"{self.path} (shard {self.shard}, episodes {self.first_episode}-{last}): {self.problem}"


def _compare_files(path: Path, recorded: dict[str, Any]) -> str | None:
    """Why ``path`` differs from its record, or None when its bytes match."""
    if not path.exists():
        return "missing"
    whole, per_file, size = checksums(path)
    expected = recorded.get("files_crc32c")
    if expected:
        missing = sorted(set(expected) - set(per_file))
        if missing:
            return f"file {missing[0]} is missing" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        extra = sorted(set(per_file) - set(expected))
        if extra:
            return f"unexpected file {extra[0]}"
        for name, crc in expected.items():
            if per_file[name] != crc:
                return f"{name}: CRC-32C {per_file[name]}, the manifest says {crc}"
    if size < int(recorded.get("bytes", size)):
        return f"truncated: {size} bytes, the manifest says {recorded['bytes']}"
    if whole != recorded["crc32c"]:
        return f"CRC-32C {whole}, the manifest says {recorded['crc32c']}"
    return None


def structure_problem(format_name: str, path: Path, num_episodes: int) -> str | None:
    """Why ``path`` is not a readable ``format_name`` shard of ``num_episodes`` episodes, or None."""
    try:
        count = _episode_count(format_name, path)
    except Exception as error:  # any library's complaint about the file is the finding
        return f"unreadable as {format_name} ({type(error).__name__}: {error})".replace("\n", " ")
    if count != num_episodes:
        return f"holds {count} episodes, the manifest says {num_episodes}"
    return None


def _episode_count(format_name: str, path: Path) -> int:
    from sim2real.datasets.registry import shard_format

    return shard_format(format_name).episode_count(path)


def verify_shard(root: Path, record: dict[str, Any], locate: Callable[[int], dict[str, Path]]) -> list[ShardProblem]:
    """Problems of every format's file of the shard ``record`` (an empty list: all good).

    ``locate(shard)`` gives the shard's path per format under ``root``."""
    shard = int(record["shard"])
    first = int(record["episodes"][0]["index"]) if record["episodes"] else 0
    count = len(record["episodes"])
    problems = []
    for name, recorded in record.get("files", {}).items():
        path = locate(shard)[name]
        problem = _compare_files(path, recorded) or structure_problem(name, path, count)
        if problem is not None:
            problems.append(ShardProblem(path, shard, first, count, problem))
    return problems


def require_intact(root: Path, record: dict[str, Any], locate: Callable[[int], dict[str, Path]]) -> None:
    """Raise :class:`CorruptShardError` naming the file when a shard differs from its record."""
    problems = verify_shard(root, record, locate)
    if problems:
        raise CorruptShardError(
            f"{problems[0].line()}; run `sim2real verify {root} --repair`, then the same generate command"
        )


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_dataset`."""

    root: Path
    shards: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[ShardProblem] = field(default_factory=list)
    repaired: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        rate = self.bytes / 1e6 / max(self.seconds, 1e-9)
        head = f"{self.root}: {self.shards} shards, {self.bytes / 1e6:.1f} MB in {self.seconds:.2f} s ({rate:.0f} MB/s)"
        if self.ok:
            return f"{head}: all intact"
        bad = len({p.shard for p in self.problems})
        tail = f"; removed shards {self.repaired}: rerun the same generate command" if self.repaired else ""
        return f"{head}: {bad} bad shard(s){tail}"


def find_run_root(path: Path) -> Path:
    """The generation run folder (with ``manifest.json`` or ``shards/``) at or above ``path``."""
    path = path.resolve()
    for candidate in [path, *path.parents][:5]:
        if (candidate / MANIFEST).is_file() or (candidate / SHARD_RECORDS_DIR).is_dir():
            return candidate
    raise DatasetError(f"{path}: no {MANIFEST} or {SHARD_RECORDS_DIR}/ here or in the 4 folders above; "
                       "expected a folder written by generate.py")  # fmt: skip


def verify_recorded_files(path: Path) -> int:
    """Check every recorded shard file at or under ``path`` against its checksums; return how many.

    ``path`` is a dataset a generation run wrote (its folder, a format folder, one shard); a
    dataset without a run record (a foreign one) has nothing to check here and gives 0.
    Raises :class:`CorruptShardError` naming the first bad file."""
    from sim2real.generation import GenerationError, load_run

    try:
        run = load_run(find_run_root(path))
        records = run.records()
    except (DatasetError, GenerationError, KeyError, ValueError):
        return 0
    target = path.resolve()
    checked = 0
    for record in records:
        for name, recorded in record.get("files", {}).items():
            file = run.locate(int(record["shard"]))[name].resolve()
            if file != target and target not in file.parents:
                continue
            problem = _compare_files(file, recorded)
            if problem is not None:
                first = int(record["episodes"][0]["index"]) if record["episodes"] else 0
                bad = ShardProblem(file, int(record["shard"]), first, len(record["episodes"]), problem)
                raise CorruptShardError(f"{bad.line()}; run `sim2real verify {run.root} --repair`, then the "
                                        "generate command that wrote it")  # fmt: skip
            checked += 1
    return checked


def verify_dataset(path: Path, repair: bool = False, progress: bool = False) -> VerifyReport:
    """Check every recorded shard of the run at or above ``path``; ``repair`` deletes the bad ones."""
    from tqdm import tqdm

    from sim2real.generation import load_run, remove_shard

    root = find_run_root(path)
    run = load_run(root)
    report = VerifyReport(root)
    start = time.perf_counter()
    for record in tqdm(run.records(), desc="verify", unit="shard", disable=not progress):
        report.shards += 1
        report.bytes += sum(int(f.get("bytes", 0)) for f in record.get("files", {}).values())
        problems = verify_shard(root, record, run.locate)
        report.problems += problems
        if problems and repair:
            remove_shard(root, run, int(record["shard"]))
            report.repaired.append(int(record["shard"]))
    report.seconds = time.perf_counter() - start
    return report


def iter_lines(report: VerifyReport) -> Iterator[str]:
    """One line per bad file, then the summary."""
    for problem in report.problems:
        yield problem.line()
    yield report.summary()


def main(argv: list[str] | None = None) -> None:
    """``sim2real verify PATH [--repair]``: check every shard against the manifest and its format."""
    import argparse

    parser = argparse.ArgumentParser(prog="sim2real verify", description=main.__doc__)
    parser.add_argument("path", type=Path, help="a generate.py output_dir, or a format folder inside it")
    parser.add_argument("--repair", action="store_true", help="delete bad shards so that generate rewrites them")
    parser.add_argument("--json", action="store_true", help="print the problems as JSON")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    report = verify_dataset(args.path, repair=args.repair, progress=not args.no_progress)
    if args.json:
        print(json.dumps({"root": str(report.root), "ok": report.ok, "shards": report.shards,
                          "problems": [p.line() for p in report.problems], "repaired": report.repaired}))  # fmt: skip
    else:
        for line in iter_lines(report):
            print(line)
    raise SystemExit(0 if report.ok else 1)


def remove_path(path: Path) -> None:
    """Delete a file or a folder, if present."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file private to this process, then rename."""
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def _holds(path: Path, text: str) -> bool:
    """Whether the file at ``path`` exists and its content is exactly ``text``."""
    try:
        return path.is_file() and path.read_text() == text
    except (OSError, UnicodeDecodeError):
        return False


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file private to this process, then rename;
    a full or read-only disk raises :class:`~sim2real.errors.StorageError` naming ``path``. A file
    that already holds ``text`` is left untouched, so a rerun that changes nothing keeps the
    modification times that caches of the folder are keyed on."""
    if _holds(path, text):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temp.write_text(text)
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        converted = storage_error(error, path)
        if converted is not None:
            raise converted from None
        raise
