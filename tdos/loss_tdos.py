"""The training loss of TDOS, beside its model the way `Mask2FormerLoss` stands beside Mask2Former.

Identity assignment (merged query `c` <-> class `c`, no Hungarian matching) after the OOD-slot merge; for every
decoder prediction (deep supervision) a weighted cross-entropy on the class logits and point-sampled sigmoid BCE and
Dice on the masks; a cross-entropy identity head on the score map; the textual regulariser (refined text embeddings
stay nearest their frozen anchors) and the visual regulariser (the trained image tower's global embedding stays near
a frozen reference tower's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.mask2former.modeling_mask2former import dice_loss, sample_point, sigmoid_cross_entropy_loss

from .configuration_tdos import IGNORE_INDEX, TDOSConfig
from .modeling_tdos_ood_slot import reduce_score_map


def sample_uncertain_points(
    logits: torch.Tensor, num_points: int, oversample_ratio: float, importance_sample_ratio: float
) -> torch.Tensor:
    """Point coordinates in [0, 1]^2, `(N, num_points, 2)`: the most uncertain (|logit| smallest) of an oversampled
    uniform draw, plus uniform points (Mask2Former / PointRend importance sampling)."""
    num_masks = logits.shape[0]
    num_sampled = int(num_points * oversample_ratio)
    coordinates = torch.rand(num_masks, num_sampled, 2, device=logits.device)
    uncertainty = -sample_point(logits, coordinates, align_corners=False).squeeze(1).abs()
    num_uncertain = int(importance_sample_ratio * num_points)
    index = uncertainty.topk(num_uncertain, dim=1).indices
    uncertain = torch.gather(coordinates, 1, index[..., None].expand(-1, -1, 2))
    uniform = torch.rand(num_masks, num_points - num_uncertain, 2, device=logits.device)
    return torch.cat([uncertain, uniform], 1)


class TDOSLoss(nn.Module):
    """
    All weighted loss terms of TDOS. Has no parameters; the model calls it with its merged predictions.

    `forward` returns the total loss and a dict of every weighted term: `loss_cls`, `loss_mask`, `loss_dice` of the
    last prediction and their `d{i}.` copies for the earlier ones, `loss_identity`, `loss_textual`, `loss_visual`.
    """

    def __init__(self, config: TDOSConfig):
        super().__init__()
        self.config = config

    def identity_targets(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Identity assignment: merged query `c` ↔ class `c`. Returns class targets `(B, K_id)` (`K_id` = no object
        where class `c` is absent) and binary target masks `(B, K_id, H, W)`."""
        num_classes = self.config.num_id_classes
        classes = torch.arange(num_classes, device=labels.device)
        masks = labels[:, None] == classes[None, :, None, None]
        present = masks.flatten(2).any(-1)
        targets = torch.where(present, classes, torch.full_like(classes, num_classes))
        return targets, masks

    @staticmethod
    def num_positive_masks(present: torch.Tensor) -> torch.Tensor:
        """Positive masks in the batch, averaged over processes, at least 1."""
        count = present.sum().float()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(count)
            count = count / torch.distributed.get_world_size()
        return count.clamp(min=1)

    def prediction_losses(self, class_logits, mask_logits, targets, target_masks, num_masks) -> dict[str, torch.Tensor]:
        """Weighted class cross-entropy (OOD and no-object weights) and point-sampled mask BCE and Dice of one
        prediction."""
        config = self.config
        weights = torch.ones(config.num_id_classes + 1, device=class_logits.device)
        weights[config.ood_label_id], weights[-1] = config.ood_class_weight, config.no_object_weight
        loss_cls = F.cross_entropy(class_logits.transpose(1, 2).float(), targets, weight=weights)
        present = targets < config.num_id_classes
        predicted = mask_logits[present][:, None].float()  # (N, 1, H', W')
        if predicted.shape[0] == 0:
            zero = mask_logits.sum() * 0.0
            return {"loss_cls": loss_cls * config.class_loss_weight, "loss_mask": zero, "loss_dice": zero}
        target = target_masks[present][:, None].float()  # (N, 1, H, W)
        with torch.no_grad():
            points = sample_uncertain_points(
                predicted, config.train_num_points, config.oversample_ratio, config.importance_sample_ratio
            )
            point_targets = sample_point(target, points, align_corners=False).squeeze(1)
        point_logits = sample_point(predicted, points, align_corners=False).squeeze(1)
        return {
            "loss_cls": loss_cls * config.class_loss_weight,
            "loss_mask": sigmoid_cross_entropy_loss(point_logits, point_targets, num_masks) * config.mask_loss_weight,
            "loss_dice": dice_loss(point_logits, point_targets, num_masks) * config.dice_loss_weight,
        }

    def identity_loss(self, score_map: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the score map (OOD slot reduced by max, divided by the temperature, resized to the labels)."""
        config = self.config
        identity_logits = reduce_score_map(score_map, config.ood_label_id).float() / config.score_map_temperature
        identity_logits = F.interpolate(identity_logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        identity = F.cross_entropy(identity_logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
        return identity / labels.numel() * config.identity_loss_weight

    def textual_regularization(self, text_embeddings: torch.Tensor, text_anchors: torch.Tensor) -> torch.Tensor:
        """Cross-entropy that makes every refined text embedding `(B, K, C)` nearest its own frozen anchor `(K, C)`."""
        cosine = F.normalize(text_embeddings.float(), dim=-1) @ text_anchors.float().T  # (B, K, K)
        anchor_targets = torch.arange(self.config.num_queries, device=cosine.device).expand(cosine.shape[0], -1)
        return F.cross_entropy(cosine.transpose(1, 2), anchor_targets) * self.config.textual_regularization_weight

    def visual_regularization(
        self, global_embedding: torch.Tensor, reference_global_embedding: torch.Tensor | None
    ) -> torch.Tensor:
        """`w_mse * MSE(g, g0) + w_cos * mean(1 - cos(g, g0))`, `g0` from the frozen reference tower on the
        unaugmented image. With the image tower frozen (no reference, `None`) it is exactly 0: the query-noise
        augmentation only changes the outputs of OOD tokens, never the class token, so `g == g0` (the release logged
        a term without gradient). The RN50 layer1 augmentation does change `g`, but through frozen weights only, so
        the term has no gradient there either and is reported as 0 too.
        """
        if reference_global_embedding is None:
            return global_embedding.new_zeros((), dtype=torch.float32)
        reference = reference_global_embedding.float()
        mse = F.mse_loss(global_embedding.float(), reference)
        cosine = 1 - F.cosine_similarity(global_embedding.float(), reference, dim=-1).mean()
        config = self.config
        return config.visual_regularization_mse_weight * mse + config.visual_regularization_cosine_weight * cosine

    def forward(
        self,
        predictions: list[tuple[torch.Tensor, torch.Tensor]],
        labels: torch.Tensor,
        score_map: torch.Tensor,
        text_embeddings: torch.Tensor,
        text_anchors: torch.Tensor,
        global_embedding: torch.Tensor,
        reference_global_embedding: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """
        Args:
            predictions: merged `(class_logits (B, K_id, K_id + 1), mask_logits (B, K_id, H', W'))` of every decoder
                prediction, the last one last.
            labels: `(B, H, W)` class ids `0..K_id-1` or 255 (ignored).
            score_map: `(B, K, h, w)` cosine similarities of dense image and refined text embeddings.
            text_embeddings: `(B, K, C)` refined text embeddings; `text_anchors`: `(K, C)` their frozen anchors.
            global_embedding: `(B, 1, C)` the image tower's `g`; `reference_global_embedding`: the frozen reference
                tower's `g0` on the unaugmented image, or `None` when the image tower is frozen.

        Raises:
            FloatingPointError: when a term is NaN or infinite (named in the message).
        """
        config = self.config
        labels = labels.long()
        targets, target_masks = self.identity_targets(labels)
        num_masks = self.num_positive_masks(targets < config.num_id_classes)
        losses = {}
        for index, (class_logits, mask_logits) in enumerate(predictions):
            prefix = "" if index == len(predictions) - 1 else f"d{index}."
            terms = self.prediction_losses(class_logits, mask_logits, targets, target_masks, num_masks)
            losses.update({prefix + name: value for name, value in terms.items()})
        losses["loss_identity"] = self.identity_loss(score_map, labels)
        losses["loss_textual"] = self.textual_regularization(text_embeddings, text_anchors)
        losses["loss_visual"] = self.visual_regularization(global_embedding, reference_global_embedding)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            bad = [name for name, value in losses.items() if not torch.isfinite(value)]
            raise FloatingPointError(f"non-finite loss: terms {bad} are NaN or infinite")
        return loss, losses


__all__ = ["TDOSLoss", "sample_uncertain_points"]
