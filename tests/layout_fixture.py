"""Outputs of a saved tiny model, reduced to a few numbers per tensor, for the layout-compatibility test.

`reference_outputs` runs a model the same way on every version of the code: eval-mode forward, `predict` in both
inference modes and one training-mode forward with labels (seeded), and keeps from each output tensor 256 values at
fixed positions, its sum and its absolute sum. `tests/fixtures/tdos-0.1/` holds tiny models saved by the code before
the layout split together with these numbers (see its README); `test_layout.py` checks the current code against
them.
"""

import torch


def _reduce(name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    flat = tensor.detach().double().flatten()
    index = torch.randint(0, flat.numel(), (256,), generator=torch.Generator().manual_seed(flat.numel()))
    return {f"{name}.values": flat[index], f"{name}.sum": flat.sum()[None], f"{name}.abs_sum": flat.abs().sum()[None]}


def reference_outputs(model) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, 64, 128, generator=generator)
    large = torch.randn(1, 3, 70, 150, generator=generator)
    batch = torch.randn(2, 3, 64, 128, generator=generator)
    labels = torch.randint(0, 19, (2, 64, 128), generator=generator)
    labels[0, 20:40, 40:80] = 19
    labels[1, :6] = 255
    result = {}
    model.eval()
    with torch.no_grad():
        output = model(image)
        for key in ("class_queries_logits", "masks_queries_logits", "semantic_map", "anomaly_score", "score_map"):
            result.update(_reduce(f"eval.{key}", getattr(output, key)))
        result.update(_reduce("eval.text_embeddings", output.text_embeddings))
        for mode in ("slide", "whole"):
            prediction = model.predict(large, inference_mode=mode)
            result.update(_reduce(f"predict_{mode}.semantic_map", prediction.semantic_map))
            result.update(_reduce(f"predict_{mode}.anomaly_score", prediction.anomaly_score))
    model.train()
    torch.manual_seed(0)
    output = model(batch, labels=labels)
    result["train.loss"] = output.loss.detach().double()[None]
    for key, value in output.loss_dict.items():
        result[f"train.{key}"] = value.detach().double()[None]
    model.eval()
    return result
