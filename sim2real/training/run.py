"""One training run: dataset -> a policy of any registered type -> checkpoints, logs and a summary.

Exact resume: batches are drawn per step from ``SeedSequence([data seed, step])`` (not from an
epoch permutation held in memory), the global torch RNG is re-seeded from ``(train.seed, step)``
before every step (dropout), and checkpoints hold model, EMA, optimiser and scheduler states;
so a killed run restarted with the same command continues the same loss curve.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import logging
import math
import os
import re
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from sim2real.contracts.seeds import derived_seed
from sim2real.datasets.torch_dataset import BatchLoader, ChunkedEpisodeDataset, split_episodes
from sim2real.datasets.training_cache import TrainingData, load_training_data
from sim2real.entrypoint import check_writable_folder
from sim2real.errors import Sim2RealError, StorageError, UsageError, storage_error
from sim2real.policies.training import FINETUNE_MODES
from sim2real.training.config import BALANCE_MODES, MODEL_FROM_DATA, DataConfig, TrainConfig, saved_settings

log = logging.getLogger(__name__)

#: ``finetune.mode`` values (:func:`sim2real.policies.training.freeze_for_finetune`)


class TrainingError(Sim2RealError, RuntimeError):
    """A training run that cannot continue; the message says why and what is kept."""


class TrainSettingError(TrainingError, UsageError):
    """A setting that cannot work, found before any work; names the key, the value and what is allowed."""

    exit_code = 2


class StepBatchSampler(Sampler[list[int]]):
    """Step ``s``'s global batch = ``batch_size * world`` indices drawn from
    ``SeedSequence([seed, s])``, for ``s`` in ``[start, stop)``; process ``rank`` takes its slice.
    Any step's batch is known without replaying the ones before it (exact resume). Indices are
    uniform over ``[0, size)``, or drawn with ``weights`` (probabilities (size,)) when given."""

    def __init__(
        self, size: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0, world: int = 1,
        weights: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        self.size, self.batch_size, self.seed, self.start, self.stop = size, batch_size, seed, start, stop
        self.rank, self.world = rank, world
        self.cumulative = None if weights is None else np.cumsum(weights) / np.sum(weights)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xB47C, step]))
            if self.cumulative is None:
                batch = rng.integers(0, self.size, self.batch_size * self.world)
            else:
                draws = rng.random(self.batch_size * self.world)
                batch = np.minimum(np.searchsorted(self.cumulative, draws, side="right"), self.size - 1)
            yield batch[self.rank * self.batch_size : (self.rank + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def loader_workers(requested: int | None, device: torch.device) -> int:
    """Loader processes: ``requested``, or by default none when training on the CPU (a batch is
    one gather per camera, ~2 % of a step, and worker processes would take cores from torch's
    threads: 0.233 s/step in-process vs 0.263 s with 2 workers on a 2-core machine), and
    ``min(8, CPUs // 2)`` beside an accelerator."""
    if requested is not None:
        if requested < 0:
            raise TrainSettingError(f"data.workers={requested}: expected >= 0, or null for the default")
        return requested
    return 0 if device.type == "cpu" else min(8, (os.cpu_count() or 2) // 2)


def _device(name: str) -> torch.device:
    """The device ``train.device`` names, refused when it does not exist here."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        return torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    allowed = "expected auto, cpu, cuda or cuda:<index>"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainSettingError(f"train.device={name}: {allowed}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainSettingError(f"train.device={name}: no CUDA device is available here; use train.device=auto or cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise TrainSettingError(f"train.device={name}: this machine has {torch.cuda.device_count()} CUDA devices")
    if device.type not in ("cpu", "cuda"):
        raise TrainSettingError(f"train.device={name}: {allowed}")
    return device


def _distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); under torchrun, joins the process group (NCCL on GPUs, gloo on CPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    return dist.get_rank(), world


def _model_config(config: TrainConfig) -> Any:
    """The registered ``config.policy`` type's config class, built from the model settings."""
    from sim2real.policies import POLICIES

    cls = POLICIES.get(config.policy).config_class
    return cls(**_model_values(config))


def _build_model(config: TrainConfig, stats: dict[str, np.ndarray]) -> Any:
    from sim2real.policies import POLICIES

    model = POLICIES.get(config.policy)(_model_config(config))
    model.set_normalization(stats)
    return model


def _finetune(config: TrainConfig, model: Any) -> dict[str, int]:
    from sim2real.policies import load_checkpoint
    from sim2real.policies.training import freeze_for_finetune

    source = load_checkpoint(config.finetune.init_from, expected_cameras=tuple(config.data.cameras))
    missing, unexpected = model.load_state_dict(source.model.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lora" not in k]:
        raise TrainSettingError(
            f"finetune.init_from={config.finetune.init_from}: weights do not fit this model "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}); use its model settings"
        )
    return freeze_for_finetune(model, config.finetune.mode)


def _checkpoint_dir(config: TrainConfig) -> Path:
    return Path(config.output_dir) / "checkpoints"


#: settings a resumed run may change; any other change starts a different run
RESUMABLE_CHANGES = frozenset(
    {"train.max_steps", "data.workers", "train.val_every", "train.val_batches", "train.checkpoint_every",
     "train.log_every", "train.device", "progress", "data.cache_dir"}
)  # fmt: skip


def _check_resume_settings(config: TrainConfig) -> None:
    """Refuse, before any work, to resume a run that was started with other settings."""
    previous_path = Path(config.output_dir) / "train_config.json"
    if not (_checkpoint_dir(config) / "last").exists() or not previous_path.exists():
        return
    current = config.settings()
    # a setting added since the run was saved counts at its default, which keeps what came before
    defaults = TrainConfig(data=DataConfig(path=config.data.path)).settings()
    previous = {**defaults, **saved_settings(json.loads(previous_path.read_text()))}
    changed = sorted(
        k for k in set(previous) | set(current) if k not in RESUMABLE_CHANGES and previous.get(k) != current.get(k)
    )
    if changed:
        detail = ", ".join(f"{k} {previous.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise TrainSettingError(
            f"output_dir={config.output_dir}: holds a run started with other settings ({detail}); "
            "use another output_dir, or the same settings to resume it"
        )


def _show(value: Any) -> str:
    """A setting's value as written on the command line."""
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


#: (key, test, what is allowed) for the settings that need no other setting to be checked
_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("train.max_steps", lambda v: v >= 1, "expected an integer >= 1"),
    ("train.lr", lambda v: math.isfinite(v) and v > 0, "expected a learning rate > 0"),
    ("train.weight_decay", lambda v: math.isfinite(v) and v >= 0, "expected >= 0"),
    ("train.warmup_steps", lambda v: v >= 0, "expected an integer >= 0"),
    ("train.grad_clip", lambda v: v >= 0, "expected a gradient norm > 0, or 0 for no clipping"),
    ("train.ema_decay", lambda v: 0 <= v < 1, "expected a decay in [0, 1)"),
    ("train.augment_shift", lambda v: v >= 0, "expected pixels >= 0"),
    ("train.augment_color", lambda v: 0 <= v < 1, "expected a jitter strength in [0, 1)"),
    ("train.val_every", lambda v: v >= 1, "expected an integer >= 1"),
    ("train.val_batches", lambda v: v >= 1, "expected an integer >= 1"),
    ("train.checkpoint_every", lambda v: v >= 1, "expected an integer >= 1"),
    ("train.log_every", lambda v: v >= 1, "expected an integer >= 1"),
    ("train.seed", lambda v: v >= 0, "expected an integer >= 0"),
    ("data.seed", lambda v: v is None or v >= 0, "expected an integer >= 0, or null for train.seed"),
    ("data.batch_size", lambda v: v >= 1, "expected an integer >= 1"),
    ("data.val_fraction", lambda v: 0 <= v < 1, "expected a fraction in [0, 1)"),
    ("data.history", lambda v: v >= 1, "expected observation frames >= 1"),
    ("data.chunk", lambda v: v >= 1, "expected future actions >= 1"),
    ("data.max_episodes", lambda v: v is None or v >= 1, "expected >= 1, or null for every episode"),
    ("data.cameras", lambda v: len(v) > 0 and len(set(v)) == len(v), "expected one or more camera names, each once"),
    ("data.balance", lambda v: v in BALANCE_MODES, f"expected one of {', '.join(BALANCE_MODES)}"),
    ("finetune.mode", lambda v: v in FINETUNE_MODES, f"expected one of {', '.join(FINETUNE_MODES)}"),
)


def _check_values(config: TrainConfig) -> None:
    settings = config.settings()
    for key, test, allowed in _RULES:
        if not test(settings[key]):
            raise TrainSettingError(f"{key}={_show(settings[key])}: {allowed}")


def _model_values(config: TrainConfig) -> dict[str, Any]:
    """The fields of the policy type's config class: the model settings, and ``data.*``'s cameras,
    history and chunk."""
    own = {k: v for k, v in config.model.items() if k != "type" and k not in MODEL_FROM_DATA}
    data = config.data
    return {**own, "cameras": tuple(data.cameras), "history": data.history, "chunk": data.chunk}


def _check_model(config: TrainConfig) -> None:
    """The policy type is registered, the model settings build its config, and the files and
    packages it needs are here."""
    from sim2real.policies import POLICIES
    from sim2real.policies.language import LanguageEncoderUnavailableError, minilm_model_path

    if config.policy not in POLICIES:
        raise TrainSettingError(f"model={config.policy}: not a policy type; known: {', '.join(POLICIES.names())}")
    config_class = POLICIES.get(config.policy).config_class
    known = sorted(f.name for f in dataclasses.fields(config_class) if f.name not in MODEL_FROM_DATA)
    for key in MODEL_FROM_DATA:
        if config.model.get(key) is not None:
            raise TrainSettingError(f"model.{key}: set data.{key} instead (one value for data and model)")
    for key in sorted(set(config.model) - {"type", *known, *MODEL_FROM_DATA}):
        raise TrainSettingError(f"model.{key}: not a setting of model={config.policy}; known model settings: {known}")
    values = _model_values(config)
    try:
        model = config_class(**values)
    except ValueError as error:
        named = [k for k in values if re.search(rf"\b{k}\b", str(error))]
        group = {k: "data" if k in MODEL_FROM_DATA else "model" for k in named}
        keys = ", ".join(f"{group[k]}.{k}={_show(values[k])}" for k in named) or "model"
        raise TrainSettingError(f"{keys}: {error}") from None
    if getattr(model, "vision_weights", None) and not Path(model.vision_weights).is_file():
        raise TrainSettingError(f"model.vision_weights={model.vision_weights}: no such file")
    if getattr(model, "language", None) == "minilm":
        try:
            minilm_model_path()
        except LanguageEncoderUnavailableError as error:
            raise TrainSettingError(f"model.language=minilm: {error}") from None


def _check_paths(config: TrainConfig) -> None:
    """The dataset and the checkpoint to start from exist; the output and cache folders can be written."""
    if not Path(config.data.path).exists():
        raise TrainSettingError(f"data.path={config.data.path}: no such file or directory")
    check_writable_folder("output_dir", config.output_dir)
    if config.data.cache_dir is not None:
        check_writable_folder("data.cache_dir", config.data.cache_dir)
    if config.finetune.init_from is not None:
        from sim2real.policies.checkpoint import CheckpointError, read_meta

        try:
            meta = read_meta(config.finetune.init_from)
        except CheckpointError as error:
            raise TrainSettingError(f"finetune.init_from={config.finetune.init_from}: {error}") from None
        cameras, policy = meta.get("cameras", []), meta.get("policy")
        if policy != config.policy:
            raise TrainSettingError(f"finetune.init_from={config.finetune.init_from}: a {policy} checkpoint, "
                                    f"model={config.policy}; fine-tune it with model={policy}")  # fmt: skip
        if list(cameras) != list(config.data.cameras):
            raise TrainSettingError(f"finetune.init_from={config.finetune.init_from}: the checkpoint uses cameras "
                                    f"{list(cameras)}, data.cameras={_show(config.data.cameras)}; "
                                    "use the same")  # fmt: skip
    if config.finetune.mode == "lora" and importlib.util.find_spec("peft") is None:
        raise TrainSettingError("finetune.mode=lora: needs the peft package: pip install 'sim2real[train]'")


def check_settings(config: TrainConfig) -> tuple[torch.device, int]:
    """Check every setting before any work; return the device and the number of loader processes.

    Raises :class:`TrainSettingError` (or :class:`~sim2real.errors.UsageError` for a folder that
    cannot be written) naming the first bad setting, its value and what is allowed.
    """
    _check_values(config)
    _check_model(config)
    device = _device(config.train.device)
    workers = loader_workers(config.data.workers, device)
    _check_paths(config)
    _check_resume_settings(config)
    return device, workers


def _open_data(config: TrainConfig) -> TrainingData:
    """The training cache of ``data.path`` (built in ``data.cache_dir``, or beside the dataset)."""
    try:
        return load_training_data(config.data.path, tuple(config.data.cameras), cache_dir=config.data.cache_dir)
    except OSError as error:
        path = error.filename or config.data.path
        converted = error if isinstance(error, StorageError) else storage_error(error, path)
        if converted is None:
            raise
        hint = (
            ""
            if config.data.cache_dir
            else "; set data.cache_dir to a writable folder to keep the training cache there"
        )
        raise StorageError(converted.errno, f"{converted.strerror}{hint}") from error


def _episode_count(config: TrainConfig, data: TrainingData) -> int:
    """How many of the dataset's episodes the run uses: the first ``max_episodes``, or all."""
    return data.num_episodes if config.data.max_episodes is None else min(config.data.max_episodes, data.num_episodes)


def _select_episodes(config: TrainConfig, data: TrainingData) -> tuple[list[int], list[int]]:
    """Training and validation episode indices: the first ``max_episodes``, split by
    ``val_fraction``, without the unsuccessful ones when ``successful_only``."""
    count = _episode_count(config, data)
    train_eps, val_eps = split_episodes(count, config.data.val_fraction, config.data_seed)
    if not config.data.successful_only:
        return train_eps, val_eps
    successful = set(np.flatnonzero(data.success[:count]).tolist())
    train_eps, val_eps = [e for e in train_eps if e in successful], [e for e in val_eps if e in successful]
    if not train_eps:
        raise TrainSettingError(f"data.successful_only: no training episode of {config.data.path} is marked "
                                f"successful ({len(successful)} of its first {count} episodes are); set "
                                "data.successful_only=false or generate more")  # fmt: skip
    return train_eps, val_eps


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a kill mid-write leaves the previous file)."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


def _link_last(checkpoints: Path, target: Path) -> None:
    link = checkpoints / "last"
    temp = checkpoints / ".last.tmp"
    if temp.is_symlink() or temp.exists():
        temp.unlink()
    os.symlink(target.name, temp)
    os.replace(temp, link)


class _Logs:
    """CSV (always) and TensorBoard (when installed) scalars."""

    def __init__(self, out: Path, resume_step: int) -> None:
        self.csv_path = out / "metrics.csv"
        self._rows: list[dict[str, Any]] = []
        if self.csv_path.exists() and resume_step:
            with open(self.csv_path, newline="") as handle:
                self._rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= resume_step]
        try:
            # TensorBoard's own switch to its TensorFlow stub: loading TensorFlow's native library
            # next to zarr's codec threads crashes the process, and the writer does not need it.
            sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard: Any = SummaryWriter(str(out / "tensorboard"), purge_step=resume_step or None)
        except ImportError:
            self.tensorboard = None

    def log(self, step: int, split: str, metrics: dict[str, float]) -> None:
        row = {"step": step, "split": split, **{k: f"{v:.6g}" for k, v in metrics.items()}}
        self._rows.append(row)
        if self.tensorboard is not None:
            for key, value in metrics.items():
                self.tensorboard.add_scalar(f"{split}/{key}", value, step)

    def flush(self) -> None:
        keys = sorted({k for row in self._rows for k in row} - {"step", "split"})
        with open(self.csv_path.with_suffix(".tmp"), "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["step", "split", *keys])
            writer.writeheader()
            writer.writerows(self._rows)
        os.replace(self.csv_path.with_suffix(".tmp"), self.csv_path)
        if self.tensorboard is not None:
            self.tensorboard.flush()


def train(config: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training; return the summary written to ``summary.json``."""
    from tqdm import tqdm

    from sim2real.policies import ActionTokenizer, save_checkpoint
    from sim2real.policies.checkpoint import load_training_state, remove_stale_temporaries
    from sim2real.policies.training import (
        EMA,
        NonFiniteLossError,
        build_optimizer,
        build_scheduler,
        evaluate,
        move_batch,
        train_step,
    )

    device, workers = check_settings(config)
    data = _open_data(config)
    train_eps, val_eps = _select_episodes(config, data)
    train_set = ChunkedEpisodeDataset(data, train_eps, config.data.history, config.data.chunk)
    val_set = ChunkedEpisodeDataset(data, val_eps or train_eps[:1], config.data.history, config.data.chunk)
    rank, world = _distributed(device)
    torch.manual_seed(config.train.seed)
    stats = data.stats_of_first(_episode_count(config, data))
    model = _build_model(config, stats).to(device)
    tokenizer = ActionTokenizer.from_stats(stats, bins=getattr(model.config, "bins", 256))
    frozen = _finetune(config, model) if config.finetune.init_from else None
    bare = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = build_optimizer(bare, lr=config.train.lr, weight_decay=config.train.weight_decay)
    scheduler = build_scheduler(optimizer, config.train.warmup_steps, config.train.max_steps)
    ema = EMA(bare, decay=config.train.ema_decay)
    out = Path(config.output_dir)
    checkpoints = _checkpoint_dir(config)
    checkpoints.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        removed = remove_stale_temporaries(checkpoints)
        if removed:
            noun = "temporary" if removed == 1 else "temporaries"
            log.info("removed %d stale checkpoint %s in %s", removed, noun, checkpoints)
        _write_atomic(out / "train_config.json", json.dumps(asdict(config), indent=1))
    start = 0
    if (checkpoints / "last").exists():
        start = int(load_training_state(checkpoints / "last", bare, optimizer, scheduler=scheduler, ema=ema)["step"])
    logs = _Logs(out, start) if rank == 0 else None
    weights = train_set.task_balanced_weights() if config.data.balance == "task" else None
    sampler = StepBatchSampler(
        len(train_set), config.data.batch_size, config.data_seed, start, config.train.max_steps, rank, world, weights
    )
    loader = BatchLoader(train_set, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0)
    val_loader = BatchLoader(val_set, batch_size=config.data.batch_size, shuffle=False, num_workers=0)
    amp = config.train.mixed_precision and device.type == "cuda"
    bar = tqdm(
        total=config.train.max_steps, initial=start, desc="train", unit="step", disable=not config.progress or rank > 0
    )
    wait, compute, last_saved, val = 0.0, 0.0, start, {}

    def validate() -> dict[str, float]:
        """The validation metrics of the weight average (EMA) of ``bare``."""
        with ema.average_parameters(bare):
            return evaluate(bare, val_loader, tokenizer, device=device, max_batches=config.train.val_batches)

    augment = torch.Generator().manual_seed(derived_seed(config.train.seed, 7))
    tick = time.perf_counter()
    for step, batch in zip(range(start, config.train.max_steps), loader, strict=False):
        fetched = time.perf_counter()
        wait += fetched - tick
        torch.manual_seed(derived_seed(config.train.seed, step))
        augment.manual_seed(derived_seed(config.train.seed, step, 1))
        try:
            metrics = train_step(model, move_batch(batch, device), tokenizer, optimizer, step=step, scheduler=scheduler,
                                 ema=ema, max_grad_norm=config.train.grad_clip, amp=amp,
                                 augment_shift=config.train.augment_shift, augment_color=config.train.augment_color,
                                 generator=augment)  # fmt: skip
        except NonFiniteLossError as error:
            if logs is not None:
                logs.flush()
            kept = (
                f"the last good checkpoint is {checkpoints / 'last'} (step {last_saved})"
                if last_saved
                else "no checkpoint was written"
            )
            raise TrainingError(f"training stopped at step {step}: {error}; {kept}") from None
        tick = time.perf_counter()
        compute += tick - fetched
        if logs is not None and step % config.train.log_every == 0:
            logs.log(step, "train", {**metrics, "data_wait_fraction": wait / max(wait + compute, 1e-9)})
        bar.update(1)
        bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['token_accuracy']:.2f}")
        done = step + 1
        if logs is not None and (done % config.train.val_every == 0 or done == config.train.max_steps):
            val = validate()
            logs.log(done, "val", val)
        if done % config.train.checkpoint_every == 0 or done == config.train.max_steps:
            if logs is not None:
                target = checkpoints / f"step_{done:07d}"
                extra = {"data_path": str(config.data.path), "train_config": asdict(config)}
                save_checkpoint(target, bare, tokenizer, stats, ema=ema, optimizer=optimizer, scheduler=scheduler,
                                step=done, extra=extra)  # fmt: skip
                _link_last(checkpoints, target)
                logs.flush()
            last_saved = done
            if world > 1:
                import torch.distributed as dist

                dist.barrier()
        tick = time.perf_counter()
    bar.close()
    if logs is None:
        return {"rank": rank}
    if not val:  # a rerun of a finished run: no step ran, so validate the saved weights again
        val = validate()
    logs.flush()
    summary = {
        "output_dir": str(out), "steps": config.train.max_steps, "lr": config.train.lr,
        "max_episodes": config.data.max_episodes,
        "train_episodes": len(train_eps), "val_episodes": len(val_eps), "val": val,
        "data_wait_fraction": wait / max(wait + compute, 1e-9), "frozen": frozen,
        "checkpoint": str(checkpoints / "last"),
    }  # fmt: skip
    _write_atomic(out / "summary.json", json.dumps(summary, indent=1, default=float))
    return summary
