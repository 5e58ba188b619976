"""Exclusive claims on the shards of a dataset, so that one process writes each shard.

A claim is an advisory ``flock`` on ``<root>/claims/shard-<k>.claim``, held for as long as the
shard is being written. The kernel (or the NFS lock manager) drops the lock when its process
dies, however it dies, so a claim left by a killed process is free at once and is taken over
safely: no timeout, no guessing whether a pid is alive. The file holds the holder's pid, host
and start time, so that a waiting process can say whom it waits for.

A claim file is removed by its holder when it is done; a process that locked a file which was
removed meanwhile (its inode is no longer the path's) retries on the new file.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

CLAIMS_DIR = "claims"


def claim_path(root: Path, shard: int) -> Path:
    """The claim file of shard ``shard`` of the dataset at ``root``."""
    return root / CLAIMS_DIR / f"shard-{shard:05d}.claim"


@dataclass(frozen=True)
class Holder:
    """Who holds a claim: process id, host name and the Unix time the claim was taken (s)."""

    pid: int
    host: str
    since: float

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} on {self.host} since {started}"

    @classmethod
    def me(cls) -> Holder:
        return cls(os.getpid(), socket.gethostname(), time.time())


class ShardClaim:
    """An exclusive claim on one shard; ``acquire()`` never blocks.

    >>> with ShardClaim(root, 3) as claim:  # doctest: +SKIP
    ...     if claim.held: write_shard(3)
    """

    def __init__(self, root: Path, shard: int) -> None:
        self.path = claim_path(root, shard)
        self.shard = shard
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the claim if no live process holds it; True when taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            if not _same_file(fd, self.path):  # removed by its previous holder after we opened it
                os.close(fd)
                continue
            holder = json.dumps(Holder.me().__dict__).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder, 0)
            self._fd = fd
            return True

    def release(self, remove: bool = True) -> None:
        """Drop the claim; ``remove`` deletes the claim file first (the shard is done)."""
        if self._fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing the last descriptor drops the lock
        self._fd = None

    def holder(self) -> Holder | None:
        """Who holds the claim now, or None when it is free."""
        return current_holder(self.path)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release(remove=exc_type is None)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def current_holder(path: Path) -> Holder | None:
    """The live holder of the claim file ``path``, or None when nobody holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return Holder(**json.loads(os.pread(fd, 4096, 0) or b"{}"))
            except (TypeError, ValueError):
                return Holder(pid=-1, host="?", since=time.time())
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
