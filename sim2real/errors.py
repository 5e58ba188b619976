"""The error families every entry point turns into one clean line and an exit code.

``UsageError`` (exit 2): a bad setting or input found before any work starts; its message names
the key or file, the value and what is expected. ``DataIntegrityError`` (exit 1): a file that is
corrupt, truncated or not what its manifest says; the message names the file (and episode range).
``StorageError`` (exit 1): the disk is full or the target read-only; the message says which and
names the path. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno


class Sim2RealError(Exception):
    """An error whose message is complete for a user: printed as one line, no traceback."""

    exit_code = 1


class UsageError(Sim2RealError):
    """A bad setting or input, found before work starts."""

    exit_code = 2


class DataIntegrityError(Sim2RealError):
    """A file that is corrupt, truncated, or differs from its manifest."""

    exit_code = 1


class StorageError(Sim2RealError, OSError):
    """No space left on a device, or a read-only target."""

    exit_code = 1


#: errno values that are the storage's fault, not the program's
STORAGE_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
                  errno.EDQUOT: "disk quota exceeded", errno.EACCES: "permission denied"}  # fmt: skip


def storage_error(error: OSError, path: object) -> StorageError | None:
    """A :class:`StorageError` naming ``path`` when ``error`` is a full or read-only device, else None."""
    reason = STORAGE_ERRNOS.get(error.errno or 0)
    if reason is None:
        return None
    return StorageError(error.errno, f"{path}: {reason} ({error.strerror or error})")
