"""Checkpoints: identical outputs after a round trip, exact resume, refusal of incompatible checkpoints."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from sim2real.policies.checkpoint import (
    CONFIG_FILE,
    LANGUAGE_CACHE_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    CheckpointError,
    CheckpointNotFoundError,
    load_checkpoint,
    load_training_state,
    save_checkpoint,
)
from sim2real.policies.language import MINILM_DIM
from sim2real.policies.synthetic import random_batch, tiny_config
from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.policies.training import EMA, build_optimizer, build_scheduler, train_step
from sim2real.policies.vla import VLAModel

STATS = {
    "action_p01": np.array([-0.05] * 6 + [0.0], np.float32),
    "action_p99": np.array([0.05] * 6 + [1.0], np.float32),
    "state_mean": np.linspace(-1, 1, 14).astype(np.float32),
    "state_std": np.linspace(0.5, 2, 14).astype(np.float32),
}
TOK = ActionTokenizer.from_stats(STATS)


def _model(**overrides: object) -> VLAModel:
    torch.manual_seed(0)
    model = VLAModel(tiny_config(**overrides))
    model.set_normalization(STATS)
    torch.nn.init.normal_(model.head[-1].weight, std=0.3)
    return model


def _batches(n: int) -> list[dict]:
    return [random_batch(4, 2, 4, image_size=32, seed=i) for i in range(n)]


def test_round_trip_gives_identical_outputs(tmp_path):
    model = _model().eval()
    batch = random_batch(3, 2, 4, image_size=32)
    path = save_checkpoint(tmp_path / "ckpt", model, TOK, STATS, step=5)
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["config.json", "model.safetensors", "normalization.json", "tokenizer.json"]
    )
    loaded = load_checkpoint(path)
    assert loaded.policy == "vla" and loaded.config == model.config and not loaded.model.training
    with torch.no_grad():
        assert torch.equal(model(batch), loaded.model(batch))
    assert loaded.tokenizer.to_dict() == TOK.to_dict()
    assert all(np.array_equal(loaded.stats[k], v) for k, v in STATS.items())
    assert torch.equal(loaded.model.state_std, model.state_std)
    meta = json.loads((path / CONFIG_FILE).read_text())
    assert meta["schema_version"] == 2 and meta["action"]["dim"] == 7 and meta["cameras"] == ["front", "wrist"]
    assert meta["weights"] == "online" and meta["step"] == 5


def test_ema_weights_are_the_saved_weights(tmp_path):
    model = _model()
    ema = EMA(model, decay=0.9)
    optimizer = build_optimizer(model, lr=1e-2)
    for step, batch in enumerate(_batches(3)):
        train_step(model, batch, TOK, optimizer, step=step, ema=ema)
    path = save_checkpoint(tmp_path / "ema", model, TOK, STATS, ema=ema)
    loaded = load_checkpoint(path).model
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in ema.state_dict().items())
    assert not torch.equal(loaded.head[-1].weight, model.head[-1].weight)


def test_exact_resume(tmp_path):
    batches = _batches(6)

    def setup() -> tuple:
        model = _model(dropout=0.2)  # dropout makes the global RNG state matter
        optimizer = build_optimizer(model, lr=3e-3)
        scheduler = build_scheduler(optimizer, 2, 6)
        return model, optimizer, scheduler, EMA(model, 0.9), torch.Generator().manual_seed(1)

    def run(model, optimizer, scheduler, ema, gen, steps) -> None:
        for step in steps:
            train_step(
                model,
                batches[step],
                TOK,
                optimizer,
                step=step,
                scheduler=scheduler,
                ema=ema,
                augment_shift=2,
                generator=gen,
            )

    torch.manual_seed(123)
    model, optimizer, scheduler, ema, gen = setup()
    run(model, optimizer, scheduler, ema, gen, range(3))
    save_checkpoint(
        tmp_path / "resume",
        model,
        TOK,
        STATS,
        ema=ema,
        optimizer=optimizer,
        scheduler=scheduler,
        step=3,
        generators={"augment": gen, "data": np.random.default_rng(7)},
        extra={"epoch": 0},
    )
    run(model, optimizer, scheduler, ema, gen, range(3, 6))
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    expected_ema = {k: v.clone() for k, v in ema.state_dict().items()}

    torch.manual_seed(999)  # a different RNG state, to be overwritten by the resume
    model2, optimizer2, scheduler2, ema2, gen2 = setup()
    data_rng = np.random.default_rng(0)
    state = load_training_state(
        tmp_path / "resume",
        model2,
        optimizer2,
        scheduler=scheduler2,
        ema=ema2,
        generators={"augment": gen2, "data": data_rng},
    )
    assert state["step"] == 3 and state["extra"] == {"epoch": 0}
    assert data_rng.integers(1 << 30) == np.random.default_rng(7).integers(1 << 30)
    run(model2, optimizer2, scheduler2, ema2, gen2, range(3, 6))
    assert all(torch.equal(v, model2.state_dict()[k]) for k, v in expected.items())
    assert all(torch.equal(v, ema2.state_dict()[k]) for k, v in expected_ema.items())
    assert optimizer2.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_saving_over_an_existing_checkpoint_replaces_it(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "c", model, TOK, STATS, step=1)
    save_checkpoint(tmp_path / "c", model, TOK, STATS, step=2)
    assert json.loads((tmp_path / "c" / CONFIG_FILE).read_text())["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temporary folders left


def test_minilm_embedding_cache_travels_with_the_checkpoint(tmp_path):
    model = _model(language="minilm")
    model.text._embed = lambda texts: np.ones((len(texts), MINILM_DIM), np.float32)  # no real encoder needed
    batch = random_batch(2, 2, 4, image_size=32)
    with torch.no_grad():
        out = model.eval()(batch)
    path = save_checkpoint(tmp_path / "m", model, TOK, STATS)
    assert (path / LANGUAGE_CACHE_FILE).is_file()
    assert not any(k.startswith("text.") for k in model.state_dict())  # the frozen encoder is not saved
    loaded = load_checkpoint(path).model
    loaded.text._embed = lambda texts: pytest.fail(f"cache miss for {texts}")
    with torch.no_grad():
        assert torch.equal(loaded(batch), out)


def test_lora_checkpoint_holds_merged_weights(tmp_path):
    pytest.importorskip("peft")
    from sim2real.policies.training import freeze_for_finetune

    model = _model()
    freeze_for_finetune(model, "lora", lora_rank=2)
    optimizer = build_optimizer(model, lr=1e-2)
    train_step(model, _batches(1)[0], TOK, optimizer, step=0)
    batch = random_batch(2, 2, 4, image_size=32)
    path = save_checkpoint(tmp_path / "lora", model, TOK, STATS, optimizer=optimizer, step=1)
    loaded = load_checkpoint(path).model
    with torch.no_grad():
        assert torch.allclose(model.eval()(batch), loaded(batch), atol=1e-4)


def _corrupt(path, **changes) -> None:
    meta = json.loads((path / CONFIG_FILE).read_text())
    meta.update(changes)
    (path / CONFIG_FILE).write_text(json.dumps(meta))


def test_incompatible_checkpoints_are_refused_with_clear_messages(tmp_path):
    good = save_checkpoint(tmp_path / "good", _model(), TOK, STATS)

    with pytest.raises(CheckpointError, match="action dim mismatch: the checkpoint predicts 7-D actions, expected 6"):
        load_checkpoint(good, expected_action_dim=6)
    with pytest.raises(CheckpointError, match=r"camera layout mismatch.*\['front', 'wrist'\].*\['front'\]"):
        load_checkpoint(good, expected_cameras=["front"])
    with pytest.raises(CheckpointError, match="state dim mismatch"):
        load_checkpoint(good, expected_state_dim=8)
    assert load_checkpoint(good, expected_cameras=("front", "wrist"), expected_state_dim=14).policy == "vla"

    future = shutil.copytree(good, tmp_path / "future")
    _corrupt(future, schema_version=3)
    with pytest.raises(CheckpointError, match=r"schema version mismatch.*schema version 3.*reads version 2"):
        load_checkpoint(future)

    foreign = shutil.copytree(good, tmp_path / "foreign")
    _corrupt(foreign, format="something.else")
    with pytest.raises(CheckpointError, match=r"is not a sim2real\.policy_checkpoint config"):
        load_checkpoint(foreign)

    unknown = shutil.copytree(good, tmp_path / "unknown")
    _corrupt(unknown, policy="diffusion")
    with pytest.raises(CheckpointError, match="unknown policy 'diffusion'; known policys: bc, vla"):
        load_checkpoint(unknown)

    resized = shutil.copytree(good, tmp_path / "resized")
    meta = json.loads((resized / CONFIG_FILE).read_text())
    meta["config"]["embed_dim"] = 32
    (resized / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"model\.safetensors does not fit the model.*shape mismatches"):
        load_checkpoint(resized)

    bad_tok = shutil.copytree(good, tmp_path / "bad_tok")
    (bad_tok / TOKENIZER_FILE).write_text(json.dumps({**TOK.to_dict(), "bins": 128}))
    with pytest.raises(CheckpointError, match=r"tokenizer \(7 dims, 128 bins\) does not match the config \(7 dims"):
        load_checkpoint(bad_tok)


def test_missing_folder_or_file_names_the_path(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match=str(tmp_path / "nope")):
        load_checkpoint(tmp_path / "nope")
    path = save_checkpoint(tmp_path / "c", _model(), TOK, STATS)
    (path / MODEL_FILE).unlink()
    with pytest.raises(CheckpointNotFoundError, match=f"checkpoint file not found: {path / MODEL_FILE}"):
        load_checkpoint(path)
    with pytest.raises(CheckpointNotFoundError, match=r"trainer_state\.json"):
        model = _model()
        load_training_state(path, model, build_optimizer(model))
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)


def test_schema_version_1_checkpoints_load_through_the_migration(tmp_path):
    model = _model(token_coordinates=False, keypoints=0)
    path = save_checkpoint(tmp_path / "v1", model, TOK, STATS)
    meta = json.loads((path / CONFIG_FILE).read_text())
    del meta["config"]["token_coordinates"], meta["config"]["keypoints"]  # written before the fields existed
    _corrupt(path, schema_version=1, config=meta["config"])
    loaded = load_checkpoint(path)
    assert loaded.config.token_coordinates is False and loaded.config.keypoints == 0
    batch = _batches(1)[0]
    with torch.no_grad():
        assert torch.equal(model(batch), loaded.model(batch))
