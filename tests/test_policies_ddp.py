"""DistributedDataParallel on CPU (gloo, 2 processes): gradients are averaged across ranks and
train_step keeps the replicas identical."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from sim2real.policies.synthetic import random_batch, tiny_config
from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.policies.training import build_optimizer, train_step
from sim2real.policies.vla import VLAModel, action_loss

TOK = ActionTokenizer([-0.05] * 6 + [0.0], [0.05] * 6 + [1.0])


def _flat_grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(rank)  # different initialisations: DDP must broadcast rank 0's weights
        model = VLAModel(tiny_config())
        torch.nn.init.normal_(model.head[-1].weight, std=0.1)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        batch = random_batch(2, 2, 4, image_size=32, seed=rank)  # different data on each rank

        with ddp.no_sync():  # local gradients, not synchronised
            action_loss(ddp(batch), batch, TOK)[0].backward()
        local = _flat_grads(model).clone()
        model.zero_grad(set_to_none=True)
        action_loss(ddp(batch), batch, TOK)[0].backward()
        synced = _flat_grads(model).clone()

        optimizer = build_optimizer(ddp, lr=1e-3)
        for step in range(2):
            train_step(ddp, batch, TOK, optimizer, step=step)
        params = torch.cat([p.detach().flatten() for p in model.parameters()])
        save_file(
            {"local": local, "synced": synced, "params": params}, os.path.join(out_dir, f"rank{rank}.safetensors")
        )
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo")
def test_ddp_gloo_gradients_are_synchronised(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = load_file(str(tmp_path / "rank0.safetensors"))
    r1 = load_file(str(tmp_path / "rank1.safetensors"))
    assert not torch.allclose(r0["local"], r1["local"])  # different data -> different local gradients
    assert torch.allclose(r0["synced"], r1["synced"], atol=1e-6)
    assert torch.allclose(r0["synced"], (r0["local"] + r1["local"]) / 2, atol=1e-5)
    assert torch.equal(r0["params"], r1["params"])  # replicas stay identical through train_step
