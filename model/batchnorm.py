"""BatchNorm across ranks, and BatchNorm statistics that are right for the weights being evaluated.

:func:`recompute_batchnorm_stats` ("precise BN") re-estimates the running statistics before every evaluation.

:class:`CrossRankBatchNorm2d`: batch statistics that span all ranks, so a torchrun run trains like one process.

With the global batch split over N ranks, plain BatchNorm normalises each rank's 1/N share with its own
statistics, and the run drifts from the single-process one. On CUDA torch's ``nn.SyncBatchNorm`` fixes that; it
refuses CPU tensors, so for CPU (gloo) this module all-reduces the per-channel sums with autograd-aware
collectives. Its state dict keys equal ``nn.BatchNorm2d``'s, so checkpoints load into the plain network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


class CrossRankBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with training statistics over the whole global batch (CPU-capable)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        channels = x.shape[1]
        count = x.new_tensor([x.numel() / channels])
        local = torch.cat([x.sum(dim=(0, 2, 3)), x.square().sum(dim=(0, 2, 3)), count])
        total = all_reduce(local)  # (2C + 1,) summed over ranks; gradients flow back to every rank's inputs
        n = total[-1]
        mean = total[:channels] / n
        var = (total[channels : 2 * channels] / n - mean.square()).clamp_min(0)
        if self.track_running_stats:
            # Set whenever track_running_stats is (nn.BatchNorm2d types them as optional).
            assert self.running_mean is not None and self.running_var is not None
            assert self.num_batches_tracked is not None
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1), momentum)
                self.num_batches_tracked += 1
        shape = (1, channels, 1, 1)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Swap every BatchNorm2d for a cross-rank one: torch's SyncBatchNorm on CUDA, ours on CPU."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, CrossRankBatchNorm2d):
            like = next(iter(child.state_dict().values()))  # keep the layer's device and float dtype
            replacement = CrossRankBatchNorm2d(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
                device=like.device,
                dtype=child.weight.dtype if child.affine else like.dtype,
            )
            replacement.load_state_dict(child.state_dict())
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            sync_batchnorm(child, device)
    return module


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def recompute_batchnorm_stats(
    model: nn.Module,
    batches: Iterable[tuple[int, dict[str, torch.Tensor]]],
    forward: Callable[[dict[str, torch.Tensor]], object],
) -> int:
    """ "Precise BN": re-estimate every BatchNorm's running statistics for the current weights.

    With few optimiser steps per epoch (small corpora), the exponential running averages (momentum 0.1) still
    hold mostly the statistics of earlier weights, so eval-mode outputs are meaningless and model selection
    picks the wrong epoch. Here the running mean and variance are reset and replaced by the sample-weighted
    average of the per-batch statistics of `batches` (training data, no augmentation), computed in train mode
    without gradients. Under torchrun every rank must pass its share of the same global batches (the
    cross-rank layers then see the global batch, and `forward` must be called the same number of times).

    Args:
        model: the network; left in train mode.
        batches: (global batch size, this rank's share of the batch, already on the model's device).
        forward: runs the model on one batch (the caller owns autocast and which inputs are used).

    Returns:
        The number of batches used (0 leaves the statistics untouched).
    """
    layers = _batchnorms(model)
    saved = []
    for layer in layers:
        assert layer.running_mean is not None and layer.running_var is not None  # track_running_stats is set
        saved.append((layer.running_mean.clone(), layer.running_var.clone(), layer.momentum))
    for layer in layers:
        layer.reset_running_stats()
    model.train()
    seen, used = 0, 0
    with torch.no_grad():
        for size, batch in batches:
            seen += size
            for layer in layers:
                # running ← running + (size / seen)·(batch − running): the average over all samples so far.
                layer.momentum = size / seen
            forward(batch)
            used += 1
    for layer, (mean, var, momentum) in zip(layers, saved, strict=True):
        layer.momentum = momentum
        if used == 0:
            assert layer.running_mean is not None and layer.running_var is not None
            layer.running_mean.copy_(mean)
            layer.running_var.copy_(var)
    return used
