"""Synchronised batch normalisation for distributed training, as the release converts its backbone's BatchNorm layers
(`train.py`, docs/method.md §5), on GPUs and on CPU process groups alike.

PyTorch's `nn.SyncBatchNorm` refuses CPU tensors (and DDP refuses it in CPU modules). [`SyncBatchNorm`] reduces the
per-channel sums, sums of squares and counts over the process group with a differentiable `all_reduce` (gloo or
NCCL), so `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu` runs normalise with the statistics of the global batch
too; without a process group of more than one process it is a plain `BatchNorm`.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch of all processes in training (see the module docstring)."""

    def _check_input_dim(self, input: torch.Tensor):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (batch, channels, ...), got {input.dim()}-D")

    def _needs_sync(self) -> bool:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return False
        return dist.get_world_size() > 1

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self._needs_sync():
            return super().forward(input)
        self._check_input_dim(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        values = input.float()  # statistics in float32 also under bf16/fp16 autocast (and the float32 running buffers)
        count = values.new_full((1,), input.numel() / channels)
        stats = all_reduce(torch.cat([values.sum(dims), (values * values).sum(dims), count]))
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels : 2 * channels] / total - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * total / (total - 1).clamp_min(1), momentum)
        shape = (1, channels) + (1,) * (input.dim() - 2)
        output = (values - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        return output.to(input.dtype)


def convert_sync_batchnorm(module: nn.Module) -> tuple[nn.Module, int]:
    """Replaces every `BatchNorm1d/2d/3d` of `module` by a [`SyncBatchNorm`] with the same parameters, buffers,
    `requires_grad` and mode. Returns the module and the number of layers converted."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, (SyncBatchNorm, nn.SyncBatchNorm)):
        converted = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                converted.weight = module.weight
                converted.bias = module.bias
        converted.running_mean = module.running_mean
        converted.running_var = module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted, 1
    total = 0
    for name, child in module.named_children():
        new_child, count = convert_sync_batchnorm(child)
        if new_child is not child:
            module.add_module(name, new_child)
        total += count
    return module, total


__all__ = ["SyncBatchNorm", "convert_sync_batchnorm"]
