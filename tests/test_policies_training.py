"""Training core: learning on a synthetic task, overfitting one episode, NaN detection, optimiser
groups, schedule, EMA, fine-tuning modes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sim2real.policies.synthetic import (
    SyntheticVLADataset,
    collate,
    compute_stats,
    iterate_batches,
    make_episodes,
    random_batch,
    tiny_config,
)
from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.policies.training import (
    EMA,
    NonFiniteLossError,
    WarmupCosine,
    build_optimizer,
    build_scheduler,
    evaluate,
    freeze_for_finetune,
    has_lora,
    merge_lora,
    parameter_groups,
    random_color,
    random_shift,
    train_step,
)
from sim2real.policies.vla import VLAModel


def _per_dim_accuracy(model: VLAModel, batch: dict, tok: ActionTokenizer) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        pred = model(batch).argmax(-1)
    target = tok.encode(batch["actions"])
    weight = batch["action_mask"][..., None].float().expand_as(target)
    return (((pred == target).float() * weight).sum((0, 1)) / weight.sum((0, 1))).numpy()


def _train(target_sigma_bins: float, steps: int = 250) -> dict:
    """A tiny model trained ``steps`` steps on 16 synthetic episodes (instruction- and image-dependent actions)."""
    torch.manual_seed(0)
    episodes = make_episodes(16, seed=0, image_size=32)
    stats = compute_stats(episodes)
    tok = ActionTokenizer.from_stats(stats)
    model = VLAModel(tiny_config(target_sigma_bins=target_sigma_bins))
    model.set_normalization(stats)
    dataset = SyntheticVLADataset(episodes, history=2, chunk=4)
    full = collate([dataset[i] for i in range(len(dataset))])
    optimizer = build_optimizer(model, lr=3e-3, weight_decay=0.01)
    scheduler = build_scheduler(optimizer, warmup_steps=5, total_steps=steps)
    ema = EMA(model, decay=0.99)
    rng = np.random.default_rng(0)
    initial = evaluate(model, [full], tok)
    history, step = [], 0
    while step < steps:
        for batch in iterate_batches(dataset, 32, rng, drop_last=True):
            history.append(train_step(model, batch, tok, optimizer, step=step, scheduler=scheduler, ema=ema))
            step += 1
            if step == steps:
                break
    return {"model": model, "tok": tok, "full": full, "initial": initial, "history": history, "ema": ema}


@pytest.fixture(scope="module")
def trained():
    """One-hot targets (RT-1's loss); 350 steps leave margin on every CPU's float kernels (at 250
    the instruction-set dimension sat at 0.90 on an AVX2-only machine)."""
    return _train(target_sigma_bins=0.0, steps=350)


def test_soft_targets_learn_too():
    """The default loss (Gaussian targets, reported as KL): loss down, actions closer, accuracy up."""
    run = _train(target_sigma_bins=2.0)
    initial, history = run["initial"], run["history"]
    final = evaluate(run["model"], [run["full"]], run["tok"])
    assert final["loss"] < 0.1 * initial["loss"]
    assert final["action_l1"] < 0.5 * initial["action_l1"]
    # exact-bin accuracy rises less than with one-hot targets: neighbouring bins share the mass
    assert final["token_accuracy"] > initial["token_accuracy"] + 0.1
    assert np.mean([m["loss"] for m in history[-10:]]) < 0.2 * history[0]["loss"]


def test_loss_goes_down_and_token_accuracy_goes_up(trained):
    history, initial = trained["history"], trained["initial"]
    assert initial["loss"] == pytest.approx(math.log(256), abs=1e-3)
    at_100 = np.mean([m["loss"] for m in history[90:100]])
    assert at_100 < 0.2 * history[0]["loss"]
    assert np.mean([m["token_accuracy"] for m in history[90:100]]) > history[0]["token_accuracy"] + 0.3
    final = evaluate(trained["model"], [trained["full"]], trained["tok"])
    assert final["loss"] < 0.05 * initial["loss"]
    assert final["token_accuracy"] > 0.9 > initial["token_accuracy"]
    assert final["action_l1"] < initial["action_l1"]
    assert all(m["lr"] > 0 and math.isfinite(m["grad_norm"]) for m in history)


def test_policy_uses_the_instruction_and_the_image(trained):
    model, tok, full = trained["model"], trained["tok"], trained["full"]
    dyaw, dz, gripper = 5, 2, 6
    acc = _per_dim_accuracy(model, full, tok)
    assert acc[dyaw] > 0.9  # dyaw is set by the colour named in the instruction
    swapped = dict(full)
    swapped["instruction"] = [
        s.replace("red", "X").replace("blue", "red").replace("X", "blue") for s in full["instruction"]
    ]
    assert _per_dim_accuracy(model, swapped, tok)[dyaw] < acc[dyaw] - 0.2
    index = torch.randperm(len(full["instruction"]), generator=torch.Generator().manual_seed(0))
    shuffled = {**full, "images": {c: x[index] for c, x in full["images"].items()}}
    shuffled_acc = _per_dim_accuracy(model, shuffled, tok)  # reaching the block is only visible in the image
    assert shuffled_acc[dz] < acc[dz] - 0.05 and shuffled_acc[gripper] < acc[gripper] - 0.05


def test_ema_weights_are_usable_for_evaluation(trained):
    model, ema = trained["model"], trained["ema"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with ema.average_parameters(model):
        averaged = evaluate(model, [trained["full"]], trained["tok"])
        assert not torch.equal(model.head[-1].weight, before["head.2.weight"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # restored
    assert averaged["token_accuracy"] > 0.8


@pytest.mark.parametrize("sigma", [0.0, 2.0])  # one-hot targets, the default Gaussian ones
def test_overfit_one_episode(sigma: float):
    torch.manual_seed(0)
    episodes = make_episodes(1, seed=3, image_size=32)
    stats = compute_stats(episodes)
    tok = ActionTokenizer.from_stats(stats)
    model = VLAModel(tiny_config(target_sigma_bins=sigma))
    model.set_normalization(stats)
    dataset = SyntheticVLADataset(episodes)
    batch = collate([dataset[i] for i in range(len(dataset))])
    optimizer = build_optimizer(model, lr=3e-3, weight_decay=0.0)
    scheduler = build_scheduler(optimizer, 5, 150)
    for step in range(150):
        train_step(model, batch, tok, optimizer, step=step, scheduler=scheduler)
    result = evaluate(model, [batch], tok)
    assert result["token_accuracy"] >= 0.95
    assert result["action_l1"] < 0.005


def test_nan_loss_raises_and_leaves_the_weights_alone():
    model = VLAModel(tiny_config())
    tok = ActionTokenizer([-0.05] * 6 + [0.0], [0.05] * 6 + [1.0])
    batch = random_batch(2, 2, 4, image_size=32)
    optimizer = build_optimizer(model)
    with torch.no_grad():
        model.head[-1].bias.fill_(float("nan"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match="step 17") as info:
        train_step(model, batch, tok, optimizer, step=17)
    assert info.value.step == 17 and info.value.what == "loss"
    after = model.state_dict()
    assert all(torch.allclose(v, after[k], equal_nan=True) for k, v in before.items())


def test_non_finite_gradient_raises():
    model = VLAModel(tiny_config())
    tok = ActionTokenizer([-0.05] * 6 + [0.0], [0.05] * 6 + [1.0])
    batch = random_batch(2, 2, 4, image_size=32)
    optimizer = build_optimizer(model)
    model.token_proj.weight.register_hook(lambda g: g * float("inf"))
    with pytest.raises(NonFiniteLossError, match="gradient norm"):
        train_step(model, batch, tok, optimizer, step=3)


def test_weight_decay_excludes_norms_biases_and_embeddings():
    model = VLAModel(tiny_config())
    decay, no_decay = parameter_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert "token_proj.weight" in decayed and "transformer.blocks.0.attn.q_proj.weight" in decayed
    assert {"token_proj.bias", "transformer.norm.weight", "readout", "time_embed"} <= undecayed
    assert any("norms" in n for n in undecayed) and not any(n.endswith("bias") for n in decayed)
    assert len(decayed) + len(undecayed) == len(list(model.parameters()))


def test_warmup_cosine_schedule():
    schedule = WarmupCosine(warmup_steps=10, total_steps=110, min_ratio=0.1)
    assert schedule(0) == pytest.approx(0.1) and schedule(9) == pytest.approx(1.0)
    assert schedule(60) == pytest.approx(0.55) and schedule(110) == pytest.approx(0.1)
    assert schedule(500) == pytest.approx(0.1)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.0)
    scheduler = build_scheduler(optimizer, 10, 110)
    lrs = []
    for _ in range(110):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert max(lrs) == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)


def test_ema_update_rule():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # decay = min(0.5, 2 / 11)
    assert ema.state_dict()["weight"].item() == pytest.approx(1 - 2 / 11)


def test_random_shift_keeps_shape_and_dtype():
    images = torch.randint(0, 256, (3, 2, 16, 16, 3), dtype=torch.uint8)
    out = random_shift(images, 2, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(random_shift(images, 0), images)
    same = random_shift(images, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)


def test_random_shift_is_a_replicate_padded_crop():
    images = torch.randint(0, 256, (64, 2, 12, 10, 3), dtype=torch.uint8)
    pad = 3
    out = random_shift(images, pad, torch.Generator().manual_seed(1))
    offsets = torch.randint(0, 2 * pad + 1, (64, 2), generator=torch.Generator().manual_seed(1)).tolist()
    channels_first = images.permute(0, 1, 4, 2, 3).reshape(64, 6, 12, 10).float()
    padded = torch.nn.functional.pad(channels_first, (pad, pad, pad, pad), mode="replicate")
    for i, (dy, dx) in enumerate(offsets):
        expected = padded[i, :, dy : dy + 12, dx : dx + 10].reshape(2, 3, 12, 10).permute(0, 2, 3, 1)
        assert torch.equal(out[i], expected.to(torch.uint8)), (i, dy, dx)
    assert len({tuple(o) for o in offsets}) > 20  # every shift direction, including none, is exercised


def test_random_color_keeps_shape_dtype_and_is_seeded():
    images = {c: torch.randint(0, 256, (4, 2, 8, 8, 3), dtype=torch.uint8) for c in ("front", "wrist")}
    out = random_color(images, 0.5, torch.Generator().manual_seed(0))
    assert all(out[c].shape == images[c].shape and out[c].dtype == torch.uint8 for c in images)
    assert random_color(images, 0.0) is images
    again = random_color(images, 0.5, torch.Generator().manual_seed(0))
    assert all(torch.equal(out[c], again[c]) for c in images)
    assert not torch.equal(out["front"], images["front"])


def test_random_color_changes_every_camera_and_frame_of_a_sample_alike():
    """Flat grey frames: contrast leaves them flat, so each channel is 100 * brightness * its gain,
    within the stated ranges and the same for both cameras and both frames of a sample."""
    flat = torch.full((64, 2, 4, 4, 3), 100, dtype=torch.uint8)
    out = random_color({"front": flat, "wrist": flat.clone()}, 0.4, torch.Generator().manual_seed(3))
    assert torch.equal(out["front"], out["wrist"])
    assert torch.equal(out["front"][:, 0], out["front"][:, 1])
    gains = out["front"][:, 0, 0, 0].float() / 100  # (64, 3): brightness * channel gain
    assert gains.min() >= 0.6 * 0.8 - 0.01 and gains.max() <= 1.4 * 1.2 + 0.01
    assert gains.std(dim=0).min() > 0.05  # the draws differ between samples
    assert (gains[:, 0] != gains[:, 2]).any()  # and between channels: a colour shift


def test_freeze_for_finetune_head_trains_only_the_head_and_last_layer():
    model = VLAModel(tiny_config())
    tok = ActionTokenizer([-0.05] * 6 + [0.0], [0.05] * 6 + [1.0])
    counts = freeze_for_finetune(model, "head", trainable_layers=1)
    assert 0 < counts["trainable"] < counts["total"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("head.") for n in trainable) and any(
        n.startswith("transformer.blocks.1.") for n in trainable
    )
    assert not any(n.startswith(("vision.", "text.", "transformer.blocks.0.", "token_learner.")) for n in trainable)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = build_optimizer(model, lr=1e-2)
    train_step(model, random_batch(2, 2, 4, image_size=32), tok, optimizer, step=0)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(
        k.startswith(("head.", "transformer.blocks.1.", "transformer.norm", "readout")) for k in changed
    )
    with pytest.raises(ValueError, match="known: head, lora"):
        freeze_for_finetune(model, "full")


def test_freeze_for_finetune_lora_and_merge():
    pytest.importorskip("peft")
    torch.manual_seed(0)
    model = VLAModel(tiny_config())
    tok = ActionTokenizer([-0.05] * 6 + [0.0], [0.05] * 6 + [1.0])
    batch = random_batch(2, 2, 4, image_size=32)
    plain_keys = set(model.state_dict())
    freeze_for_finetune(model, "lora", lora_rank=4)
    assert has_lora(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any(n.startswith("head.") for n in trainable)
    assert not any(n.startswith("vision.") or "base_layer" in n for n in trainable)
    optimizer = build_optimizer(model, lr=1e-2)
    for step in range(3):
        train_step(model, batch, tok, optimizer, step=step)
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)
    merged = merge_lora(model)
    assert set(merged.state_dict()) == plain_keys and not has_lora(merged)
    model.eval()
    merged.eval()
    with torch.no_grad():
        assert torch.allclose(model(batch), merged(batch), atol=1e-4)
