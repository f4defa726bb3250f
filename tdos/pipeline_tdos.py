"""The `ood-segmentation` pipeline: anomaly score map, anomaly mask and semantic map of road images.

Imports only numpy, PIL, torch, transformers, `.components` (numpy, scipy, torch) and `.model_card` (standard
library), so it is saved with a model (`custom_pipelines` in its config) and loads with
`pipeline(model=DIR, trust_remote_code=True)` where the `tdos` package is not installed.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from transformers import Pipeline
from transformers.image_utils import load_image

from .components import ComponentNamer, find_components, load_clip_tokenizer
from .model_card import write_model_card


# Cityscapes trainId colours (0..18), then the OOD class in bright orange.
CITYSCAPES_PALETTE = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
]  # fmt: skip
OOD_COLOR = (255, 140, 0)


def semantic_to_pil(label_map: np.ndarray, num_classes: int) -> Image.Image:
    """A palette (`P`) image of class ids: Cityscapes colours for the first 19, orange for the last (OOD) class;
    pixel values stay the class ids."""
    colors = (CITYSCAPES_PALETTE + [(0, 0, 0)] * num_classes)[: num_classes - 1] + [OOD_COLOR]
    image = Image.fromarray(label_map.astype(np.uint8), mode="P")
    image.putpalette([channel for color in colors for channel in color])
    return image


class OODSegmentationPipeline(Pipeline):
    """
    Out-of-distribution segmentation with a TDOS model:
    `pipe(image_or_path, threshold=None, inference_mode=None, components=False, top_k=3, vocabulary=None, min_area=1)`.

    Each image is processed at the image processor's test scale and predicted with the model's `predict`
    (sliding window or whole image, `inference_mode` defaulting to the model config's). Returns per image:

    - `anomaly_score`: `np.float32` `(height, width)` at the original size (higher is more anomalous);
    - `anomaly_mask`: a PIL `L` image, 255 where the pixel is anomalous: `anomaly_score >= threshold`, or, without a
      threshold, where the OOD class is the arg-max of the semantic map;
    - `semantic`: a PIL palette image of class ids (Cityscapes colours, the OOD class last);
    - `labels`: `{class id: name}` of the semantic map;
    - with `components=True`, `components`: the connected regions of `anomaly_mask` with at least `min_area` pixels,
      highest maximum score first, as [`~components.AnomalyComponent`]s (mask, area, mean/max score, bounding box)
      named by the `top_k` nearest words of `vocabulary` (default: the OOD word bands' words) in CLIP space. Naming
      needs the model's CLIP tokenizer: `pipeline(..., tokenizer=...)` or a `tokenizer.json` / vocabulary in the
      model folder (`save_for_inference(..., tokenizer=...)` writes it).
    """

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(
        self, threshold=None, inference_mode=None, timeout=None, components=None, top_k=None, vocabulary=None,
        min_area=None,
    ):  # fmt: skip
        preprocess_kwargs = {} if timeout is None else {"timeout": timeout}
        forward_kwargs = {} if inference_mode is None else {"inference_mode": inference_mode}
        postprocess_kwargs = {"threshold": threshold}
        if components:
            forward_kwargs["vocabulary"] = None if vocabulary is None else tuple(vocabulary)
            postprocess_kwargs.update(components=True, top_k=3 if top_k is None else top_k, min_area=min_area or 1)
        return preprocess_kwargs, forward_kwargs, postprocess_kwargs

    def component_namer(self, vocabulary: tuple[str, ...] | None) -> ComponentNamer:
        """The namer of `vocabulary` (built once per vocabulary: its words go through the text tower once)."""
        namers = self.__dict__.setdefault("_component_namers", {})
        if vocabulary not in namers:
            tokenizer = self.tokenizer
            if tokenizer is None:
                try:
                    tokenizer = load_clip_tokenizer(self.model.name_or_path)
                except ValueError as error:
                    raise ValueError(
                        f"naming components needs the model's CLIP tokenizer: {error}; pass pipeline(..., "
                        "tokenizer=...) or save it with save_for_inference(..., tokenizer=...)"
                    ) from error
            namers[vocabulary] = ComponentNamer(self.model, tokenizer, vocabulary)
        return namers[vocabulary]

    def preprocess(self, image, timeout=None):
        image = load_image(image, timeout=timeout)
        inputs = self.image_processor(images=image, return_tensors="pt")
        inputs["target_size"] = (image.height, image.width)
        return inputs

    def _forward(self, model_inputs, inference_mode=None, **component_kwargs):
        target_size = model_inputs.pop("target_size")
        pixel_values = model_inputs["pixel_values"].to(self.device, self.dtype)
        outputs = self.model.predict(pixel_values, inference_mode=inference_mode)
        result = {"outputs": outputs, "target_size": target_size}
        if "vocabulary" in component_kwargs:
            namer = self.component_namer(component_kwargs["vocabulary"])
            result.update(namer=namer, dense_embeddings=namer.dense_embeddings(pixel_values))
        return result

    def postprocess(self, model_outputs, threshold=None, components=False, top_k=3, min_area=1):
        outputs, target_size = model_outputs["outputs"], [model_outputs["target_size"]]
        score = self.image_processor.post_process_anomaly_map(outputs, target_size)[0]
        labels = self.image_processor.post_process_semantic_segmentation(outputs, target_size)[0]
        id2label = {int(index): name for index, name in self.model.config.id2label.items()}
        ood_id = len(id2label) - 1
        mask = labels == ood_id if threshold is None else score >= threshold
        result = {
            "anomaly_score": score.numpy().astype(np.float32),
            "anomaly_mask": Image.fromarray(mask.numpy().astype(np.uint8) * 255, mode="L"),
            "semantic": semantic_to_pil(labels.numpy(), len(id2label)),
            "labels": id2label,
        }
        if components:
            found = find_components(mask.numpy(), result["anomaly_score"], min_area=min_area)
            result["components"] = model_outputs["namer"].name(found, model_outputs["dense_embeddings"], top_k)
        return result


def save_for_inference(model, image_processor, save_directory, tokenizer=None, training=None, model_id=None) -> None:
    """Saves `model`, `image_processor`, the CLIP `tokenizer` (if given; the pipeline's component naming needs it),
    the `ood-segmentation` pipeline code and a `README.md` model card (`tdos.model_card`: `training` recipe lines,
    the folder's `eval_results.json`, a "How to use" snippet loading `model_id`, default the folder) into one folder,
    so that `pipeline(model=save_directory, trust_remote_code=True)` and the stock `image-segmentation` pipeline both
    load it, also without the `tdos` package. Maps `AutoModelForSemanticSegmentation` (the class the stock pipeline asks
    for) to `TDOSForSemanticSegmentation` in `model.config.auto_map`, so the stock pipeline runs `predict` in the
    configured inference mode. Requires the task to be registered (`import tdos` does it)."""
    from transformers import pipeline

    auto_map = dict(getattr(model.config, "auto_map", None) or {})
    auto_map["AutoModelForSemanticSegmentation"] = "modeling_tdos.TDOSForSemanticSegmentation"
    model.config.auto_map = auto_map
    segmenter = pipeline("ood-segmentation", model=model, image_processor=image_processor, tokenizer=tokenizer)
    segmenter.save_pretrained(save_directory)
    write_model_card(save_directory, model, model_id=model_id, training=training)


__all__ = ["OODSegmentationPipeline", "CITYSCAPES_PALETTE", "OOD_COLOR", "semantic_to_pil", "save_for_inference"]
