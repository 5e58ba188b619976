"""Policy checkpoints as a folder, with no pickle anywhere.

Layout of ``<path>/``::

    config.json                   format, schema version, policy name + config, action/camera/state layout
    model.safetensors             the weights to act with (the EMA weights when an EMA was kept;
                                  LoRA adapters merged into their base layers)
    normalization.json            dataset statistics (action_p01/p99, state_mean/std, ...)
    tokenizer.json                the action space's spec (1st/99th percentiles, bins): the VLA's
                                  tokenizer, the scaling of the BC regression head
    ...                           the files the policy type keeps beside its weights (its
                                  ``save_files``), e.g. language_cache.npz (MiniLM instruction embeddings)
    # optional, for an exact resume of training:
    training_weights.safetensors  the online (non-averaged) weights, as trained
    optimizer.safetensors         optimiser state tensors, torch RNG states, named generator states
    trainer_state.json            step, optimiser hyper-parameters, scheduler state, EMA count, extra JSON

A checkpoint is written to a temporary sibling folder (``.<name>.tmp-<pid>``) and renamed into
place, so an interrupted save never damages the previous checkpoint at the same path; a save
killed mid-write leaves its temporary folder, which :func:`remove_stale_temporaries` removes once
its process is gone. In distributed training, save from rank 0 only.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sim2real import __version__
from sim2real.errors import DataIntegrityError, Sim2RealError
from sim2real.policies.registry import POLICIES
from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.policies.vla.model import LANGUAGE_CACHE_FILE as LANGUAGE_CACHE_FILE

FORMAT = "sim2real.policy_checkpoint"
SCHEMA_VERSION = 2

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
NORMALIZATION_FILE = "normalization.json"
TOKENIZER_FILE = "tokenizer.json"
TRAINING_WEIGHTS_FILE = "training_weights.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_STATE_FILE = "trainer_state.json"
REQUIRED_FILES = (CONFIG_FILE, MODEL_FILE, NORMALIZATION_FILE, TOKENIZER_FILE)


def _v1_to_v2(meta: dict[str, Any]) -> dict[str, Any]:
    """Version 2 added ``token_coordinates`` and ``keypoints`` (default on); version-1 models had neither."""
    config = {**meta.get("config", {}), "token_coordinates": False, "keypoints": 0}
    return {**meta, "schema_version": 2, "config": config}


#: ``{old_version: f(config_json) -> config_json of old_version + 1}``
MIGRATIONS: dict[int, Any] = {1: _v1_to_v2}


class CheckpointError(Sim2RealError, RuntimeError):
    """A checkpoint cannot be used here; the message names the path and the mismatch."""

    exit_code = 1


class CorruptCheckpointError(CheckpointError, DataIntegrityError):
    """A checkpoint file that is truncated or corrupt; the message names the file."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint folder or one of its files does not exist."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode), its tokenizer, dataset statistics and metadata."""

    path: Path
    policy: str
    model: nn.Module
    tokenizer: ActionTokenizer
    stats: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> Any:
        return self.model.config  # type: ignore[return-value]


# ---------------------------------------------------------------------------------- helpers
def _bare(model: nn.Module) -> nn.Module:
    while isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        model = model.module
    return model


def _policy_name(model: nn.Module) -> str:
    for name in POLICIES.names():
        if POLICIES.get(name) is type(model):
            return name
    raise CheckpointError(f"{type(model).__name__} is not a registered policy; known: {POLICIES.names()}")


def _has_lora(model: nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


def _export_state(model: nn.Module, state: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The state dict to act with: ``state`` (e.g. EMA) loaded into a copy if given, LoRA merged."""
    if state is None and not _has_lora(model):
        return _tensors(model.state_dict())
    work = copy.deepcopy(model)
    if state is not None:
        work.load_state_dict(state)
    if _has_lora(work):
        from sim2real.policies.training import merge_lora

        work = merge_lora(work)
    return _tensors(work.state_dict())


def _tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=True) + "\n")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error


def _save_tensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file(dict(tensors), str(path), metadata=metadata or {})


def _load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint file not found: {path}")
    try:
        return load_file(str(path), device=str(device))
    except SafetensorError as error:
        raise CorruptCheckpointError(f"{path}: truncated or corrupt safetensors file ({error})") from None


# ---------------------------------------------------------------------------------- save
def _optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    tokenizer: ActionTokenizer,
    stats: Mapping[str, Any],
    *,
    ema: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    step: int | None = None,
    generators: Mapping[str, torch.Generator | np.random.Generator] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder at ``path`` (replacing one already there, atomically).

    ``ema`` (a :class:`sim2real.policies.training.EMA`) makes ``model.safetensors`` hold the
    averaged weights. With ``optimizer`` the resume files are written too: online weights,
    optimiser state, ``scheduler`` state, ``step``, the global torch RNG states, the states of
    the named ``generators`` and the JSON-able ``extra``.
    """
    path = Path(path)
    bare = _bare(model)
    name = _policy_name(bare)
    config = bare.config  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _work_folder(path, _TEMPORARY)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        meta = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "policy": name,
            "config": config.to_dict(),
            "action": {
                "dim": tokenizer.dim,
                "names": list(tokenizer.names),
                "chunk": getattr(config, "chunk", None),
                "bins": tokenizer.bins,
                "convention": "end-effector delta in the robot base frame; gripper in [0, 1], 1 = open",
            },
            "cameras": list(getattr(config, "cameras", ())),
            "image_size": getattr(config, "image_size", None),
            "state_dim": getattr(config, "state_dim", None),
            "history": getattr(config, "history", None),
            "weights": "ema" if ema is not None else "online",
            "step": step,
            "versions": {"sim2real": __version__, "torch": torch.__version__},
        }
        _write_json(tmp / CONFIG_FILE, meta)
        _save_tensors(
            tmp / MODEL_FILE, _export_state(bare, ema.state_dict() if ema is not None else None), {"format": "pt"}
        )
        _write_json(tmp / NORMALIZATION_FILE, dict(stats))
        _write_json(tmp / TOKENIZER_FILE, tokenizer.to_dict())
        save_files = getattr(bare, "save_files", None)
        if save_files is not None:
            save_files(tmp)
        if optimizer is not None:
            _save_training_state(tmp, bare, optimizer, scheduler, ema, step, generators, extra)
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _save_training_state(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    ema: Any,
    step: int | None,
    generators: Mapping[str, torch.Generator | np.random.Generator] | None,
    extra: Mapping[str, Any] | None,
) -> None:
    _save_tensors(folder / TRAINING_WEIGHTS_FILE, _tensors(model.state_dict()), {"format": "pt"})
    tensors, optim_json = _optimizer_state(optimizer)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    numpy_generators: dict[str, Any] = {}
    for name, gen in (generators or {}).items():
        if isinstance(gen, torch.Generator):
            tensors[f"generator.{name}"] = gen.get_state()
        elif isinstance(gen, np.random.Generator):
            numpy_generators[name] = gen.bit_generator.state
        else:
            raise TypeError(f"generator {name!r} is a {type(gen).__name__}, not a torch or numpy Generator")
    if ema is not None and _has_lora(model):
        tensors.update({f"ema.{k}": v for k, v in _tensors(ema.state_dict()).items()})
    _save_tensors(folder / OPTIMIZER_FILE, tensors)
    state = {
        "step": step,
        "optimizer": optim_json,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "ema": {"decay": ema.decay, "updates": ema.updates} if ema is not None else None,
        "lora": _has_lora(model),
        "numpy_generators": numpy_generators,
        "extra": dict(extra or {}),
    }
    _write_json(folder / TRAINER_STATE_FILE, state)


#: the sibling folders a save works in: ``.<name>.tmp-<pid>`` (being written) and
#: ``.<name>.old-<pid>`` (the checkpoint it replaces, until the new one is in place)
_TEMPORARY, _REPLACED = "tmp", "old"
_WORK_FOLDER = re.compile(rf"\.(?P<name>.+)\.(?P<kind>{_TEMPORARY}|{_REPLACED})-(?P<pid>\d+)")


def _work_folder(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}-{os.getpid()}"


def _replace_dir(new: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = _work_folder(target, _REPLACED)
        if old.exists():
            shutil.rmtree(old)
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs here (this process counts as gone: it has no save under way)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_stale_temporaries(folder: str | Path) -> int:
    """Remove the work folders of saves into ``folder`` whose process is gone; return how many.

    A save killed mid-write leaves ``.<name>.tmp-<pid>``: it is deleted. One killed between
    moving the old checkpoint aside and moving the new one in leaves ``.<name>.old-<pid>`` and no
    ``<name>``: the old checkpoint is put back. Call it before this process saves into ``folder``.
    """
    folder = Path(folder)
    removed = 0
    for entry in sorted(folder.glob(".*")):
        match = _WORK_FOLDER.fullmatch(entry.name)
        if match is None or not entry.is_dir() or not _process_gone(int(match["pid"])):
            continue
        original = folder / match["name"]
        if match["kind"] == _REPLACED and not original.exists():
            entry.rename(original)
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


# ---------------------------------------------------------------------------------- load
def read_meta(path: str | Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint, migrated to the current schema; raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint folder not found: {path}")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint path is not a folder: {path}")
    meta = _read_json(path / CONFIG_FILE)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path / CONFIG_FILE} is not a {FORMAT} config (format={meta.get('format')!r})")
    version = meta.get("schema_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path / CONFIG_FILE} has no integer schema_version")
    while version < SCHEMA_VERSION and version in MIGRATIONS:
        meta = MIGRATIONS[version](meta)
        version = meta["schema_version"]
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: schema version mismatch: the checkpoint has schema version {meta['schema_version']}, "
            f"this code reads version {SCHEMA_VERSION} (no migration from {version}); to convert it, add a "
            f"migration from version {version} to sim2real.policies.checkpoint.MIGRATIONS, or use it with the "
            f"sim2real that wrote it ({meta.get('versions', {}).get('sim2real', 'see versions in config.json')})"
        )
    return meta


def _check_layout(
    path: Path, meta: dict[str, Any], action_dim: int | None, cameras: Sequence[str] | None, state_dim: int | None
) -> None:
    problems = []
    got_dim = meta.get("action", {}).get("dim")
    if action_dim is not None and got_dim != action_dim:
        problems.append(f"action dim mismatch: the checkpoint predicts {got_dim}-D actions, expected {action_dim}")
    got_cameras = list(meta.get("cameras", []))
    if cameras is not None and got_cameras != list(cameras):
        problems.append(f"camera layout mismatch: the checkpoint uses cameras {got_cameras}, expected {list(cameras)}")
    if state_dim is not None and meta.get("state_dim") != state_dim:
        problems.append(
            f"state dim mismatch: the checkpoint uses {meta.get('state_dim')}-D state, expected {state_dim}"
        )
    if problems:
        raise CheckpointError(f"{path}: " + "; ".join(problems))


def _load_weights(path: Path, model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path / what} does not fit the model built from its config: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatches {wrong[:5]}"
        )
    model.load_state_dict(state)


def load_checkpoint(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    expected_action_dim: int | None = 7,
    expected_cameras: Sequence[str] | None = None,
    expected_state_dim: int | None = None,
) -> Checkpoint:
    """Load a checkpoint folder for acting or evaluation (model in eval mode on ``device``).

    Raises :class:`CheckpointNotFoundError` naming a missing folder/file, and
    :class:`CheckpointError` naming the mismatch when the schema version, the action dim, the
    camera layout or the state dim differ from what the caller expects (``None`` = any).
    """
    path = Path(path)
    meta = read_meta(path)
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise CheckpointNotFoundError(f"checkpoint file not found: {path / name}")
    _check_layout(path, meta, expected_action_dim, expected_cameras, expected_state_dim)
    try:
        cls = POLICIES.get(meta["policy"])
    except KeyError as error:
        raise CheckpointError(f"{path}: {error}") from None
    try:
        config = cls.config_class.from_dict(meta["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path / CONFIG_FILE}: invalid policy config: {error}") from error
    tokenizer = ActionTokenizer.from_dict(_read_json(path / TOKENIZER_FILE))
    if tokenizer.dim != meta["action"]["dim"] or tokenizer.bins != getattr(config, "bins", tokenizer.bins):
        raise CheckpointError(
            f"{path}: tokenizer ({tokenizer.dim} dims, {tokenizer.bins} bins) does not match the config "
            f"({meta['action']['dim']} dims, {getattr(config, 'bins', '?')} bins)"
        )
    stats = {k: np.asarray(v, dtype=np.float32) for k, v in _read_json(path / NORMALIZATION_FILE).items()}
    model = cls(config, load_pretrained=False)
    _load_weights(path, model, _load_tensors(path / MODEL_FILE), MODEL_FILE)
    load_files = getattr(model, "load_files", None)
    if load_files is not None:
        load_files(path)
    model.to(device).eval()
    return Checkpoint(path=path, policy=meta["policy"], model=model, tokenizer=tokenizer, stats=stats, meta=meta)


def _like_parameter(value: torch.Tensor, params: list[torch.Tensor], index: int) -> torch.Tensor:
    """An optimiser state tensor in its parameter's memory layout (e.g. channels-last conv weights).

    Safetensors stores contiguous tensors; fused optimisers walk state and parameter memory in
    step, so a moment buffer must have the parameter's strides again.
    """
    if index < len(params) and value.shape == params[index].shape:
        return torch.empty_like(params[index], dtype=value.dtype).copy_(value)
    return value


def load_training_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ema: Any = None,
    generators: Mapping[str, torch.Generator | np.random.Generator] | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore everything for an exact resume into already-built objects; returns ``trainer_state.json``.

    ``model`` (possibly DDP-wrapped; re-inject LoRA adapters first when resuming a LoRA
    fine-tune) gets the online weights, ``optimizer``/``scheduler`` their states, ``ema`` the
    averaged weights, the global torch RNGs (``restore_rng``) and the named ``generators``
    their saved states.
    """
    path = Path(path)
    read_meta(path)
    state = _read_json(path / TRAINER_STATE_FILE)
    bare = _bare(model)
    device = next(bare.parameters()).device
    _load_weights(path, bare, _load_tensors(path / TRAINING_WEIGHTS_FILE, device), TRAINING_WEIGHTS_FILE)
    tensors = _load_tensors(path / OPTIMIZER_FILE)

    optim_json = state["optimizer"]
    template = optimizer.state_dict()
    if len(template["param_groups"]) != len(optim_json["param_groups"]):
        raise CheckpointError(
            f"{path / TRAINER_STATE_FILE}: {len(optim_json['param_groups'])} optimiser parameter groups saved, "
            f"the optimiser has {len(template['param_groups'])}"
        )
    groups = []
    for saved, current in zip(optim_json["param_groups"], template["param_groups"], strict=True):
        group = dict(saved)
        for key, value in current.items():
            if isinstance(value, tuple) and isinstance(group.get(key), list):
                group[key] = tuple(group[key])
        groups.append(group)
    params = [p for group in optimizer.param_groups for p in group["params"]]  # state_dict's index order
    per_param: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            per_param.setdefault(int(index), {})[name] = _like_parameter(value, params, int(index))
    for index, scalars in optim_json.get("scalars", {}).items():
        per_param.setdefault(int(index), {}).update(scalars)
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})

    if scheduler is not None:
        if state.get("scheduler") is None:
            raise CheckpointError(f"{path / TRAINER_STATE_FILE} holds no scheduler state")
        scheduler.load_state_dict(state["scheduler"])
    if ema is not None:
        if state.get("ema") is None:
            raise CheckpointError(f"{path / TRAINER_STATE_FILE} holds no EMA state (saved without ema)")
        if state.get("lora"):  # model.safetensors holds merged weights; the raw average is kept aside
            averaged = {k[len("ema.") :]: v.to(device) for k, v in tensors.items() if k.startswith("ema.")}
        else:
            averaged = _load_tensors(path / MODEL_FILE, device)
        ema.load_state_dict(averaged, updates=int(state["ema"]["updates"]))
    if restore_rng:
        torch.set_rng_state(tensors["rng.torch"])
        cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        cuda_states = [tensors[k] for k in cuda_keys]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states)
    for name, gen in (generators or {}).items():
        if isinstance(gen, torch.Generator):
            key = f"generator.{name}"
            if key not in tensors:
                raise CheckpointError(f"{path / OPTIMIZER_FILE} holds no state for generator {name!r}")
            gen.set_state(tensors[key])
        else:
            saved = state.get("numpy_generators", {}).get(name)
            if saved is None:
                raise CheckpointError(f"{path / TRAINER_STATE_FILE} holds no state for generator {name!r}")
            gen.bit_generator.state = saved
    return state
