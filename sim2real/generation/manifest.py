"""What a run folder records: ``run.json`` (the options), ``shards/shard-<k>.json`` (one record per
written shard), ``manifest.json`` (all of them with totals, written by :func:`build_index`), and
how a rerun resumes: :func:`claim_run` checks the options, :func:`clean_leftovers` deletes what
interrupted writers left, :func:`verify_recorded` checks recorded shards against their checksums."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sim2real
from sim2real.datasets.claims import ShardClaim
from sim2real.datasets.integrity import (
    MANIFEST,
    SHARD_RECORDS_DIR,
    remove_path,
    require_intact,
    write_json_atomic,
)
from sim2real.datasets.registry import RunShards, ShardSlot, shard_format
from sim2real.generation.config import GenerationConfig, GenerationError, writer_options

RUN_FILE = "run.json"


def shard_record_path(root: Path, shard: int) -> Path:
    """Where the record of shard ``shard`` lies: written last, it makes the shard count as written."""
    return root / SHARD_RECORDS_DIR / f"shard-{shard:05d}.json"


def shard_paths(root: Path, slot: ShardSlot, formats: Iterable[str]) -> dict[str, Path]:
    """Each format's path of shard ``slot`` under the run folder ``root``."""
    return {name: root / shard_format(name).shard_path(slot) for name in formats}


def temp_path(path: Path) -> Path:
    """The name a shard's file or folder is written under until it is complete."""
    return path.with_name(f".{path.name}.incomplete")


@dataclass(frozen=True)
class RunState:
    """What a run folder holds: the options it was started with and its recorded shards."""

    root: Path
    config: dict[str, Any]
    generator_version: str

    @property
    def num_shards(self) -> int:
        return max(1, math.ceil(self.config["num_episodes"] / self.config["shard_size"]))

    def locate(self, shard: int) -> dict[str, Path]:
        """Each format's path of shard ``shard``."""
        return shard_paths(self.root, ShardSlot(shard, self.num_shards, self.config["split"]), self.config["formats"])

    def records(self) -> list[dict[str, Any]]:
        """Every recorded shard, by shard number: ``shards/*.json`` and older runs' manifests."""
        merged: dict[int, dict[str, Any]] = {}
        for part in _legacy_manifests(self.root):
            for record in json.loads(part.read_text()).get("shards", {}).values():
                merged[int(record["shard"])] = record
        folder = self.root / SHARD_RECORDS_DIR
        for path in sorted(folder.glob("shard-*.json")) if folder.is_dir() else []:
            record = json.loads(path.read_text())
            merged[int(record["shard"])] = record
        return [merged[k] for k in sorted(merged)]


def _legacy_manifests(root: Path) -> list[Path]:
    """Manifests that held shard records before ``shards/`` (``manifest.json``, ``manifests/``)."""
    parts = [root / MANIFEST] if (root / MANIFEST).is_file() else []
    return parts + (sorted((root / "manifests").glob("manifest-*.json")) if (root / "manifests").is_dir() else [])


def load_run(root: Path) -> RunState:
    """The run recorded in ``root``; GenerationError when the folder holds none."""
    for source in [root / RUN_FILE, *_legacy_manifests(root)]:
        if source.is_file():
            data = json.loads(source.read_text())
            # an option added since the run was started counts at its default, which keeps what came before
            config = {**GenerationConfig().fingerprint(), **data["config"]}
            return RunState(root, config, data.get("generator_version", "?"))
    raise GenerationError(f"{root}: no {RUN_FILE} or {MANIFEST}: not a folder written by generate.py")


def claim_run(root: Path, config: GenerationConfig) -> RunState:
    """Record the run's options in ``run.json`` before any episode, or check them against it
    (writer options count with their defaults filled in)."""
    wanted = {"config": config.fingerprint(), "generator_version": sim2real.__version__}
    if not (root / RUN_FILE).exists() and not _legacy_manifests(root):
        temp = root / f".{RUN_FILE}.tmp-{os.getpid()}"
        temp.write_text(json.dumps(wanted, indent=1, sort_keys=True) + "\n")
        try:
            os.link(temp, root / RUN_FILE)  # atomic create-if-absent: the first of two runs wins
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
    run = load_run(root)
    new = config.fingerprint()
    changed = sorted(k for k in set(run.config) | set(new) if k != "codecs" and run.config.get(k) != new.get(k))
    if writer_options(run.config) != writer_options(new):
        changed = sorted([*changed, "codecs"])
    if changed:
        detail = "; ".join(f"{k}: {run.config.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise GenerationError(
            f"output_dir={root}: holds a run started with other options ({detail}); "
            "use another output_dir, or the same options to resume it"
        )
    return run


def clean_leftovers(root: Path, run: RunState) -> int:
    """Delete temporary shard files that no live process is writing; return how many."""
    shard_of = {temp_path(path): shard for shard in range(run.num_shards) for path in run.locate(shard).values()}
    removed = 0
    for folder in {p.parent for p in run.locate(0).values()}:
        for temp in sorted(folder.glob(".*.incomplete")) if folder.is_dir() else []:
            shard = shard_of.get(temp)
            claim = ShardClaim(root, shard) if shard is not None else None
            if claim is not None and not claim.acquire():
                continue  # its writer is alive
            try:
                remove_path(temp)
                removed += 1
            finally:
                if claim is not None:
                    claim.release()
    folders = {root, root / SHARD_RECORDS_DIR, *(p.parent for p in run.locate(0).values())}
    for temp in sorted(t for folder in folders if folder.is_dir() for t in folder.glob(".*.tmp-*")):
        pid = temp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            remove_path(temp)
            removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_shard(root: Path, run: RunState, shard: int) -> None:
    """Forget shard ``shard``: delete its files and its record, so that the same generate command rewrites it."""
    with ShardClaim(root, shard) as claim:
        if not claim.held:
            holder = claim.holder()
            raise GenerationError(f"shard {shard} of {root} is being written by {holder.describe() if holder else '?'}")
        for path in run.locate(shard).values():
            remove_path(path)
        shard_record_path(root, shard).unlink(missing_ok=True)
        for part in _legacy_manifests(root):
            data = json.loads(part.read_text())
            if str(shard) in data.get("shards", {}):
                del data["shards"][str(shard)]
                if "complete" in data:
                    data["complete"] = False
                write_json_atomic(part, data)


def verify_recorded(run: RunState, shards: range) -> list[dict[str, Any]]:
    """Check the recorded shards in ``shards`` against their checksums; return their records."""
    records = [r for r in run.records() if int(r["shard"]) in shards]
    for record in records:
        require_intact(run.root, record, run.locate)
    return records


def build_index(root: str | Path) -> dict[str, Any]:
    """Merge the shard records into ``manifest.json`` and run each format's finalize hook (its
    dataset-wide files: ``index.json``, RLDS's ``dataset_info.json``, the merged LeRobot dataset)."""
    root = Path(root)
    run = load_run(root)
    shards = run.records()
    config = run.config
    manifest: dict[str, Any] = {"config": config, "generator_version": run.generator_version,
                                "shards": {str(s["shard"]): s for s in shards}}  # fmt: skip
    finished = RunShards(root, config, shards, run.num_shards)
    manifest.update(
        num_shards=run.num_shards, complete=finished.complete,
        num_episodes=sum(len(s["episodes"]) for s in shards),
        successes=sum(s["successes"] for s in shards),
        attempts=sum(s["attempts"] for s in shards),
        steps=sum(s["steps"] for s in shards),
    )  # fmt: skip
    manifest["yield"] = manifest["successes"] / max(manifest["attempts"], 1)
    write_json_atomic(root / MANIFEST, manifest)
    for name in config["formats"]:
        finalize = shard_format(name).finalize
        if finalize is not None:
            finalize(finished, name)
    return manifest


def main(argv: list[str] | None = None) -> None:
    """``sim2real index OUTPUT_DIR``: merge the job manifests of a multi-node run and write the views."""
    import argparse

    parser = argparse.ArgumentParser(prog="sim2real index", description=main.__doc__)
    parser.add_argument("output_dir", type=Path)
    manifest = build_index(parser.parse_args(argv).output_dir)
    state = (
        "complete"
        if manifest["complete"]
        else f"incomplete ({len(manifest['shards'])}/{manifest['num_shards']} shards)"
    )
    print(f"{manifest['num_episodes']} episodes in {len(manifest['shards'])} shards: {state}")
