"""Image processor for TDOS: keep-ratio resize to the test scale, CLIP normalisation, label maps, post-processing.

Two backends, as transformers' own image processors: [`TDOSImageProcessor`] (torchvision, the default) and
[`TDOSImageProcessorPil`] (PIL/NumPy fallback). Imports only torch, numpy, PIL and transformers, so a saved
processor loads with `trust_remote_code=True` where the `tdos` package is not installed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as tvF
from PIL import Image
from transformers.image_processing_backends import PilBackend, TorchvisionBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ChannelDimension, ImageInput, PILImageResampling, SizeDict
from transformers.processing_utils import ImagesKwargs, Unpack
from transformers.utils import TensorType


IGNORE_INDEX = 255
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class TDOSImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    size_divisor (`int`, *optional*, defaults to `self.size_divisor`):
        The resized sides are rounded to multiples of this (the model's patch size), so every processed image can be
        fed to the model's `forward` directly; the slight change of aspect ratio is undone by the post-processing,
        which resizes the whole prediction to the original size.
    label_mapping (`dict[int, int]`, *optional*, defaults to `self.label_mapping`):
        Maps raw label values of `segmentation_maps` to training ids (e.g. Cityscapes labelIds to trainIds); values
        not in the mapping become 255 (ignored). `None` keeps the values.
    anomaly_threshold (`float`, *optional*, defaults to `self.anomaly_threshold`):
        Pixels whose anomaly score is at least this form the `ood` segment of the panoptic-style post-processing;
        `None` uses the model's own decision (the OOD class is the arg-max of the semantic map).
    """

    size_divisor: int
    label_mapping: dict[int, int] | None
    anomaly_threshold: float | None


def keep_ratio_size(height: int, width: int, size: SizeDict, size_divisor: int) -> tuple[int, int]:
    """mmcv's keep-ratio rule `scale = min(longest_edge / long side, shortest_edge / short side)`, sides rounded half
    up (as mmcv's `int(side * scale + 0.5)`) to a multiple of `size_divisor` (at least one). `size_divisor=1` gives
    mmcv's sizes exactly (the model's `predict` pads them to its input stride)."""
    scale = min(size.longest_edge / max(height, width), size.shortest_edge / min(height, width))
    return tuple(max(int(side * scale / size_divisor + 0.5), 1) * size_divisor for side in (height, width))


def to_rgb_input(image: ImageInput) -> ImageInput:
    """16-bit images (PIL modes `I;16*`/`I`, uint16 arrays or tensors) as 8-bit arrays, and 2-D (grayscale) arrays as
    `(H, W, 3)`; anything else unchanged (RGBA and grayscale PIL images are converted by the backends)."""
    if isinstance(image, Image.Image) and image.mode in SIXTEEN_BIT_MODES:
        image = np.asarray(image)
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint16:
        image = image.numpy()
    if isinstance(image, np.ndarray) and image.dtype in (np.uint16, np.int32):
        image = np.round(image.astype(np.float32) / 257.0).clip(0, 255).astype(np.uint8)
    if isinstance(image, (np.ndarray, torch.Tensor)) and image.ndim == 2:
        image = image[..., None].repeat(1, 1, 3) if isinstance(image, torch.Tensor) else np.repeat(image[..., None], 3, -1)
    return image


def remap_labels(label_map, label_mapping: dict[int, int]):
    """Applies `label_mapping` (raw value -> id) to an integer map (NumPy or torch); unmapped values become 255."""
    mapping = {int(key): int(value) for key, value in label_mapping.items()}
    values = label_map if isinstance(label_map, np.ndarray) else label_map.cpu().numpy()
    lookup = np.full(max(int(values.max()), max(mapping)) + 1, IGNORE_INDEX, dtype=np.int64)
    lookup[list(mapping)] = list(mapping.values())
    remapped = lookup[values.astype(np.int64)]
    return remapped if isinstance(label_map, np.ndarray) else torch.from_numpy(remapped).to(label_map.device)


def to_label_ids(label_map, label_mapping: dict[int, int] | None):
    """A resized `(1, H, W)` or `(H, W)` map as `(H, W)` int64 ids, remapped when `label_mapping` is given."""
    label_map = label_map[0] if label_map.ndim == 3 else label_map
    if label_mapping is not None:
        return remap_labels(label_map, label_mapping)
    return label_map.astype(np.int64) if isinstance(label_map, np.ndarray) else label_map.long()


def _per_image_sizes(batch: int, target_sizes) -> list[tuple[int, int] | None]:
    if target_sizes is None:
        return [None] * batch
    if len(target_sizes) != batch:
        raise ValueError(f"got {len(target_sizes)} target_sizes for a batch of {batch} predictions")
    return [tuple(int(side) for side in size) for size in target_sizes]


def _resize_maps(maps: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """Bilinear resize of `(channels, h, w)` float maps to `size` (unchanged when `None` or already that size)."""
    maps = maps.float()
    if size is None or tuple(maps.shape[-2:]) == size:
        return maps
    return F.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0]


class TDOSImageProcessingMixin:
    """What both backends share: defaults, the keep-ratio resize, 16-bit inputs, label maps and post-processing."""

    valid_kwargs = TDOSImageProcessorKwargs
    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"shortest_edge": 1024, "longest_edge": 2048}
    default_to_square = False
    size_divisor = 16
    do_resize = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = True
    label_mapping = None
    anomaly_threshold = None

    def preprocess(self, images: ImageInput, segmentation_maps: ImageInput | None = None, **kwargs) -> BatchFeature:
        r"""
        images (`ImageInput`):
            Images (PIL, NumPy or torch; RGB, grayscale, RGBA or 16-bit), resized with their aspect ratio kept so that
            the long side is at most `size["longest_edge"]` and the short side at most `size["shortest_edge"]`.
        segmentation_maps (`ImageInput`, *optional*):
            Label maps of the same sizes as the images; returned as `labels` (int64, nearest resize, remapped by
            `label_mapping`).
        """
        images = [to_rgb_input(image) for image in images] if isinstance(images, (list, tuple)) else to_rgb_input(images)
        return super().preprocess(images, segmentation_maps, **kwargs)

    def _preprocess_image_like_inputs(
        self,
        images: ImageInput,
        segmentation_maps: ImageInput | None,
        do_convert_rgb: bool,
        input_data_format: ChannelDimension,
        return_tensors: str | TensorType | None,
        **kwargs,
    ) -> BatchFeature:
        images = self._prepare_image_like_inputs(
            images=images, do_convert_rgb=do_convert_rgb, input_data_format=input_data_format
        )
        pixel_values = self._preprocess(images, return_tensors=None, **kwargs)["pixel_values"]
        data = {"pixel_values": pixel_values}
        if segmentation_maps is not None:
            maps = self._prepare_image_like_inputs(
                images=segmentation_maps, expected_ndims=2, do_convert_rgb=False, input_data_format=ChannelDimension.FIRST
            )
            for index, (image, label_map) in enumerate(zip(images, maps)):
                if tuple(image.shape[-2:]) != tuple(label_map.shape[-2:]):
                    raise ValueError(
                        f"segmentation map {index} has size {tuple(label_map.shape[-2:])}, expected the size of its "
                        f"image {tuple(image.shape[-2:])}"
                    )
            map_kwargs = {**kwargs, "do_rescale": False, "do_normalize": False, "resample": PILImageResampling.NEAREST}
            resized = self._preprocess(maps, return_tensors=None, **map_kwargs)["pixel_values"]
            data["labels"] = [to_label_ids(label_map, kwargs.get("label_mapping")) for label_map in resized]
        if return_tensors is not None:
            sizes = {tuple(value.shape[-2:]) for value in pixel_values}
            if len(sizes) > 1:
                raise ValueError(
                    f"images of different aspect ratios give different sizes {sorted(sizes)}; process them one at a "
                    "time or with return_tensors=None"
                )
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _preprocess(self, images, do_resize: bool, size: SizeDict, resample, size_divisor: int, **kwargs) -> BatchFeature:
        """Keep-ratio resize of each image (see [`keep_ratio_size`]), then the backend's rescale and normalisation."""
        kwargs.pop("label_mapping", None)
        kwargs.pop("anomaly_threshold", None)
        if resample == PILImageResampling.NEAREST and self.backend == "torchvision":
            resample = tvF.InterpolationMode.NEAREST_EXACT
        if do_resize:
            if not (size.shortest_edge and size.longest_edge):
                raise ValueError(f"size must have 'shortest_edge' and 'longest_edge', got {dict(size)}")
            resized = []
            for image in images:
                height, width = keep_ratio_size(*image.shape[-2:], size, size_divisor)
                resized.append(self.resize(image, SizeDict(height=height, width=width), resample=resample))
            images = resized
        return super()._preprocess(images, do_resize=False, size=size, resample=resample, **kwargs)

    # ------------------------------------------------------------------ post-processing
    def post_process_semantic_segmentation(self, outputs, target_sizes=None) -> list[torch.Tensor]:
        """
        Label maps from a [`TDOSOutput`] (of `forward` or `predict`).

        Args:
            outputs ([`TDOSOutput`]): with `semantic_map` `(batch, K_id, h, w)`.
            target_sizes (`list[tuple[int, int]]`, *optional*): `(height, width)` per image (the original sizes);
                the maps are resized bilinearly before the arg-max. Kept at the output size when `None`.

        Returns:
            `list[torch.LongTensor]`: per image a `(height, width)` map of class ids (the last id is `ood`).
        """
        semantic_map = outputs.semantic_map
        sizes = _per_image_sizes(len(semantic_map), target_sizes)
        return [_resize_maps(maps, size).argmax(0) for maps, size in zip(semantic_map, sizes)]

    def post_process_anomaly_map(self, outputs, target_sizes=None) -> list[torch.Tensor]:
        """
        Per-pixel anomaly scores (higher is more anomalous) from a [`TDOSOutput`].

        Args:
            outputs ([`TDOSOutput`]): with `anomaly_score` `(batch, h, w)`.
            target_sizes (`list[tuple[int, int]]`, *optional*): `(height, width)` per image; bilinear resize.

        Returns:
            `list[torch.FloatTensor]`: per image a float32 `(height, width)` map.
        """
        scores = outputs.anomaly_score
        sizes = _per_image_sizes(len(scores), target_sizes)
        return [_resize_maps(score[None], size)[0] for score, size in zip(scores, sizes)]

    def post_process_panoptic_segmentation(
        self, outputs, target_sizes=None, anomaly_threshold: float | None = None, **kwargs
    ) -> list[dict]:
        """
        Segments for the stock `image-segmentation` pipeline: one per class of the arg-max label map, the last class
        (`ood`) being the anomaly segment.

        Args:
            outputs ([`TDOSOutput`]): with `semantic_map` and `anomaly_score`.
            target_sizes (`list[tuple[int, int]]`, *optional*): `(height, width)` per image.
            anomaly_threshold (`float`, *optional*): defaults to `self.anomaly_threshold`; when set, pixels whose
                anomaly score is at least this are the anomaly segment, whatever their arg-max class, and the others
                take their best in-distribution class.
            kwargs: `threshold`, `mask_threshold` and `overlap_mask_area_threshold` passed by the stock pipeline
                filter per-query masks, which a dense semantic map does not have; they are ignored.

        Returns:
            `list[dict]`: per image `{"segmentation": LongTensor (height, width) of segment ids 1..n, "segments_info":
            [{"id", "label_id", "was_fused", "score"}]}`; a class segment's score is the mean semantic score of its
            class over the segment, the anomaly segment's the mean anomaly score.
        """
        anomaly_threshold = self.anomaly_threshold if anomaly_threshold is None else anomaly_threshold
        sizes = _per_image_sizes(len(outputs.semantic_map), target_sizes)
        ood_id = outputs.semantic_map.shape[1] - 1
        results = []
        for maps, score, size in zip(outputs.semantic_map, outputs.anomaly_score, sizes):
            maps, score = _resize_maps(maps, size), _resize_maps(score[None], size)[0]
            if anomaly_threshold is None:
                labels = maps.argmax(0)
            else:
                labels = torch.where(score >= anomaly_threshold, ood_id, maps[:ood_id].argmax(0))
            segmentation = torch.zeros_like(labels)
            segments = []
            for label_id in labels.unique().tolist():
                mask = labels == label_id
                segmentation[mask] = len(segments) + 1
                value = score[mask].mean() if label_id == ood_id else maps[label_id][mask].mean()
                segments.append({"id": len(segments) + 1, "label_id": label_id, "was_fused": False, "score": value.item()})
            results.append({"segmentation": segmentation, "segments_info": segments})
        return results


class TDOSImageProcessor(TDOSImageProcessingMixin, TorchvisionBackend):
    """TDOS image processor on the torchvision backend (the default). See [`TDOSImageProcessingMixin`]."""

    def __init__(self, **kwargs: Unpack[TDOSImageProcessorKwargs]):
        super().__init__(**kwargs)


class TDOSImageProcessorPil(TDOSImageProcessingMixin, PilBackend):
    """TDOS image processor on the PIL/NumPy backend (the fallback without torchvision)."""

    def __init__(self, **kwargs: Unpack[TDOSImageProcessorKwargs]):
        super().__init__(**kwargs)


__all__ = ["TDOSImageProcessor", "TDOSImageProcessorPil", "keep_ratio_size"]
