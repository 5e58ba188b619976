"""Shard claims in one process: file names, holder records, lock and release semantics."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from sim2real.datasets import claims
from sim2real.datasets.claims import Holder, ShardClaim, _same_file, claim_path, current_holder


def test_claim_path_is_zero_padded_under_claims(tmp_path: Path) -> None:
    assert claim_path(tmp_path, 3) == tmp_path / "claims" / "shard-00003.claim"
    assert claim_path(tmp_path, 123456).name == "shard-123456.claim"


def test_describe_names_pid_host_and_local_start_time() -> None:
    since = time.mktime((2024, 5, 6, 7, 8, 9, 0, 0, -1))
    assert Holder(42, "node-a", since).describe() == "pid 42 on node-a since 2024-05-06 07:08:09"


def test_acquire_records_this_process_and_a_second_claim_is_refused(tmp_path: Path) -> None:
    first, second = ShardClaim(tmp_path, 7), ShardClaim(tmp_path, 7)
    assert not first.held
    assert current_holder(first.path) is None
    assert first.acquire()
    assert first.held
    recorded = json.loads(first.path.read_bytes())
    assert recorded["pid"] == os.getpid()
    assert recorded["host"] == socket.gethostname()
    assert abs(recorded["since"] - time.time()) < 60
    holder = second.holder()
    assert holder is not None
    assert (holder.pid, holder.host) == (os.getpid(), socket.gethostname())
    assert not second.acquire()
    assert not second.held
    assert ShardClaim(tmp_path, 8).acquire()  # another shard is independent
    first.release()
    assert not first.held
    assert not first.path.exists()
    assert current_holder(first.path) is None
    assert second.acquire()
    second.release(remove=False)
    assert second.path.exists()
    assert current_holder(second.path) is None
    second.release()  # releasing twice is a no-op


def test_context_manager_keeps_the_claim_file_when_the_body_fails(tmp_path: Path) -> None:
    with ShardClaim(tmp_path, 1) as claim:
        assert claim.held
    assert not claim.held
    assert not claim.path.exists()
    with pytest.raises(RuntimeError), ShardClaim(tmp_path, 2) as claim:
        raise RuntimeError("boom")
    assert not claim.held
    assert claim.path.exists()
    assert current_holder(claim.path) is None


def test_an_unreadable_holder_record_still_reports_a_holder(tmp_path: Path) -> None:
    claim = ShardClaim(tmp_path, 4)
    assert claim.acquire()
    try:
        claim.path.write_bytes(b"not json")
        holder = current_holder(claim.path)
        assert holder is not None
        assert (holder.pid, holder.host) == (-1, "?")
        assert abs(holder.since - time.time()) < 60
        claim.path.write_bytes(b"")
        holder = current_holder(claim.path)
        assert holder is not None
        assert holder.pid == -1
    finally:
        claim.release()


def test_acquire_creates_missing_folders_with_the_recorded_mode(tmp_path: Path) -> None:
    claim = ShardClaim(tmp_path / "run" / "nested", 3)
    assert claim.shard == 3
    assert claim.acquire()
    try:
        umask = os.umask(0)
        os.umask(umask)
        assert claim.path.stat().st_mode & 0o777 == 0o644 & ~umask
    finally:
        claim.release()


def test_release_tolerates_a_claim_file_removed_by_someone_else(tmp_path: Path) -> None:
    claim = ShardClaim(tmp_path, 5)
    assert claim.acquire()
    claim.path.unlink()
    claim.release()
    assert not claim.held


def test_same_file_is_false_once_the_path_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "x.claim"
    path.write_text("")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _same_file(fd, path)
        path.unlink()
        assert not _same_file(fd, path)
        path.write_text("")
        assert not _same_file(fd, path)
    finally:
        os.close(fd)


def test_acquire_retries_when_the_file_was_replaced_after_opening(tmp_path: Path, monkeypatch) -> None:
    answers = iter([False, True])
    monkeypatch.setattr(claims, "_same_file", lambda fd, path: next(answers))
    claim = ShardClaim(tmp_path, 6)
    assert claim.acquire() is True
    assert claim.held
    claim.release()
