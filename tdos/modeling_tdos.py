"""PyTorch TDOS: text-driven OOD segmentation with a frozen CLIP pair and a text-query Mask2Former decoder.

The model reads like the method's figure: CLIP image encoder and text branch (prompt learner + text tower) ->
context decoder (refined text embeddings `T'` and the score map) -> feature pyramid -> text-conditioned pixel
decoder -> masked-attention transformer decoder with text queries -> OOD-slot merge -> semantic map and anomaly
score (+ `TDOSLoss` when labels are given). Each part is a module of its own file beside this one.

Imports only torch, transformers and modules of this folder that `save_pretrained` copies next to the weights, so a
saved model loads with `trust_remote_code=True` where the `tdos` package is not installed.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPTokenizer, PreTrainedModel
from transformers import initialization as init
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerMaskedAttentionDecoderLayer,
    Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention,
)
from transformers.utils import ModelOutput, logging

from .configuration_tdos import ANOMALY_SCORES, IGNORE_INDEX, INFERENCE_MODES, TDOSConfig
from .loss_tdos import TDOSLoss
from .modeling_tdos_context_decoder import TDOSContextDecoder
from .modeling_tdos_ood_slot import anomaly_score_from_semantic, merge_ood_slot, semantic_map_from_queries
from .modeling_tdos_pixel_decoder import TDOSPixelDecoder
from .modeling_tdos_rn50 import TDOSResNetFeaturePyramid, TDOSResNetImageEncoder
from .modeling_tdos_text import TDOSPromptLearner, TDOSTextEncoder
from .modeling_tdos_transformer_decoder import TDOSTransformerDecoder
from .modeling_tdos_vit import TDOSImageEncoder, TDOSSimpleFeaturePyramid
from .sliding_window import predict_semantic_map

logger = logging.get_logger(__name__)


@dataclass
class TDOSOutput(ModelOutput):
    """
    Output of [`TDOSForOODSegmentation`]. `K_id` is the number of classes of `config.id2label` (the OOD class last),
    `K = K_id + num_ood_prompts`, and `(H', W')` is the mask resolution: stride a quarter of the ViT patch size (4 for
    ViT-B/16, 2 for the `tiny` preset's patch 8), or 4 for RN50.

    Args:
        loss (`torch.FloatTensor`, *optional*):
            Weighted sum of all loss terms, when `labels` are given.
        loss_dict (`dict[str, torch.FloatTensor]`, *optional*):
            Every weighted loss term (`loss_cls`, `loss_mask`, `loss_dice` and their `d{i}.` deep-supervision
            copies, `loss_identity`, `loss_textual`, `loss_visual`), when `labels` are given.
        class_queries_logits (`torch.FloatTensor` of shape `(batch, K_id, K_id + 1)`):
            Class logits of the last decoder prediction after the OOD-slot merge (last column: no object).
        masks_queries_logits (`torch.FloatTensor` of shape `(batch, K_id, H', W')`):
            Mask logits of the last decoder prediction after the OOD-slot merge.
        semantic_map (`torch.FloatTensor` of shape `(batch, K_id, H', W')`):
            Mask-classification scores `sum_q softmax(class_q)[c] * sigmoid(mask_q)`.
        anomaly_score (`torch.FloatTensor` of shape `(batch, H', W')`):
            Per-pixel anomaly score (`config.anomaly_score`) at mask resolution.
        score_map (`torch.FloatTensor` of shape `(batch, K, h, w)`):
            Cosine similarities between the dense image embeddings and the refined text embeddings.
        text_embeddings (`torch.FloatTensor` of shape `(batch, K, projection_dim)`):
            Text embeddings refined by the context decoder (`T'`).
        auxiliary_logits (`list[dict[str, torch.FloatTensor]]`, *optional*):
            The merged class and mask logits of the earlier decoder predictions (unless `output_auxiliary_logits=False`
            without labels).
    """

    loss: torch.FloatTensor | None = None
    loss_dict: dict[str, torch.FloatTensor] | None = None
    class_queries_logits: torch.FloatTensor | None = None
    masks_queries_logits: torch.FloatTensor | None = None
    semantic_map: torch.FloatTensor | None = None
    anomaly_score: torch.FloatTensor | None = None
    score_map: torch.FloatTensor | None = None
    text_embeddings: torch.FloatTensor | None = None
    auxiliary_logits: list[dict[str, torch.FloatTensor]] | None = None



def check_pixel_values(config: TDOSConfig, pixel_values: torch.Tensor) -> None:
    """Raises a `ValueError` unless `pixel_values` is `(batch, channels, H, W)`."""
    channels = config.clip_config.vision_config.num_channels
    if pixel_values.dim() != 4 or pixel_values.shape[1] != channels:
        raise ValueError(f"pixel_values must have shape (batch, {channels}, H, W), got {tuple(pixel_values.shape)}")


def check_forward_inputs(config: TDOSConfig, pixel_values: torch.Tensor, labels: torch.Tensor | None) -> None:
    """Raises a `ValueError` naming the problem for images the model cannot take (sides not multiples of the input
    stride, or shorter than two strides) and for labels of another shape, dtype or with unknown class ids."""
    check_pixel_values(config, pixel_values)
    stride = config.input_stride
    name = "ResNet stride" if config.backbone == "clip-rn50" else "patch size"
    height, width = pixel_values.shape[-2:]
    if height % stride or width % stride or height < 2 * stride or width < 2 * stride:
        raise ValueError(
            f"image size {height}x{width} is not supported: height and width must be multiples of the {name} "
            f"{stride} and at least {2 * stride} (resize or pad with TDOSImageProcessor)"
        )
    if labels is None:
        return
    if labels.dim() != 3 or labels.shape[0] != pixel_values.shape[0] or labels.shape[1:] != (height, width):
        raise ValueError(
            f"labels must have the images' shape (batch, H, W) = ({pixel_values.shape[0]}, {height}, {width}), "
            f"got {tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point:
        raise ValueError(f"labels must be an integer tensor of class ids, got dtype {labels.dtype}")
    values = labels.unique()
    bad = values[(values >= config.num_id_classes) & (values != IGNORE_INDEX) | (values < 0)]
    if bad.numel():
        raise ValueError(
            f"labels contain values {bad.tolist()}; expected class ids 0..{config.num_id_classes - 1} "
            f"({config.id2label[config.ood_label_id]!r} = {config.ood_label_id}) or {IGNORE_INDEX} (ignore)"
        )


class TDOSPreTrainedModel(PreTrainedModel):
    config_class = TDOSConfig
    config: TDOSConfig
    base_model_prefix = "tdos"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _supports_sdpa = True
    _no_split_modules = ["CLIPEncoderLayer", "TDOSPixelDecoderEncoderLayer", "Mask2FormerMaskedAttentionDecoderLayer"]

    def _init_weights(self, module: nn.Module):
        """
        The released initialisation (docs/method.md §5; the release never calls the head's `init_weights`): PyTorch's
        own defaults for linear layers, plain convolutions and the feature-pyramid convolutions; mmcv's for its parts
        (deformable attention self-init, `ConvModule` convolutions kaiming-normal fan-out, `nn.MultiheadAttention`
        Xavier on the joint input projection); truncated normal (std `initializer_range`) for the context decoder's
        linear layers; the release's prompt and gamma inits. Modules are visited children first; the rules of parts
        that have no parameters of their own (which transformers does not visit) are applied with the whole model's.
        """
        if isinstance(module, Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention):
            init.constant_(module.sampling_offsets.weight, 0.0)
            thetas = torch.arange(module.n_heads, dtype=torch.float32) * (2.0 * math.pi / module.n_heads)
            grid = torch.stack([thetas.cos(), thetas.sin()], -1)
            grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(module.n_heads, 1, 1, 2)
            grid = grid.repeat(1, module.n_levels, module.n_points, 1)
            grid = grid * torch.arange(1, module.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
            init.copy_(module.sampling_offsets.bias, grid.flatten())
            init.constant_(module.attention_weights.weight, 0.0)
            init.constant_(module.attention_weights.bias, 0.0)
            init.xavier_uniform_(module.value_proj.weight)
            init.constant_(module.value_proj.bias, 0.0)
            init.xavier_uniform_(module.output_proj.weight)
            init.constant_(module.output_proj.bias, 0.0)
        elif isinstance(module, TDOSPromptLearner):
            # As released: contexts truncated-normal (std 1, [-2, 2]), OOD prompts standard normal.
            init.trunc_normal_(module.contexts, std=1.0, a=-2.0, b=2.0)
            init.normal_(module.negative_prompts, std=1.0)
        elif isinstance(module, TDOSForOODSegmentation):
            if module.context_gamma is not None:
                init.trunc_normal_(module.context_gamma, std=1.0, a=-2.0, b=2.0)
            self._init_release_parts(module)
        elif isinstance(module, nn.MultiheadAttention):
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)
            init.zeros_(module.out_proj.bias)
        elif isinstance(module, nn.Linear):
            _pytorch_default_init(module)
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if isinstance(module, nn.BatchNorm2d):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=1.0)


    def _init_release_parts(self, model: TDOSForOODSegmentation):
        context_decoder = model.context_decoder.modules() if model.context_decoder is not None else ()
        for linear in (m for m in context_decoder if isinstance(m, nn.Linear)):
            init.trunc_normal_(linear.weight, std=self.config.initializer_range)
            if linear.bias is not None:
                init.zeros_(linear.bias)
        _pytorch_default_init(model.pixel_decoder.mask_projection)  # a plain Conv2d in the release (no ConvModule)
        for conv in (m for m in model.feature_pyramid.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))):
            _pytorch_default_init(conv)  # mmseg's FPN drops its Xavier init_cfg; the simple FPN is plain
        for layer in model.transformer_decoder.modules():
            if isinstance(layer, Mask2FormerMaskedAttentionDecoderLayer):
                # the release's self-attention is an nn.MultiheadAttention: Xavier over the joint (3E, E) input
                # projection (gain 1/sqrt(2) per (E, E) block), zero biases, PyTorch's default output weight
                attention = layer.self_attn
                for projection in (attention.q_proj, attention.k_proj, attention.v_proj):
                    init.xavier_uniform_(projection.weight, gain=math.sqrt(0.5))
                    init.zeros_(projection.bias)
                init.zeros_(attention.out_proj.bias)


def _pytorch_default_init(module: nn.Module) -> None:
    """`reset_parameters` of `nn.Linear` / `nn.Conv*`: kaiming-uniform (a = sqrt(5)) weight, bias uniform in
    `+-1/sqrt(fan_in)`."""
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if module.bias is not None:
        fan_in = nn.init._calculate_fan_in_and_fan_out(module.weight)[0]
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(module.bias, -bound, bound)


class TDOSForOODSegmentation(TDOSPreTrainedModel):
    """
    TDOS for semantic and out-of-distribution segmentation of road scenes.

    Create it from CLIP weights with [`TDOSForOODSegmentation.from_clip`] (this also tokenizes the class names and
    computes the frozen text anchors), or load a trained model with `from_pretrained`. A model built directly from a
    config has placeholder prompt tokens and anchors: fine for timing, not for training.

    `forward(pixel_values, labels=None)` returns a [`TDOSOutput`]; with `labels` (trainIds `0..K_id-2`, `K_id-1` =
    OOD, 255 = ignore; shape `(batch, H, W)` matching the images) it also returns the loss.
    """

    def __init__(self, config: TDOSConfig):
        super().__init__(config)
        image_encoder_class = TDOSResNetImageEncoder if config.backbone == "clip-rn50" else TDOSImageEncoder
        self.image_encoder = image_encoder_class(config)
        self.reference_image_encoder = image_encoder_class(config) if config.train_image_tower else None
        self.text_encoder = TDOSTextEncoder(config)
        self.prompt_learner = TDOSPromptLearner(config)
        if config.use_context_decoder:
            self.context_decoder = TDOSContextDecoder(config)
            self.context_gamma = nn.Parameter(torch.empty(config.projection_dim))
        else:  # ablation: the pixel and transformer decoders see the text embeddings T themselves
            self.context_decoder = self.context_gamma = None
        if config.backbone == "clip-rn50":
            self.feature_pyramid = TDOSResNetFeaturePyramid(config)
        else:
            self.feature_pyramid = TDOSSimpleFeaturePyramid(config.clip_config.vision_config.hidden_size)
        self.pixel_decoder = TDOSPixelDecoder(config)
        self.transformer_decoder = TDOSTransformerDecoder(config)
        self.register_buffer("text_anchors", torch.zeros(config.num_queries, config.projection_dim))
        self.criterion = TDOSLoss(config)
        self._text_cache = None
        self.post_init()
        self._freeze_clip()

    # ------------------------------------------------------------------ frozen parts and modes
    def _frozen_modules(self) -> list[nn.Module]:
        frozen = [self.text_encoder]
        frozen.append(self.reference_image_encoder if self.config.train_image_tower else self.image_encoder)
        return frozen

    def _freeze_clip(self):
        for module in self._frozen_modules():
            module.requires_grad_(False)
            module.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        self.reset_text_cache()
        return self

    # ------------------------------------------------------------------ text branch
    def compute_text_embeddings(self) -> torch.Tensor:
        """The `K` prompt embeddings `T` `(K, C)` from the text tower. Computed once per forward (never per image or
        window); in eval mode the result is cached until the prompt parameters change (in-place updates bump their
        version counters) or the mode, device or dtype changes."""
        tensors = list(self.prompt_learner.parameters()) + list(self.prompt_learner.buffers())
        device = tensors[0].device
        autocast = torch.is_autocast_enabled(device.type)
        dtype = torch.get_autocast_dtype(device.type) if autocast else tensors[0].dtype
        key = tuple(t._version for t in tensors) + (device, dtype, autocast)
        if not self.training and self._text_cache is not None and self._text_cache[0] == key:
            return self._text_cache[1]
        prompts, eos_positions = self.prompt_learner(self.text_encoder.token_embedding)
        text_embeddings = self.text_encoder(prompts, eos_positions, self.prompt_learner.adds_position_embeddings)
        if not self.training:
            self._text_cache = (key, text_embeddings.detach())
        return text_embeddings

    def set_deformable_attention_kernel(self, kernel: str) -> None:
        """Switches the pixel decoder's deformable-attention sampling core (`"pytorch"` or `"triton"`, see
        `TDOSConfig.deformable_attention_kernel`) in every layer and in the config; the weights do not change."""
        for layer in self.pixel_decoder.layers:
            layer.self_attn.kernel = kernel  # validated by the module
        self.config.deformable_attention_kernel = kernel

    def reset_text_cache(self) -> None:
        """Forgets the cached text embeddings; call it after changing the text tower's weights in place (prompt
        parameter updates are detected by themselves)."""
        self._text_cache = None

    def _ood_augmentation_mask(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The `(B, H, W)` mask of OOD pixels to augment in the image encoder: training with labels only, drawn with
        probability `ood_augmentation_probability` per batch; `None` otherwise."""
        config = self.config
        augment = (
            labels is not None
            and self.training
            and config.ood_augmentation
            and bool(torch.rand(()) < config.ood_augmentation_probability)
        )
        return (labels == config.ood_label_id).float() if augment else None

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        prompt_embeddings: torch.Tensor | None = None,
        output_auxiliary_logits: bool = True,
        **kwargs,
    ) -> TDOSOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, 3, H, W)`):
            Normalised images ([`TDOSImageProcessor`]); H and W multiples of the patch size.
        labels (`torch.LongTensor` of shape `(batch, H, W)`, *optional*):
            Training targets: class ids `0..K_id-1` (the last is OOD) or 255 (ignored).
        prompt_embeddings (`torch.FloatTensor` of shape `(K, projection_dim)`, *optional*):
            The text branch's output `T` from [`~TDOSForOODSegmentation.compute_text_embeddings`], when the caller
            has computed it already (sliding-window inference passes it to every window batch); computed here
            otherwise.
        output_auxiliary_logits (`bool`, *optional*, defaults to `True`):
            Whether to merge the OOD slot of the earlier decoder predictions and return them as `auxiliary_logits`
            (the loss always uses them; [`~TDOSForOODSegmentation.predict`] does not need them). Without them, in eval
            mode, the transformer decoder does not compute the earlier predictions' full-resolution masks either.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        check_forward_inputs(config, pixel_values, labels)
        ood_id = config.ood_label_id

        # CLIP image encoder (OOD semantic augmentation of OOD pixels in training) and text branch T (K, C)
        image = self.image_encoder(pixel_values, ood_mask=self._ood_augmentation_mask(labels))
        dense, global_embedding = image.dense_embeddings, image.global_embedding
        text = self.compute_text_embeddings() if prompt_embeddings is None else prompt_embeddings

        # context decoder: T' = T + gamma * Delta T (B, K, C), and the score map of dense embeddings against T'
        text = text.expand(pixel_values.shape[0], -1, -1)
        if self.context_decoder is not None:
            visual_context = torch.cat([global_embedding, dense.flatten(2).transpose(1, 2)], 1)
            text_embeddings = text + self.context_gamma * self.context_decoder(text, visual_context)
        else:
            text_embeddings = text
        score_map = torch.einsum(
            "bchw,bkc->bkhw", F.normalize(dense, dim=1), F.normalize(text_embeddings, dim=-1)
        )

        # feature pyramid (RN50: the score map joins layer4), text-conditioned pixel decoder, transformer decoder
        if config.backbone == "clip-rn50":
            features = self.feature_pyramid(image.feature_maps, score_map)
            pixel_output = self.pixel_decoder(features, text_embeddings)
        else:  # the pixel decoder's lateral 1x1 convolution joins the pyramid's last transposed convolution
            features = self.feature_pyramid(image.feature_maps, self.pixel_decoder.lateral_convolution[0])
            pixel_output = self.pixel_decoder(features, text_embeddings, finest_projected=True)
        class_logits, mask_logits = self.transformer_decoder(
            text_embeddings,
            pixel_output.multi_scale_features,
            pixel_output.mask_features,
            every_prediction=labels is not None or output_auxiliary_logits,
        )
        if labels is None and not output_auxiliary_logits:  # in training mode the decoder returns all of them
            class_logits, mask_logits = class_logits[-1:], mask_logits[-1:]

        # OOD-slot merge of every prediction, then the semantic map of the last one
        merged = [merge_ood_slot(c, m, ood_id) for c, m in zip(class_logits, mask_logits)]
        final_class, final_mask = merged[-1]
        semantic_map = semantic_map_from_queries(final_class, final_mask)

        loss = loss_dict = None
        if labels is not None:
            reference = None
            if config.train_image_tower:
                with torch.no_grad():
                    reference = self.reference_image_encoder(pixel_values).global_embedding
            loss, loss_dict = self.criterion(
                merged, labels, score_map, text_embeddings, self.text_anchors, global_embedding, reference
            )

        output = TDOSOutput(
            loss=loss,
            loss_dict=loss_dict,
            class_queries_logits=final_class,
            masks_queries_logits=final_mask,
            semantic_map=semantic_map,
            anomaly_score=anomaly_score_from_semantic(semantic_map, config.anomaly_score, ood_id),
            score_map=score_map,
            text_embeddings=text_embeddings,
            auxiliary_logits=[{"class_queries_logits": c, "masks_queries_logits": m} for c, m in merged[:-1]] or None,
        )
        return output if return_dict else output.to_tuple()

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(
        self,
        pixel_values: torch.Tensor,
        inference_mode: str | None = None,
        anomaly_score: str | None = None,
        window_batch_size: int = 1,
    ) -> TDOSOutput:
        r"""
        Test-time prediction at the input resolution (docs/method.md §7), without gradients, in eval mode (the model's mode
        is restored afterwards).

        The text branch runs once per call; its embeddings are given to every window batch. In `"slide"` mode the
        image is cut into `config.crop_size` windows every `config.stride` pixels (the last window of a row or
        column is shifted back inside the image, and an image side shorter than the crop is one window, as in
        mmseg's `slide_inference`); windows are run `window_batch_size` at a time, each window's semantic map is
        resized bilinearly to the window, and overlapping windows are averaged. `"whole"` runs the image at once.
        Windows (or the whole image) whose sides are not multiples of the patch size (RN50: 32) are zero-padded at the
        bottom/right (zero is the mean colour after CLIP normalisation) and the padding is cropped off the output.
        The anomaly score is computed from the averaged semantic map.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, 3, H, W)`):
                Normalised images ([`TDOSImageProcessor`]); any H, W.
            inference_mode (`str`, *optional*):
                `"slide"` or `"whole"`; defaults to `config.inference_mode`.
            anomaly_score (`str`, *optional*):
                `"ood_probability"`, `"ood_logit"`, `"rba"` or `"max_softmax"`; defaults to `config.anomaly_score`.
            window_batch_size (`int`, *optional*, defaults to 1):
                Windows per forward pass in `"slide"` mode. One at a time is the fastest on the CPU (measured by
                `benchmarks/bench_inference.py`: 6 at a time took 1.1x (fp32) and 1.3x (bf16) as long, at 1.5x the
                peak memory); raise it where an accelerator has memory to spare. The result does not depend on it
                beyond float rounding.

        Returns:
            [`TDOSOutput`] with `semantic_map` `(batch, K_id, H, W)` (float32) and `anomaly_score` `(batch, H, W)`.
        """
        mode = inference_mode if inference_mode is not None else self.config.inference_mode
        method = anomaly_score if anomaly_score is not None else self.config.anomaly_score
        if mode not in INFERENCE_MODES:
            raise ValueError(f"inference_mode must be one of {INFERENCE_MODES}, got {mode!r}")
        if method not in ANOMALY_SCORES:
            raise ValueError(f"anomaly_score must be one of {ANOMALY_SCORES}, got {method!r}")
        if window_batch_size < 1:
            raise ValueError(f"window_batch_size must be >= 1, got {window_batch_size}")
        check_pixel_values(self.config, pixel_values)
        was_training = self.training
        if was_training:  # as the release's `inference`: test-time code whatever mode the model was left in
            self.eval()
        try:
            semantic_map = predict_semantic_map(self, pixel_values, mode, window_batch_size)
        finally:
            if was_training:
                self.train()
        return TDOSOutput(
            semantic_map=semantic_map,
            anomaly_score=anomaly_score_from_semantic(semantic_map, method, self.config.ood_label_id),
        )

    # ------------------------------------------------------------------ creation from CLIP
    @classmethod
    def from_clip(
        cls,
        clip="openai/clip-vit-base-patch16",
        tokenizer: CLIPTokenizer | None = None,
        ood_bands: list[list[str]] | None = None,
        config: TDOSConfig | None = None,
        **overrides,
    ) -> TDOSForOODSegmentation:
        """
        Builds a TDOS model around CLIP weights `clip`: a Hub id or local folder of a transformers `CLIPModel` (with
        its tokenizer), or a `CLIPModel` instance plus `tokenizer`. Copies both towers (the image position grid resized
        bilinearly to `crop_size / patch_size`), tokenizes the class names and computes the frozen text anchors:
        `anchor_template` of every class, and the mean normalised embedding of each band of OOD words (`ood_bands`,
        default: the shipped WordNet bands, regrouped into `num_ood_prompts` equal consecutive bands).

        `overrides` are `TDOSConfig` arguments (or a full `config`; its `clip_config` is replaced by the CLIP's).

        CLIP RN50 (`backbone="clip-rn50"`, set automatically): pass the folder written by `tdos-convert-clip RN50.pt
        <folder> --bpe ...` (timm trunk in `image/`, `CLIPTextModelWithProjection` in `text/`, tokenizer) or a
        [`CLIPResNetTowers`] plus `tokenizer`; the attention-pool positional grid is resized to `crop_size / 32`.
        """
        try:
            from_clip_module = importlib.import_module("tdos.from_clip")
        except ModuleNotFoundError as error:
            raise ImportError("from_clip needs the tdos package (pip install tdos); this copy is remote code") from error
        return from_clip_module.build_from_clip(cls, clip, tokenizer, ood_bands, config, **overrides)


class TDOSForSemanticSegmentation(TDOSForOODSegmentation):
    """
    What the stock `pipeline("image-segmentation")` loads (`AutoModelForSemanticSegmentation`; saved folders map it
    here): the same model and weights as [`TDOSForOODSegmentation`], except that `forward` at inference (eval mode, no
    `labels`, no `prompt_embeddings`), the call the stock pipeline makes, is [`~TDOSForOODSegmentation.predict`]: the
    configured `inference_mode` (sliding window in the paper's recipe) and the semantic map at the input size, instead
    of one whole-image pass at mask resolution. Training (with `labels`) and the window passes `predict` makes (with
    `prompt_embeddings`) run the [`TDOSForOODSegmentation`] forward.
    """

    def forward(self, pixel_values, labels=None, return_dict=None, prompt_embeddings=None, **kwargs):
        if labels is None and prompt_embeddings is None and not self.training:
            output = self.predict(pixel_values)
            return output if (self.config.return_dict if return_dict is None else return_dict) else output.to_tuple()
        return super().forward(pixel_values, labels, return_dict=return_dict, prompt_embeddings=prompt_embeddings, **kwargs)


__all__ = ["TDOSForOODSegmentation", "TDOSForSemanticSegmentation", "TDOSPreTrainedModel", "TDOSOutput"]
