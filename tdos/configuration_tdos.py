"""TDOS model configuration."""

from __future__ import annotations

import copy

from transformers import CLIPConfig, PreTrainedConfig
from transformers.utils import logging


logger = logging.get_logger(__name__)

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip
OOD_CLASS = "ood"
ANOMALY_SCORES = ("ood_probability", "ood_logit", "rba", "max_softmax")
INFERENCE_MODES = ("slide", "whole")
DEFORMABLE_ATTENTION_KERNELS = ("pytorch", "triton")
BACKBONES = ("clip-vit", "clip-rn50")
PROMPT_MODES = ("corrected", "release")
RESNET_STRIDE = 32  # CLIP ModifiedResNet: stride of layer4 and of the attention-pool tokens
IGNORE_INDEX = 255  # label value of ignored pixels (Cityscapes void), in training labels and loss


def _scaled_feature_layers(num_layers: int) -> list[int]:
    """The ViT-B/16 taps (after layers 3, 5, 7, 11 of 12) scaled to a tower of `num_layers` layers."""
    return [min(num_layers - 1, max(0, round((index + 1) * num_layers / 12) - 1)) for index in (3, 5, 7, 11)]


class TDOSConfig(PreTrainedConfig):
    r"""
    Configuration of a [`TDOSForOODSegmentation`] model: a frozen CLIP image/text pair, a prompt learner, a context
    decoder, a text-conditioned multi-scale deformable pixel decoder and a Mask2Former-style masked-attention decoder
    whose queries are text embeddings (Song & Lee, "Leveraging Text-Driven Semantic Variation for Robust OOD
    Segmentation", IROS 2025). Defaults are the paper's ViT-B/16 settings; `TDOSConfig.from_preset("tiny")` gives a
    model small enough for tests and the CPU demo.

    Text queries are laid out as `K_id` in-distribution-side classes (the 19 Cityscapes classes followed by the
    literal class `"ood"`, see `id2label`), then `num_ood_prompts` learnable OOD prompts. The last `num_ood_prompts + 1`
    queries form the *OOD slot*: their predictions are merged into the single `"ood"` class (max over masks, mean
    over class logits).

    Args:
        clip_config (`dict` or [`CLIPConfig`], *optional*):
            Configuration of the CLIP image and text towers (ViT-B/16 dimensions by default). The vision
            `image_size` is the training crop size: the CLIP position grid is resized to it once when the model is
            created from CLIP weights, and bilinearly to the token grid of every input. With `backbone="clip-rn50"`
            only `text_config` and `projection_dim` are used (the image tower is described by the `resnet_*`
            arguments).
        backbone (`str`, *optional*, defaults to `"clip-vit"`):
            CLIP image tower: `"clip-vit"` (transformers' `CLIPVisionModel`, simple FPN on four layer taps) or
            `"clip-rn50"` (timm's `resnet50_clip` ModifiedResNet trunk, v-v attention-pool embeddings, score map
            concatenated to layer4, FPN neck; needs `timm`).
        resnet_layers (`list[int]`, *optional*, defaults to `[3, 4, 6, 3]`):
            Bottleneck blocks of the four ResNet stages (`clip-rn50` only).
        resnet_width (`int`, *optional*, defaults to 64):
            ResNet base width (`clip-rn50` only): the stem ends with `width` channels, layer1..4 output `4, 8, 16, 32`
            times `width` channels and the attention pool has `32 * width / 64` heads. A multiple of 8.
        resnet_neck_hidden_size (`int`, *optional*, defaults to 768):
            Output channels of the FPN neck on layer1..4 (`clip-rn50` only).
        resnet_noise_scale (`float`, *optional*, defaults to 1e-4):
            Scale of the Gaussian noise added to the in-distribution pixels of layer1, relative to their channel
            standard deviation (`clip-rn50` OOD augmentation).
        resnet_style_mix (`float`, *optional*, defaults to 0.2):
            Weight of the AdaIN-stylised features (toward in-distribution statistics) on OOD pixels of layer1
            (`clip-rn50` OOD augmentation).
        resnet_style_probability (`float`, *optional*, defaults to 0.5):
            Probability that an augmented forward pass also applies the AdaIN style mix (one draw per batch).
        id2label (`dict[int, str]`, *optional*):
            The `K_id` in-distribution-side classes; the last one is the OOD class. Defaults to the 19 Cityscapes
            trainId classes followed by `"ood"` (trainId 19).
        num_ood_prompts (`int`, *optional*, defaults to 50):
            Number `M` of learnable OOD prompts, each pulled toward one band of distance-based OOD words.
        prompt_context_length (`int`, *optional*, defaults to 20):
            Number `P` of learnable CoOp context vectors shared by the class prompts; also the number of learnable
            vectors of each OOD prompt.
        text_context_length (`int`, *optional*, defaults to 40):
            Length of every assembled prompt fed to the text tower; class names get `text_context_length -
            prompt_context_length` tokens (start and end tokens included).
        prompt_mode (`str`, *optional*, defaults to `"corrected"`):
            How the prompt learner assembles the prompts fed to the text tower. `"corrected"`: class prompt `[SOT,
            ctx_1..ctx_P, name.., EOT, pad..]` and OOD prompt `[SOT, neg_1..neg_P, EOT, pad..]`, positional embeddings
            added, pooled at the end token (the paper's intent, DenseCLIP's code). `"release"`: the released code,
            `[tok_0, ctx_1..ctx_P, tok_1..]` without positional embeddings, pooled at the end token's index in the
            unshifted class-name tokens (OOD prompt `i` is `[neg_i,1, ctx, neg_i,2..]`, pooled at 0). Because of the
            causal mask, release class prompts never see the class name: every class whose name is one BPE token gets
            the same embedding, and OOD prompts depend on their first vector only.
        anchor_template (`str`, *optional*, defaults to `"a clean origami of a {}"`):
            Template of the frozen text anchors used by the textual regulariser.
        vision_feature_layers (`list[int]`, *optional*):
            Four 0-based image-tower layers whose outputs feed the simple FPN (strides 4, 8, 16, 32). Defaults to
            `[3, 5, 7, 11]` scaled to the tower depth.
        use_context_decoder (`bool`, *optional*, defaults to `True`):
            Refine the text embeddings with the visual context, `T' = T + gamma * ContextDecoder(T, visual context)`.
            `False` (an ablation) builds no context decoder: the decoders and the score map use `T` itself.
        context_decoder_hidden_size (`int`, *optional*, defaults to 256):
            Width of the context decoder that refines the text embeddings with the visual context.
        context_decoder_num_heads (`int`, *optional*, defaults to 4):
            Attention heads of the context decoder.
        context_decoder_num_layers (`int`, *optional*, defaults to 3):
            Layers of the context decoder.
        context_decoder_dropout (`float`, *optional*, defaults to 0.1):
            Dropout of the context decoder.
        hidden_dim (`int`, *optional*, defaults to 256):
            Width of the pixel decoder, the mask features and the transformer decoder (a multiple of 32).
        pixel_decoder_layers (`int`, *optional*, defaults to 6):
            Text-conditioned deformable-attention layers of the pixel decoder.
        pixel_decoder_num_heads (`int`, *optional*, defaults to 8):
            Heads of the deformable self-attention and of the text cross-attention in the pixel decoder.
        pixel_decoder_num_points (`int`, *optional*, defaults to 4):
            Sampling points per head and level of the deformable attention.
        deformable_attention_kernel (`str`, *optional*, defaults to `"pytorch"`):
            Sampling core of the deformable attention: `"pytorch"` (`grid_sample`, everywhere) or `"triton"` (the
            Triton kernels of `tdos/deformable_attention_triton.py`, forward and backward, on CUDA tensors; needs the
            `triton` package). With `"triton"` the CPU, TorchScript tracing, ONNX and `torch.export` still use
            `"pytorch"`. Both give the same results up to float rounding; it can be changed on a loaded model with
            `model.set_deformable_attention_kernel`.
        pixel_decoder_ffn_dim (`int`, *optional*, defaults to 2048):
            Feed-forward width of the pixel decoder layers.
        decoder_layers (`int`, *optional*, defaults to 9):
            Masked-attention decoder layers (the decoder makes `decoder_layers + 1` predictions).
        decoder_num_heads (`int`, *optional*, defaults to 8):
            Attention heads of the masked-attention decoder.
        decoder_ffn_dim (`int`, *optional*, defaults to 2048):
            Feed-forward width of the masked-attention decoder.
        score_map_temperature (`float`, *optional*, defaults to 0.07):
            Temperature `tau` of the pixel-text score map in the identity-head loss.
        class_loss_weight (`float`, *optional*, defaults to 2.0):
            Weight of the query classification cross-entropy (each of the deep-supervision predictions).
        mask_loss_weight (`float`, *optional*, defaults to 5.0):
            Weight of the point-sampled binary cross-entropy on masks.
        dice_loss_weight (`float`, *optional*, defaults to 5.0):
            Weight of the point-sampled Dice loss on masks.
        train_num_points (`int`, *optional*, defaults to 12544):
            Points sampled per mask for the mask losses.
        oversample_ratio (`float`, *optional*, defaults to 3.0):
            Oversampling ratio of the uncertainty-based point sampling.
        importance_sample_ratio (`float`, *optional*, defaults to 0.75):
            Share of the points taken where the prediction is most uncertain.
        ood_class_weight (`float`, *optional*, defaults to 4.0):
            Class weight of the OOD class in the classification loss (the paper uses 4.0 or 10.0 per benchmark).
        no_object_weight (`float`, *optional*, defaults to 0.1):
            Class weight of the no-object class.
        textual_regularization_weight (`float`, *optional*, defaults to 1.0):
            Weight of the textual regulariser that keeps the refined text embeddings near their frozen anchors.
        identity_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the identity-head cross-entropy on the pixel-text score map.
        visual_regularization_mse_weight (`float`, *optional*, defaults to 10.0):
            Weight of the squared error between the global image embedding and that of the unaugmented frozen tower.
        visual_regularization_cosine_weight (`float`, *optional*, defaults to 2.0):
            Weight of the cosine distance of the same pair.
        ood_augmentation (`bool`, *optional*, defaults to `True`):
            OOD semantic augmentation in training. ViT: noise on the attention queries of OOD tokens in the last
            block of the image tower, mixed in by the OOD mask (the corrected reading of the paper; the released ViT
            version is a no-op). RN50: noise on in-distribution pixels and AdaIN toward in-distribution statistics on
            OOD pixels of layer1 (see `resnet_*`).
        ood_augmentation_probability (`float`, *optional*, defaults to 0.5):
            Probability that a training forward pass is augmented (one draw per batch).
        ood_augmentation_strength (`float`, *optional*, defaults to 1.0):
            Scale `alpha` of the query noise.
        anomaly_score (`str`, *optional*, defaults to `"ood_probability"`):
            Per-pixel anomaly score: `"ood_probability"` (softmax over the semantic map, OOD channel),
            `"ood_logit"` (the OOD channel of the semantic map), `"rba"` (minus the sum of tanh of the
            in-distribution channels) or `"max_softmax"` (minus the largest softmax probability over the
            in-distribution channels: the closed-set maximum-softmax-probability baseline, blind to the OOD channel).
        inference_mode (`str`, *optional*, defaults to `"slide"`):
            `"slide"` (sliding windows of `crop_size` with `stride`, overlap-averaged) or `"whole"`.
        crop_size (`int`, *optional*, defaults to 512):
            Sliding-window size (and training crop size).
        stride (`int`, *optional*, defaults to 341):
            Sliding-window stride.
        train_image_tower (`bool`, *optional*, defaults to `False`):
            Train the CLIP image tower too (at `image_tower_lr_multiplier` times the learning rate). Off for real CLIP
            weights, as in the paper; useful for randomly initialised towers.
        image_tower_lr_multiplier (`float`, *optional*, defaults to 0.1):
            Learning-rate multiplier of the image tower when it is trained.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the truncated-normal initialisation of the context decoder's linear layers (the other
            linear layers get PyTorch's default initialisation, as released).

    Deviations from the released code (docs/method.md, README "Fidelity"): prompts
    are assembled with positional embeddings and the end-of-text index shifted past the context (the release ignored
    class names; `prompt_mode="release"` restores it);
    the ViT simple FPN is trained (the release froze its random layers); frozen CLIP towers run in eval mode. RN50:
    the in-distribution standard deviation of the augmentation is the true masked one (the release also summed
    `mu^2` for every masked-out pixel, inflating it), and the attention-pool positional grid is resized to the
    actual (possibly non-square) feature map (the release resized it to a `sqrt(N)` square).
    """

    model_type = "tdos"
    sub_configs_defaults = {"clip_config": CLIPConfig}

    clip_config: dict | CLIPConfig | None = None
    backbone: str = "clip-vit"
    resnet_layers: list[int] | None = None
    resnet_width: int = 64
    resnet_neck_hidden_size: int = 768
    resnet_noise_scale: float = 1e-4
    resnet_style_mix: float = 0.2
    resnet_style_probability: float = 0.5
    num_ood_prompts: int = 50
    prompt_context_length: int = 20
    text_context_length: int = 40
    prompt_mode: str = "corrected"
    anchor_template: str = "a clean origami of a {}"
    vision_feature_layers: list[int] | None = None
    use_context_decoder: bool = True
    context_decoder_hidden_size: int = 256
    context_decoder_num_heads: int = 4
    context_decoder_num_layers: int = 3
    context_decoder_dropout: float = 0.1
    hidden_dim: int = 256
    pixel_decoder_layers: int = 6
    pixel_decoder_num_heads: int = 8
    pixel_decoder_num_points: int = 4
    deformable_attention_kernel: str = "pytorch"
    pixel_decoder_ffn_dim: int = 2048
    decoder_layers: int = 9
    decoder_num_heads: int = 8
    decoder_ffn_dim: int = 2048
    score_map_temperature: float = 0.07
    class_loss_weight: float = 2.0
    mask_loss_weight: float = 5.0
    dice_loss_weight: float = 5.0
    train_num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    ood_class_weight: float = 4.0
    no_object_weight: float = 0.1
    textual_regularization_weight: float = 1.0
    identity_loss_weight: float = 1.0
    visual_regularization_mse_weight: float = 10.0
    visual_regularization_cosine_weight: float = 2.0
    ood_augmentation: bool = True
    ood_augmentation_probability: float = 0.5
    ood_augmentation_strength: float = 1.0
    anomaly_score: str = "ood_probability"
    inference_mode: str = "slide"
    crop_size: int = 512
    stride: int = 341
    train_image_tower: bool = False
    image_tower_lr_multiplier: float = 0.1
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.id2label is None:
            self.id2label = dict(enumerate((*CITYSCAPES_CLASSES, OOD_CLASS)))
        if self.label2id is None:
            self.label2id = {name: int(index) for index, name in self.id2label.items()}
        super().__post_init__(**kwargs)
        if self.vision_feature_layers is None:
            self.vision_feature_layers = _scaled_feature_layers(self.clip_config.vision_config.num_hidden_layers)
        if self.resnet_layers is None:
            self.resnet_layers = [3, 4, 6, 3]
        self.validate_tdos()

    @property
    def num_id_classes(self) -> int:
        """`K_id`: the in-distribution-side text classes, the OOD class included."""
        return len(self.id2label)

    @property
    def ood_label_id(self) -> int:
        """Label id of the OOD class (the last class)."""
        return self.num_id_classes - 1

    @property
    def num_queries(self) -> int:
        """`K = K_id + M`: text embeddings and decoder queries."""
        return self.num_id_classes + self.num_ood_prompts

    @property
    def class_name_length(self) -> int:
        """Tokens available to a class name (start and end tokens included)."""
        return self.text_context_length - self.prompt_context_length

    @property
    def projection_dim(self) -> int:
        return self.clip_config.projection_dim

    @property
    def input_stride(self) -> int:
        """Stride of the coarsest image-tower map: image sides must be multiples of it (ViT: the patch size)."""
        return RESNET_STRIDE if self.backbone == "clip-rn50" else self.clip_config.vision_config.patch_size

    @property
    def feature_pyramid_channels(self) -> int:
        """Channels of the four maps fed to the pixel decoder (ViT: the tower width; RN50: the FPN neck width)."""
        if self.backbone == "clip-rn50":
            return self.resnet_neck_hidden_size
        return self.clip_config.vision_config.hidden_size

    def validate_tdos(self):
        """Checks that the arguments fit together; raises `ValueError` naming the offending values."""
        text = self.clip_config.text_config
        if self.num_id_classes < 2:
            raise ValueError(f"id2label needs at least one in-distribution class and the OOD class, got {self.id2label}")
        if sorted(self.id2label) != list(range(self.num_id_classes)):
            raise ValueError(f"id2label keys must be 0..{self.num_id_classes - 1}, got {sorted(self.id2label)}")
        if self.num_ood_prompts < 0:
            raise ValueError(f"num_ood_prompts must be >= 0, got {self.num_ood_prompts}")
        if not 0 < self.prompt_context_length < self.text_context_length - 2:
            raise ValueError(
                f"prompt_context_length ({self.prompt_context_length}) must be positive and leave room for a class name"
                f" in text_context_length ({self.text_context_length})"
            )
        if self.text_context_length > text.max_position_embeddings:
            raise ValueError(
                f"text_context_length ({self.text_context_length}) exceeds the text tower's max_position_embeddings "
                f"({text.max_position_embeddings})"
            )
        if self.prompt_mode not in PROMPT_MODES:
            raise ValueError(f"prompt_mode must be one of {PROMPT_MODES}, got {self.prompt_mode!r}")
        if "{}" not in self.anchor_template:
            raise ValueError(f"anchor_template must contain '{{}}' for the class name, got {self.anchor_template!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.backbone == "clip-rn50":
            self._validate_resnet()
        else:
            self._validate_vit()
        if self.hidden_dim % 32:
            raise ValueError(f"hidden_dim must be a multiple of 32 (GroupNorm with 32 groups), got {self.hidden_dim}")
        for name, dim, heads in (
            ("context_decoder", self.context_decoder_hidden_size, self.context_decoder_num_heads),
            ("pixel_decoder", self.hidden_dim, self.pixel_decoder_num_heads),
            ("decoder", self.hidden_dim, self.decoder_num_heads),
        ):
            if heads <= 0 or dim % heads:
                raise ValueError(f"{name}: width {dim} is not divisible by {heads} heads")
        if self.decoder_layers < 1 or self.pixel_decoder_layers < 1 or self.context_decoder_num_layers < 1:
            raise ValueError("decoder_layers, pixel_decoder_layers and context_decoder_num_layers must be >= 1")
        for name in ("ood_augmentation_probability", "importance_sample_ratio", "context_decoder_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.score_map_temperature <= 0:
            raise ValueError(f"score_map_temperature must be > 0, got {self.score_map_temperature}")
        if self.train_num_points < 1 or self.oversample_ratio < 1:
            raise ValueError("train_num_points must be >= 1 and oversample_ratio >= 1")
        if self.anomaly_score not in ANOMALY_SCORES:
            raise ValueError(f"anomaly_score must be one of {ANOMALY_SCORES}, got {self.anomaly_score!r}")
        if self.deformable_attention_kernel not in DEFORMABLE_ATTENTION_KERNELS:
            raise ValueError(
                f"deformable_attention_kernel must be one of {DEFORMABLE_ATTENTION_KERNELS}, got "
                f"{self.deformable_attention_kernel!r}"
            )
        if self.inference_mode not in INFERENCE_MODES:
            raise ValueError(f"inference_mode must be one of {INFERENCE_MODES}, got {self.inference_mode!r}")
        stride = self.input_stride
        if self.crop_size < stride or self.crop_size % stride:
            name = "ResNet stride" if self.backbone == "clip-rn50" else "patch size"
            raise ValueError(f"crop_size ({self.crop_size}) must be a positive multiple of the {name} ({stride})")
        if not 0 < self.stride <= self.crop_size:
            raise ValueError(f"stride must be in (0, crop_size={self.crop_size}], got {self.stride}")

    def _validate_vit(self):
        vision = self.clip_config.vision_config
        if len(self.vision_feature_layers) != 4 or not all(
            0 <= layer < vision.num_hidden_layers for layer in self.vision_feature_layers
        ):
            raise ValueError(
                f"vision_feature_layers must be 4 layer indices in [0, {vision.num_hidden_layers - 1}], got "
                f"{self.vision_feature_layers}"
            )
        if vision.hidden_size % 32:
            raise ValueError(f"the image tower width must be a multiple of 32, got {vision.hidden_size}")

    def _validate_resnet(self):
        if len(self.resnet_layers) != 4 or not all(isinstance(n, int) and n >= 1 for n in self.resnet_layers):
            raise ValueError(f"resnet_layers must be 4 positive block counts, got {self.resnet_layers}")
        if self.resnet_width < 8 or self.resnet_width % 8:
            raise ValueError(f"resnet_width must be a positive multiple of 8, got {self.resnet_width}")
        if self.resnet_neck_hidden_size < 1:
            raise ValueError(f"resnet_neck_hidden_size must be >= 1, got {self.resnet_neck_hidden_size}")
        if self.resnet_noise_scale < 0:
            raise ValueError(f"resnet_noise_scale must be >= 0, got {self.resnet_noise_scale}")
        for name in ("resnet_style_mix", "resnet_style_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> TDOSConfig:
        """A named configuration: `"tdos-vit-b16"` / `"tdos-rn50"` (the paper's dimensions) or `"tiny"` / `"tiny-rn50"`
        (tests and the CPU demo)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
        kwargs = copy.deepcopy(PRESETS[name])
        clip_overrides = overrides.pop("clip_config", None)
        if clip_overrides is not None:
            kwargs["clip_config"] = clip_overrides
        kwargs.update(overrides)
        return cls(**kwargs)


VIT_B16_CLIP = {
    "projection_dim": 512,
    "vision_config": {
        "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
        "patch_size": 16, "image_size": 512, "projection_dim": 512,
    },
    "text_config": {
        "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8,
        "max_position_embeddings": 77, "vocab_size": 49408, "projection_dim": 512,
        "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407,
    },
}  # fmt: skip

# Byte-level CLIP vocabulary (see `tdos.random_clip`): 512 byte symbols, then the start and end tokens.
TINY_CLIP = {
    "projection_dim": 32,
    "vision_config": {
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
        "patch_size": 8, "image_size": 64, "projection_dim": 32,
    },
    "text_config": {
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
        "max_position_embeddings": 64, "vocab_size": 514, "projection_dim": 32,
        "bos_token_id": 512, "eos_token_id": 513, "pad_token_id": 513,
    },
}  # fmt: skip

# CLIP RN50: the text tower is ViT-B/16's (width 512, 12 layers) with a 512 -> 1024 projection; the image tower is
# described by the `resnet_*` fields (the ViT vision config is unused).
RN50_CLIP = {"projection_dim": 1024, "text_config": {**VIT_B16_CLIP["text_config"], "projection_dim": 1024}}
TINY_RN50_CLIP = {"projection_dim": 32, "text_config": TINY_CLIP["text_config"]}

PRESETS = {
    "tdos-vit-b16": {"clip_config": VIT_B16_CLIP},
    "tdos-rn50": {"clip_config": RN50_CLIP, "backbone": "clip-rn50"},
    "tiny": {
        "clip_config": TINY_CLIP,
        "num_ood_prompts": 8,
        "prompt_context_length": 4,
        "text_context_length": 48,
        "context_decoder_hidden_size": 32,
        "context_decoder_num_heads": 2,
        "context_decoder_num_layers": 2,
        "hidden_dim": 32,
        "pixel_decoder_layers": 2,
        "pixel_decoder_num_heads": 4,
        "pixel_decoder_ffn_dim": 64,
        "decoder_layers": 2,
        "decoder_num_heads": 4,
        "decoder_ffn_dim": 64,
        "train_num_points": 1024,
        "crop_size": 64,
        "stride": 48,
    },
}
PRESETS["tiny-rn50"] = {
    **PRESETS["tiny"],
    "clip_config": TINY_RN50_CLIP,
    "backbone": "clip-rn50",
    "resnet_layers": [1, 1, 1, 1],
    "resnet_width": 8,
    "resnet_neck_hidden_size": 32,
}

__all__ = ["TDOSConfig", "CITYSCAPES_CLASSES", "OOD_CLASS"]
