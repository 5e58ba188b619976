"""What a generation run takes: :class:`GenerationConfig`, the one definition of every option of
``generate.py`` (hydra's schema, see ``configs/generate.yaml``), and :func:`validate`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from sim2real.datasets.registry import FormatOptionError, load_builtin_formats, shard_format
from sim2real.errors import UsageError
from sim2real.randomizers import RandomizationConfig, config_from_dict
from sim2real.randomizers.splits import check_split
from sim2real.sim.tasks import TASKS

#: the options that determine the data: a resume must match them (``run.json``'s ``config``)
FINGERPRINT_KEYS = ("task", "split", "num_episodes", "seed", "formats", "shard_size", "backend", "max_attempts",
                    "expert_noise", "expert_noise_rate", "cameras", "image_size", "control_hz", "physics_hz",
                    "randomization", "codecs", "backend_options")  # fmt: skip


class GenerationError(UsageError, ValueError):
    """A generation request that cannot run (bad option, inconsistent resume)."""


@dataclass
class GenerationConfig:
    """Every option of a generation run (``generate.py <key>=<value>``; sequences are kept as tuples).

    ``task`` is a task name or ``all`` (every registered task, round-robin by episode index);
    ``output_dir``'s ``${task}`` is filled in by hydra; ``shard_range`` = [first, stop) shard
    indices for one job of a multi-node run (None = all shards)."""

    task: str = "pick_place"
    split: str = "train"  # train | textures | lighting | camera | distractors | objects | instructions
    num_episodes: int = 200
    seed: int = 0
    formats: tuple[str, ...] = ("zarr", "rlds", "hdf5")  # registered dataset formats
    codecs: dict[str, dict[str, Any]] = field(default_factory=dict)  # writer options per format: codecs.<format>.<key>
    output_dir: str = "data/${task}"
    workers: int = 1
    shard_size: int = 50
    backend: str = "mujoco"  # mujoco | isaac (docs/isaac.md)
    backend_options: dict[str, Any] = field(default_factory=dict)  # the backend's own settings (its options class)
    shard_range: tuple[int, int] | None = None
    max_attempts: int = 3  # expert attempts per episode (each with the next derived seed)
    expert_noise: float = 0.0  # m, DART: Gaussian noise on the executed position deltas; actions recorded clean
    expert_noise_rate: float = 1.0  # fraction of steps the noise is applied on
    cameras: tuple[str, ...] = ("front", "wrist")
    image_size: int = 128
    control_hz: float = 10.0
    physics_hz: float = 500.0
    shadows: bool = False
    build_index: bool = True  # write the dataset-wide views once the shards are recorded
    progress: bool = True
    randomization: dict[str, Any] = field(default_factory=lambda: {"name": "none"})  # a configs/randomization preset

    def __post_init__(self) -> None:
        for key in ("formats", "cameras", "shard_range"):
            value = getattr(self, key)
            if value is not None:
                setattr(self, key, tuple(value))

    def tasks(self) -> list[str]:
        return TASKS.names() if self.task == "all" else [self.task]

    @property
    def num_shards(self) -> int:
        return max(1, math.ceil(self.num_episodes / self.shard_size))

    def shard_episodes(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.num_episodes))

    def fingerprint(self) -> dict[str, Any]:
        """The options that determine the data: a resume must match them exactly."""
        data = asdict(self)
        return json.loads(json.dumps({k: data[k] for k in FINGERPRINT_KEYS}))


def writer_options(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """Each format's full writer options (``codecs`` with every default filled in) of a recorded
    fingerprint: two runs whose options differ only by a value stated at its default write the same."""
    codecs = fingerprint.get("codecs") or {}
    names = sorted(set(fingerprint.get("formats", ())) | set(codecs))
    out = {}
    for name in names:
        options = shard_format(name).parse_options(codecs.get(name, {}))
        out[name] = None if options is None else options.writer_kwargs()
    return out


def validate(config: GenerationConfig) -> RandomizationConfig:
    """Check every option before any episode runs; return the parsed randomization."""
    if config.task != "all":
        TASKS.get(config.task)
    check_split(config.split)
    from sim2real.sim.backend import BACKENDS, parse_backend_options

    BACKENDS.get(config.backend)
    parse_backend_options(config.backend, config.backend_options)  # unknown key / bad value: backend_options.<key>
    if config.backend == "isaac":
        from sim2real.sim.isaac.app import require_isaacsim

        require_isaacsim()  # fails at once, with the install steps
    load_builtin_formats()
    for name in config.formats:
        shard_format(name)
    try:
        for name, given in config.codecs.items():
            shard_format(name).parse_options(given)
    except FormatOptionError as error:
        raise GenerationError(str(error)) from None
    for key in ("num_episodes", "workers", "shard_size", "max_attempts", "image_size"):
        if getattr(config, key) < 1:
            raise GenerationError(f"{key}={getattr(config, key)}: expected an integer >= 1")
    if config.expert_noise < 0:
        raise GenerationError(f"expert_noise={config.expert_noise}: expected a standard deviation >= 0 (m)")
    if not 0.0 <= config.expert_noise_rate <= 1.0:
        raise GenerationError(
            f"expert_noise_rate={config.expert_noise_rate}: expected a probability per step in [0, 1]"
        )
    if config.shard_range is not None:
        first, stop = config.shard_range
        if not 0 <= first < stop <= config.num_shards:
            raise GenerationError(
                f"shard_range={list(config.shard_range)}: expected [first, stop) with 0 <= first < stop <= "
                f"{config.num_shards} (the number of shards)"
            )
    if config.image_size != 128:
        raise GenerationError(f"image_size={config.image_size}: expected 128 (cameras render at 128x128)")
    return config_from_dict(dict(config.randomization), name=str(config.randomization.get("name", "custom")))
