"""Run under torchrun (2 CPU processes): one DDP step must give the single-process gradient.

Each rank builds the same small audio model, computes the full-batch gradient alone (the reference), then the
distributed one exactly as model.train does it (its share of the global batch, cross-rank BatchNorm, loss scaled
by world size / global batch). Prints the largest relative difference as JSON on rank 0.
"""

from __future__ import annotations

import copy
import json

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from model.batchnorm import sync_batchnorm
from model.config import TrainConfig
from model.networks import build_model


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = build_model(TrainConfig(modality="audio", audio_width=4), 13).double()
    audio = torch.randn(8, 1, 64, 400, dtype=torch.float64) * 10 - 40
    labels = torch.randint(0, 13, (8,))

    reference = copy.deepcopy(model)
    F.cross_entropy(reference(audio=audio), labels).backward()

    ddp = DistributedDataParallel(sync_batchnorm(model, torch.device("cpu")))
    mine = slice(rank, None, world)
    loss = F.cross_entropy(ddp(audio=audio[mine]), labels[mine], reduction="sum")
    (loss * world / len(labels)).backward()

    worst = 0.0
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        scale = q.grad.abs().max().item() + 1e-12
        worst = max(worst, (p.grad - q.grad).abs().max().item() / scale)
        assert p.grad is not None, name
    if rank == 0:
        print(json.dumps({"max_relative_grad_difference": worst}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
