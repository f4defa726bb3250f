"""The OOD slot of TDOS: the `ood` query and the learnable OOD prompts' queries (`ood_label_id..K-1`) are merged into
one class before the semantic map and the loss; the semantic map and the anomaly score are read from the merged
predictions."""

from __future__ import annotations

import torch


def merge_ood_slot(
    class_logits: torch.Tensor, mask_logits: torch.Tensor, ood_label_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merges the OOD slot (queries `ood_label_id..K-1`) into one query: mean of class logits, max of mask logits."""
    merged_class = torch.cat([class_logits[:, :ood_label_id], class_logits[:, ood_label_id:].mean(1, keepdim=True)], 1)
    merged_mask = torch.cat([mask_logits[:, :ood_label_id], mask_logits[:, ood_label_id:].amax(1, keepdim=True)], 1)
    return merged_class, merged_mask


def reduce_score_map(score_map: torch.Tensor, ood_label_id: int) -> torch.Tensor:
    """The `K`-channel score map with the OOD slot reduced by max to one channel: `(batch, K_id, h, w)`."""
    return torch.cat([score_map[:, :ood_label_id], score_map[:, ood_label_id:].amax(1, keepdim=True)], 1)


def semantic_map_from_queries(class_logits: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """`sum_q softmax(class_q)[c] * sigmoid(mask_q)` with the no-object column dropped: `(batch, classes, H, W)`."""
    class_probabilities = class_logits.softmax(-1)[..., :-1]
    return torch.einsum("bqc,bqhw->bchw", class_probabilities, mask_logits.sigmoid())


def anomaly_score_from_semantic(semantic_map: torch.Tensor, method: str, ood_label_id: int) -> torch.Tensor:
    """Per-pixel anomaly score from a semantic map `(batch, K_id, H, W)`; higher means more anomalous."""
    if method == "ood_probability":
        return semantic_map.softmax(1)[:, ood_label_id]
    if method == "ood_logit":
        return semantic_map[:, ood_label_id]
    if method == "rba":
        return -torch.tanh(semantic_map[:, :ood_label_id]).sum(1)
    if method == "max_softmax":
        return -semantic_map[:, :ood_label_id].softmax(1).amax(1)
    raise ValueError(f"unknown anomaly score {method!r}; expected ood_probability, ood_logit, rba or max_softmax")



__all__ = ["anomaly_score_from_semantic", "merge_ood_slot", "reduce_score_map", "semantic_map_from_queries"]
