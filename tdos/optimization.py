"""The optimisation recipe of TDOS: per-module learning rates and weight decay."""

from torch import nn


def get_parameter_groups(model, learning_rate: float, weight_decay: float) -> list[dict]:
    """Optimizer parameter groups of a TDOS model (docs/method.md §5): frozen parameters excluded; the image tower,
    when trained, at `image_tower_lr_multiplier` times the rate; norms, level embeddings and query position embeddings
    without weight decay."""
    no_decay_types = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)
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


__all__ = ["get_parameter_groups"]
