"""The canonical episode: one schema that every on-disk format and foreign reader maps onto.

An :class:`Episode` is ``steps`` (numpy arrays, time on axis 0, ``T`` steps) plus
``metadata`` (one record per episode).

Per-step arrays (``T`` = number of steps, ``T >= 1``):

==================  ==================  ==================================================
key                 dtype, shape        meaning
==================  ==================  ==================================================
``images[cam]``     uint8 (T, H, W, 3)  RGB per camera (default cameras ``front``, ``wrist``)
``state``           float32 (T, 14)     proprio, layout :data:`STATE_NAMES` (NaN = unknown)
``action``          float32 (T, 7)      ``[dx, dy, dz (m), droll, dpitch, dyaw (rad), gripper]``,
                                        gripper in [0, 1] with 1 = open; layout :data:`ACTION_NAMES`
``reward``          float32 (T,)        reward received after the step's action
``discount``        float32 (T,)        discount, 1 for demos
``is_first``        bool (T,)           True exactly at t = 0
``is_last``         bool (T,)           True exactly at t = T - 1 (see ``require_is_last``)
``is_terminal``     bool (T,)           True only at t = T - 1, and only where ``is_last``
==================  ==================  ==================================================

``language_instruction`` is one string per episode (formats that store it per step, such
as RLDS, repeat it on every step).

Units follow the simulator: metres, radians, seconds; ``control_hz`` in Hz.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim2real.contracts.actions import ACTION_DIM, STATE_DIM
from sim2real.contracts.actions import ACTION_NAMES as ACTION_NAMES  # the layouts the schema's arrays follow
from sim2real.contracts.actions import STATE_NAMES as STATE_NAMES
from sim2real.contracts.actions import STATE_SLICES as STATE_SLICES
from sim2real.errors import DataIntegrityError, UsageError

#: Default camera names, in the order formats list them.
DEFAULT_CAMERAS: tuple[str, ...] = ("front", "wrist")

#: Names of the per-step numeric arrays other than images, in the fixed order used for hashing.
LOW_DIM_KEYS: tuple[str, ...] = ("state", "action", "reward", "discount", "is_first", "is_last", "is_terminal")

#: Expected dtype and trailing shape (after the time axis) of each low-dimensional key.
LOW_DIM_SPECS: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "state": (np.dtype(np.float32), (STATE_DIM,)),
    "action": (np.dtype(np.float32), (ACTION_DIM,)),
    "reward": (np.dtype(np.float32), ()),
    "discount": (np.dtype(np.float32), ()),
    "is_first": (np.dtype(np.bool_), ()),
    "is_last": (np.dtype(np.bool_), ()),
    "is_terminal": (np.dtype(np.bool_), ()),
}

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

ExtraValue = float | int | str | bool


class DatasetError(UsageError, ValueError):
    """Data that cannot be read or written faithfully; the message names the file, episode and key."""


class CorruptDataError(DataIntegrityError, DatasetError):
    """A file whose bytes are damaged (a checksum mismatch, a truncation, a library's read error)."""


@contextlib.contextmanager
def reading(where: str) -> Iterator[None]:
    """Re-raise a storage library's error (h5py, zarr, numcodecs) as :class:`CorruptDataError`
    naming ``where`` (the file, and the episode when known); the package's own errors pass through."""
    try:
        yield
    except DatasetError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, EOFError) as error:
        detail = (str(error).strip().splitlines() or [""])[0]
        raise CorruptDataError(f"{where}: cannot be read ({type(error).__name__}: {detail})") from error


@dataclass(frozen=True, eq=False)
class EpisodeSteps:
    """Per-step arrays of one episode, time on axis 0 (``T`` steps); see the module table for shapes."""

    images: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    discount: np.ndarray
    is_first: np.ndarray
    is_last: np.ndarray
    is_terminal: np.ndarray
    language_instruction: str

    @property
    def num_steps(self) -> int:
        """``T``, the length of the time axis (taken from ``action``)."""
        return int(np.shape(self.action)[0]) if np.ndim(self.action) else 0

    def low_dim(self) -> dict[str, np.ndarray]:
        """The non-image arrays keyed by :data:`LOW_DIM_KEYS`."""
        return {key: getattr(self, key) for key in LOW_DIM_KEYS}

    def arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """Every step array as ``(name, array)`` in a fixed order: images by camera name, then low-dim keys."""
        for camera in sorted(self.images):
            yield f"images/{camera}", self.images[camera]
        yield from self.low_dim().items()


def _plain(value: Any) -> Any:
    """Turn numpy scalars into Python scalars; leave everything else alone."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class EpisodeMetadata:
    """One episode's metadata.

    ``seed`` is the episode's derived seed (int64 range; -1 = unknown, for real data);
    ``control_hz`` is the control rate in Hz; ``scene_spec_json`` is the canonical SceneSpec
    JSON (empty for real data) and ``scene_spec_hash`` its sha256 hex digest; ``extras`` holds
    scalar counters and notes (clip counts, attempts, source file, ...).
    Numpy scalars are converted to Python scalars and an integral ``control_hz`` to float.
    """

    episode_id: str
    episode_index: int
    seed: int
    task: str
    backend: str
    robot: str
    control_hz: float
    split: str
    success: bool
    scene_spec_json: str = ""
    scene_spec_hash: str = ""
    generator_version: str = ""
    extras: dict[str, ExtraValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _plain(getattr(self, f.name)))
        if isinstance(self.control_hz, int) and not isinstance(self.control_hz, bool):
            object.__setattr__(self, "control_hz", float(self.control_hz))
        if isinstance(self.extras, Mapping):
            object.__setattr__(self, "extras", {k: _plain(v) for k, v in self.extras.items()})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        out = dataclasses.asdict(self)
        out["extras"] = dict(self.extras)
        return out

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, shortest round-trip floats, UTF-8 kept as is."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<metadata>") -> EpisodeMetadata:
        """Build from a dict with exactly the dataclass's field names."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(data))
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise DatasetError(f"{source}: episode metadata has missing keys {missing} and unknown keys {unknown}")
        return cls(**{name: data[name] for name in names})


@dataclass(frozen=True, eq=False)
class Episode:
    """One episode: per-step arrays and metadata."""

    steps: EpisodeSteps
    metadata: EpisodeMetadata

    @property
    def num_steps(self) -> int:
        """``T``, the number of steps."""
        return self.steps.num_steps


def canonical_json(value: Any) -> str:
    """Deterministic JSON for hashing and storage: sorted keys, compact, NaN rejected."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# ---------------------------------------------------------------------------------------------
# validation


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    return type(value).__name__


def _check_array(value: Any, key: str, dtype: np.dtype, trailing: tuple[int, ...], where: str) -> int:
    """Check one per-step array's type, dtype and trailing shape; return its ``T``."""
    expected = f"{dtype} (T, {', '.join(map(str, trailing))})" if trailing else f"{dtype} (T,)"
    if not isinstance(value, np.ndarray) or value.dtype != dtype or value.shape[1:] != trailing or value.ndim < 1:
        raise DatasetError(f"{where}: key {key!r} is {_describe(value)}, expected {expected}")
    return int(value.shape[0])


def _check_image(value: Any, key: str, where: str) -> int:
    """Check one camera's ``uint8 (T, H, W, 3)`` array; return its ``T``."""
    ok = isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 4 and value.shape[3] == 3
    if not ok or 0 in value.shape[1:3]:
        raise DatasetError(f"{where}: key {key!r} is {_describe(value)}, expected uint8 (T, H, W, 3)")
    return int(value.shape[0])


def _step_lengths(steps: EpisodeSteps, where: str) -> dict[str, int]:
    """``T`` of every per-step array after checking dtypes and shapes."""
    if not isinstance(steps.images, Mapping) or not steps.images:
        raise DatasetError(f"{where}: key 'images' is {_describe(steps.images)}, expected a non-empty camera dict")
    lengths: dict[str, int] = {}
    for camera, image in steps.images.items():
        if not isinstance(camera, str) or not camera:
            raise DatasetError(f"{where}: camera name {camera!r} is not a non-empty string")
        lengths[f"images/{camera}"] = _check_image(image, f"images/{camera}", where)
    for key, (dtype, trailing) in LOW_DIM_SPECS.items():
        lengths[key] = _check_array(getattr(steps, key), key, dtype, trailing, where)
    return lengths


def _check_lengths(lengths: Mapping[str, int], where: str) -> int:
    """All keys must agree on ``T >= 1``; return it."""
    num_steps = lengths["action"]
    for key, length in lengths.items():
        if length != num_steps:
            raise DatasetError(f"{where}: key {key!r} has T={length} steps but 'action' has T={num_steps}")
    if num_steps < 1:
        raise DatasetError(f"{where}: key 'action' has T=0 steps, expected at least 1")
    return num_steps


def _check_flags(steps: EpisodeSteps, where: str, require_is_last: bool) -> None:
    """RLDS episode-boundary flags: one ``is_first`` at t=0, ``is_last``/``is_terminal`` only at the end."""
    first = np.flatnonzero(steps.is_first)
    if first.tolist() != [0]:
        raise DatasetError(f"{where}: key 'is_first' is True at steps {first.tolist()}, expected exactly [0]")
    end = len(steps.is_last) - 1
    last = np.flatnonzero(steps.is_last).tolist()
    allowed = [[end]] if require_is_last else [[end], []]
    if last not in allowed:
        expected = f"exactly [{end}]" if require_is_last else f"[{end}] or none"
        raise DatasetError(f"{where}: key 'is_last' is True at steps {last}, expected {expected}")
    terminal = np.flatnonzero(steps.is_terminal).tolist()
    if terminal not in ([], [end]) or (terminal and not last):
        raise DatasetError(
            f"{where}: key 'is_terminal' is True at steps {terminal} (is_last at {last}); "
            f"expected none, or [{end}] together with is_last"
        )


def _check_finite(steps: EpisodeSteps, where: str) -> None:
    """Actions, rewards and discounts must be finite; state may hold NaN (unknown) but not inf."""
    for key in ("action", "reward", "discount"):
        bad = ~np.isfinite(getattr(steps, key))
        if bad.any():
            t = int(np.argwhere(bad)[0][0])
            raise DatasetError(f"{where}: key {key!r} has a non-finite value at step {t}")
    if np.isinf(steps.state).any():
        t = int(np.argwhere(np.isinf(steps.state))[0][0])
        raise DatasetError(f"{where}: key 'state' has an infinite value at step {t}")


_METADATA_TYPES: dict[str, type | tuple[type, ...]] = {
    "episode_id": str,
    "episode_index": int,
    "seed": int,
    "task": str,
    "backend": str,
    "robot": str,
    "control_hz": float,
    "split": str,
    "success": bool,
    "scene_spec_json": str,
    "scene_spec_hash": str,
    "generator_version": str,
    "extras": dict,
}


def _check_metadata(meta: EpisodeMetadata, where: str) -> None:
    """Field types and ranges of the metadata record."""
    for name, expected in _METADATA_TYPES.items():
        value = getattr(meta, name)
        is_bool_as_int = isinstance(value, bool) and expected is int
        if not isinstance(value, expected) or is_bool_as_int:
            raise DatasetError(f"{where}: key 'metadata/{name}' is {type(value).__name__}, expected {expected}")
    if not meta.episode_id:
        raise DatasetError(f"{where}: key 'metadata/episode_id' is empty")
    if not 0 <= meta.episode_index <= INT64_MAX:
        raise DatasetError(f"{where}: key 'metadata/episode_index' is {meta.episode_index}, expected in [0, 2**63)")
    if not INT64_MIN <= meta.seed <= INT64_MAX:
        raise DatasetError(f"{where}: key 'metadata/seed' is {meta.seed}, expected an int64")
    if not (math.isfinite(meta.control_hz) and meta.control_hz > 0):
        raise DatasetError(f"{where}: key 'metadata/control_hz' is {meta.control_hz}, expected a positive number")
    _check_extras(meta.extras, where)


def _check_extras(extras: Mapping[str, Any], where: str) -> None:
    for key, value in extras.items():
        if not isinstance(key, str):
            raise DatasetError(f"{where}: key 'metadata/extras' has a non-string key {key!r}")
        if not isinstance(value, float | int | str):
            raise DatasetError(
                f"{where}: key 'metadata/extras/{key}' is {type(value).__name__}, expected float, int, str or bool"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise DatasetError(f"{where}: key 'metadata/extras/{key}' is {value}, expected a finite number")


def validate_episode(ep: Episode, source: str, *, require_is_last: bool = True) -> int:
    """Check an episode against the canonical schema and return its number of steps ``T``.

    ``source`` names where the episode comes from (a file and episode index) and starts every
    error message. ``require_is_last=False`` accepts episodes cut short (``is_last`` False on
    every step), as in some foreign datasets. Raises :class:`DatasetError` naming the key and
    the found versus expected dtype, shape or value.
    """
    if not isinstance(ep, Episode):
        raise DatasetError(f"{source}: expected an Episode, found {type(ep).__name__}")
    if not isinstance(ep.steps, EpisodeSteps) or not isinstance(ep.metadata, EpisodeMetadata):
        raise DatasetError(
            f"{source}: episode steps/metadata have types {type(ep.steps).__name__}/"
            f"{type(ep.metadata).__name__}, expected EpisodeSteps/EpisodeMetadata"
        )
    num_steps = _check_lengths(_step_lengths(ep.steps, source), source)
    if not isinstance(ep.steps.language_instruction, str):
        found = type(ep.steps.language_instruction).__name__
        raise DatasetError(f"{source}: key 'language_instruction' is {found}, expected str")
    _check_flags(ep.steps, source, require_is_last)
    _check_finite(ep.steps, source)
    _check_metadata(ep.metadata, source)
    return num_steps


# ---------------------------------------------------------------------------------------------
# hashing and comparison


def _hash_field(digest: Any, name: str, payload: bytes) -> None:
    """Length-prefixed update so that no two different field sequences hash alike."""
    header = name.encode()
    digest.update(len(header).to_bytes(8, "little") + header)
    digest.update(len(payload).to_bytes(8, "little") + payload)


def content_hash(ep: Episode) -> str:
    """sha256 hex digest over every step array (name, dtype, shape, bytes) and the canonical metadata JSON.

    Two episodes have the same hash exactly when their arrays are byte-identical (same dtypes
    and shapes) and their instruction and metadata are equal.
    """
    digest = hashlib.sha256()
    for name, array in ep.steps.arrays():
        array = np.ascontiguousarray(array)
        _hash_field(digest, f"{name}|{array.dtype.str}|{array.shape}", array.tobytes())
    _hash_field(digest, "language_instruction", ep.steps.language_instruction.encode())
    _hash_field(digest, "metadata", ep.metadata.to_json().encode())
    return digest.hexdigest()


def diff_episodes(a: Episode, b: Episode) -> list[str]:
    """Human-readable differences between two episodes (empty when their content hashes agree)."""
    out: list[str] = []
    arrays_a, arrays_b = dict(a.steps.arrays()), dict(b.steps.arrays())
    for name in sorted(set(arrays_a) | set(arrays_b)):
        x, y = arrays_a.get(name), arrays_b.get(name)
        if x is None or y is None:
            out.append(f"{name}: only in {'b' if x is None else 'a'}")
        elif x.dtype != y.dtype or x.shape != y.shape:
            out.append(f"{name}: {x.dtype} {x.shape} vs {y.dtype} {y.shape}")
        elif x.tobytes() != y.tobytes():
            out.append(f"{name}: values differ at {int(np.count_nonzero(x != y))} positions")
    if a.steps.language_instruction != b.steps.language_instruction:
        out.append(f"language_instruction: {a.steps.language_instruction!r} vs {b.steps.language_instruction!r}")
    meta_a, meta_b = a.metadata.to_dict(), b.metadata.to_dict()
    out += [f"metadata/{k}: {meta_a[k]!r} vs {meta_b[k]!r}" for k in sorted(meta_a) if meta_a[k] != meta_b[k]]
    return out
