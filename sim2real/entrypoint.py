"""How ``generate.py``, ``train.py`` and ``evaluate.py`` refuse a run: one line, an exit code, nothing left behind.

Each entry point's schema carries :func:`schema_defaults`, which selects the ``hydra/callbacks``
option holding :class:`EntryPointGuard`. The guard

* checks ``output_dir`` before hydra creates its job folder (a file there, or a folder that
  cannot be written, is refused naming ``output_dir``), and notes the folders this run creates;
* turns a :class:`~sim2real.errors.Sim2RealError` raised by the job, or an ``OSError`` of a full or
  read-only disk anywhere in its chain (:func:`~sim2real.errors.storage_error`), into one line on
  stderr and the error's exit code (2: a bad setting, 1: corrupt data or storage) instead of
  hydra's "Error executing job" and traceback; ``HYDRA_FULL_ERROR=1`` prints the traceback too;
* removes the folders this run created when they hold nothing but hydra's own files (``.hydra/``,
  the job log, ``multirun.yaml``), so a refused run leaves nothing behind.

Any other exception is a bug and keeps hydra's report.
"""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, MissingMandatoryValue, OmegaConf

from sim2real.errors import Sim2RealError, UsageError, storage_error

#: the ``hydra/callbacks`` option every entry point selects
CALLBACKS_OPTION = "sim2real"
#: the setting naming the folder every entry point writes to
OUTPUT_DIR_KEY = "output_dir"
#: files hydra writes into a run's folders beside its job log and ``hydra.output_subdir``
SWEEP_FILES = ("multirun.yaml",)

T = TypeVar("T")


def schema_defaults() -> list[Any]:
    """The defaults list of an entry point's schema dataclass: it turns :class:`EntryPointGuard` on."""
    return [{"override /hydra/callbacks": CALLBACKS_OPTION}]


def runtime_config(cfg: DictConfig, expected: type[T]) -> T:
    """The object an entry point runs with: its composed config as the schema dataclass
    (``OmegaConf.to_object``). A required key left unset is refused in one line naming it."""
    try:
        config = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as error:
        key = error.full_key or str(error.key)
        raise UsageError(f"{key}=???: a value is required; set {key}=<value>") from None
    if not isinstance(config, expected):
        raise TypeError(f"the composed config is a {type(config).__name__}, not a {expected.__name__}")
    return config


def check_writable_folder(key: str, path: str | Path) -> None:
    """Refuse, naming ``key``, a ``path`` that is a file, lies under a file, or cannot be written."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == path and not path.is_dir():
        raise UsageError(f"{key}={path}: is a file; expected a folder (new or existing)")
    if not existing.is_dir():
        raise UsageError(f"{key}={path}: {existing} is a file, so no folder can be made there; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        reason = "is on a read-only file system" if read_only else "is not writable"
        raise UsageError(f"{key}={path}: {existing} {reason}; choose a writable folder")


def user_error(error: BaseException, path: object) -> Sim2RealError | None:
    """What to tell the user about ``error``: itself when it is a :class:`Sim2RealError`, a
    :class:`~sim2real.errors.StorageError` when a full or read-only disk (at ``path`` when the
    error names no file) is anywhere in its chain, else None (a bug: keep the traceback)."""
    if isinstance(error, Sim2RealError):
        return error
    for link in _chain(error):
        if isinstance(link, OSError):
            converted = storage_error(link, link.filename or path)
            if converted is not None:
                return converted
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line."""
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__


def refuse(error: Sim2RealError) -> NoReturn:
    """Print ``error`` as one line on stderr (with its traceback under ``HYDRA_FULL_ERROR=1``) and exit."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        traceback.print_exception(error)
    else:
        print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
    raise SystemExit(error.exit_code)


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None: ``path`` exists)."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def _only_hydra_files(root: Path, config: DictConfig) -> bool:
    """Whether ``root`` holds nothing but the files hydra writes for a job."""
    subdir = OmegaConf.select(config, "hydra.output_subdir")
    own = {f"{OmegaConf.select(config, 'hydra.job.name')}.log", *SWEEP_FILES}
    for folder, _, files in os.walk(root):
        inside_subdir = subdir is not None and subdir in Path(folder).relative_to(root).parts
        if not inside_subdir and any(name not in own for name in files):
            return False
    return True


class EntryPointGuard(Callback):
    """The hydra callback behind every entry point (see the module's docstring)."""

    def __init__(self) -> None:
        self.created: Path | None = None  # the outermost folder this run creates for hydra's files
        self.process: int | None = None  # the process that started the run (jobs may run in others)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._before_job_folders(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._before_job_folders(config, "hydra.sweep.dir")

    def _before_job_folders(self, config: DictConfig, folder_key: str) -> None:
        try:
            check_writable_folder(OUTPUT_DIR_KEY, OmegaConf.select(config, OUTPUT_DIR_KEY))
        except UsageError as error:
            refuse(error)
        self.created = _first_missing(Path(OmegaConf.select(config, folder_key)).absolute())
        self.process = os.getpid()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status is not JobStatus.FAILED or self.process != os.getpid():
            return  # a job that ran in a launcher's worker is reported by hydra in the starting process
        # the ``return_value`` property would print hydra's "Error executing job" and re-raise
        error = user_error(job_return._return_value, OmegaConf.select(config, OUTPUT_DIR_KEY))
        if error is None:
            return
        if self.created is not None and self.created.is_dir() and _only_hydra_files(self.created, config):
            shutil.rmtree(self.created, ignore_errors=True)
        refuse(error)


ConfigStore.instance().store(
    group="hydra/callbacks",
    name=CALLBACKS_OPTION,
    node={"sim2real_entrypoint": {"_target_": f"{__name__}.{EntryPointGuard.__name__}"}},
    provider="sim2real",
)
