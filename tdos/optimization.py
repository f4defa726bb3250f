"""The optimisation recipe of TDOS: per-module learning rates and weight decay, and the released learning-rate schedule
(mmcv's linear warm-up + poly decay, docs/method.md §5)."""

from __future__ import annotations

from functools import partial

from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def get_parameter_groups(model, learning_rate: float, weight_decay: float) -> list[dict]:
    """Optimizer parameter groups of a TDOS model (docs/method.md §5): frozen parameters excluded; the image tower,
    when trained, at `image_tower_lr_multiplier` times the rate; norms, level embeddings and query position embeddings
    without weight decay."""
    no_decay_types = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)  # SyncBatchNorm included
    no_decay = {
        id(parameter)
        for module in model.modules()
        if isinstance(module, no_decay_types)
        for parameter in module.parameters(recurse=False)
    }
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        lr = learning_rate
        if name.startswith("image_encoder."):
            lr = learning_rate * model.config.image_tower_lr_multiplier
        decay = weight_decay
        if id(parameter) in no_decay or "level_embed" in name or "query_position_embeddings" in name:
            decay = 0.0
        groups.setdefault((lr, decay), []).append(parameter)
    return [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]


def release_learning_rate(
    step: int,
    base_lr: float,
    num_training_steps: int,
    num_warmup_steps: int,
    min_lr: float = 1e-6,
    power: float = 0.9,
    warmup_start_factor: float = 1e-6,
) -> float:
    """
    The learning rate of optimizer step `step` (0-based) under mmcv's `PolyLrUpdaterHook` with linear warm-up, as the
    release configures it (`schedule_20k.py`): the poly value `(base_lr - min_lr) (1 - step / num_training_steps)^power
    + min_lr` at every step, multiplied during the first `num_warmup_steps` steps by `1 - (1 - step /
    num_warmup_steps)(1 - warmup_start_factor)`. Unlike `transformers`' polynomial schedule, the decay does not restart
    after the warm-up: it runs over all steps from step 0, and `min_lr` is absolute (the same for every group).
    """
    poly = (base_lr - min_lr) * (1 - min(step, num_training_steps) / num_training_steps) ** power + min_lr
    if step < num_warmup_steps:
        poly *= 1 - (1 - step / num_warmup_steps) * (1 - warmup_start_factor)
    return poly


def _release_factor(step: int, base_lr: float, **kwargs) -> float:
    return release_learning_rate(step, base_lr, **kwargs) / base_lr if base_lr > 0 else 0.0


def get_release_poly_schedule(
    optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    min_lr: float = 1e-6,
    power: float = 0.9,
    warmup_start_factor: float = 1e-6,
) -> LambdaLR:
    """A `LambdaLR` following [`release_learning_rate`] for every parameter group from its own initial rate."""
    if num_training_steps <= 0:
        raise ValueError(f"num_training_steps must be > 0, got {num_training_steps}")
    options = {
        "num_training_steps": num_training_steps,
        "num_warmup_steps": num_warmup_steps,
        "min_lr": min_lr,
        "power": power,
        "warmup_start_factor": warmup_start_factor,
    }
    lambdas = [partial(_release_factor, base_lr=group["lr"], **options) for group in optimizer.param_groups]
    return LambdaLR(optimizer, lambdas)


__all__ = ["get_parameter_groups", "get_release_poly_schedule", "release_learning_rate"]
