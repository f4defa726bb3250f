"""Anomaly components with names: the connected regions of an anomaly mask, each described by its area, scores and
bounding box, and named by the nearest words of a vocabulary in CLIP's joint image-text space.

TDOS scores pixels against text embeddings, so its dense CLIP image embeddings `V` (`(C, h, w)`, the embeddings the
score map compares with the prompts) live in the space of CLIP's text embeddings. A component's name is found by
averaging `V` over the component (each grid cell weighted by the share of it the component covers) and ranking the
vocabulary's text embeddings (`template.format(word)` through the model's frozen text tower) by cosine similarity.
With random or briefly trained weights the names are noise; they mean something with real CLIP weights.

Imports only numpy, scipy, torch and transformers (it is saved with a model beside the pipeline code).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from transformers import CLIPTokenizer


DEFAULT_TEMPLATE = "a photo of a {}."


@dataclass
class AnomalyComponent:
    """One connected region of the anomaly mask.

    Attributes:
        mask (`np.ndarray` of bool, `(H, W)`): the component's pixels.
        area (`int`): its pixel count.
        mean_score, max_score (`float`): mean and maximum anomaly score over it.
        bbox (`tuple[int, int, int, int]`): `(left, top, right, bottom)` in pixels, right and bottom exclusive.
        words (`list[tuple[str, float]]`): the nearest vocabulary words and their cosine similarities, best first
            (empty when components are not named).
    """

    mask: np.ndarray
    area: int
    mean_score: float
    max_score: float
    bbox: tuple[int, int, int, int]
    words: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self, with_mask: bool = False) -> dict:
        """Plain Python values (JSON-serialisable); the mask only with `with_mask`."""
        result = {
            "area": self.area,
            "mean_score": self.mean_score,
            "max_score": self.max_score,
            "bbox": list(self.bbox),
            "words": [{"word": word, "cosine": cosine} for word, cosine in self.words],
        }
        if with_mask:
            result["mask"] = self.mask
        return result


def find_components(mask: np.ndarray, score: np.ndarray, min_area: int = 1) -> list[AnomalyComponent]:
    """The 8-connected components of the boolean `mask` with at least `min_area` pixels, highest `max_score` first."""
    mask = np.asarray(mask, dtype=bool)
    score = np.asarray(score, dtype=np.float32)
    if mask.shape != score.shape or mask.ndim != 2:
        raise ValueError(f"mask {mask.shape} and score {score.shape} must be 2-D maps of the same shape")
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    components = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        component = labels == index
        area = int(component.sum())
        if area < min_area:
            continue
        values = score[component]
        rows, columns = box
        components.append(
            AnomalyComponent(
                mask=component, area=area, mean_score=float(values.mean()), max_score=float(values.max()),
                bbox=(columns.start, rows.start, columns.stop, rows.stop),
            )
        )  # fmt: skip
    return sorted(components, key=lambda c: (-c.max_score, -c.area))


def load_clip_tokenizer(name_or_path) -> CLIPTokenizer:
    """`CLIPTokenizer.from_pretrained` that refuses a folder without a vocabulary (transformers 5 returns an empty
    tokenizer there, which would map every word to the unknown token)."""
    try:
        tokenizer = CLIPTokenizer.from_pretrained(name_or_path)
    except (OSError, TypeError, ValueError) as error:
        raise ValueError(f"cannot load a CLIP tokenizer from {name_or_path!r} ({error})") from error
    if len(tokenizer.get_vocab()) <= len(tokenizer.all_special_tokens):
        raise ValueError(f"{name_or_path!r} has no CLIP tokenizer vocabulary (vocab.json / tokenizer.json)")
    return tokenizer


def default_vocabulary() -> list[str]:
    """The words of the shipped OOD word bands (`tdos.ood_prompts.load_ood_bands`), in order, without repeats."""
    import importlib

    try:
        bands = importlib.import_module("tdos.ood_prompts").load_ood_bands()
    except ImportError as error:
        raise ValueError("pass vocabulary=[...]: the default OOD word bands ship with the tdos package") from error
    return list(dict.fromkeys(word for band in bands for word in band))


class ComponentNamer:
    """
    Names anomaly components with the `k` nearest words of a vocabulary (see the module docstring).

    Args:
        model ([`TDOSForOODSegmentation`]): the model whose image and text towers embed the image and the words.
        tokenizer (`CLIPTokenizer`): CLIP's tokenizer of the model's text tower.
        vocabulary (`list[str]`, *optional*): the candidate names; default: the words of the OOD word bands.
        template (`str`, *optional*, defaults to `"a photo of a {}."`): the text each word is embedded in.
        batch_size (`int`, *optional*, defaults to 256): words per text-tower pass.
    """

    def __init__(self, model, tokenizer, vocabulary=None, template: str = DEFAULT_TEMPLATE, batch_size: int = 256):
        self.model = model
        self.vocabulary = list(vocabulary) if vocabulary is not None else default_vocabulary()
        if not self.vocabulary:
            raise ValueError("the vocabulary is empty: give at least one word")
        self.word_embeddings = self._embed_words(tokenizer, template, batch_size)  # (N, C), unit length

    @torch.no_grad()
    def _embed_words(self, tokenizer, template: str, batch_size: int) -> torch.Tensor:
        encoder = self.model.text_encoder
        length = self.model.config.text_context_length
        device = next(encoder.parameters()).device
        chunks = []
        for start in range(0, len(self.vocabulary), batch_size):
            texts = [template.format(word) for word in self.vocabulary[start : start + batch_size]]
            ids = tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
            chunks.append(encoder.encode_input_ids(ids["input_ids"].to(device), tokenizer.eos_token_id).float())
        return F.normalize(torch.cat(chunks), dim=-1)

    @torch.no_grad()
    def dense_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The dense CLIP embeddings `V` `(C, h, w)` of one processed image `(1, 3, H, W)` (whole image, zero-padded
        at the bottom/right to the input stride; the grid cells of the padding are cropped off)."""
        height, width = pixel_values.shape[-2:]
        stride = self.model.config.input_stride
        padded = F.pad(pixel_values, (0, -height % stride, 0, -width % stride))
        dense = self.model.image_encoder(padded).dense_embeddings[0].float()  # (C, h', w')
        rows = max(1, round(dense.shape[1] * height / padded.shape[-2]))
        columns = max(1, round(dense.shape[2] * width / padded.shape[-1]))
        return dense[:, :rows, :columns]

    def nearest_words(self, dense: torch.Tensor, mask: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        """The `k` vocabulary words nearest to the mean of `dense` `(C, h, w)` over `mask` (`(H, W)` bool at the
        image's size, which the grid spans), with their cosine similarities, best first."""
        weights = F.interpolate(
            torch.as_tensor(np.asarray(mask), dtype=torch.float32, device=dense.device)[None, None],
            size=dense.shape[1:], mode="area",
        )[0, 0]  # fmt: skip
        if weights.sum() <= 0:
            raise ValueError("the component mask is empty")
        mean = (dense * weights).sum((1, 2)) / weights.sum()
        cosines = self.word_embeddings.to(dense.device) @ F.normalize(mean, dim=0)
        best = cosines.topk(min(k, cosines.numel()))
        return [(self.vocabulary[i], float(c)) for c, i in zip(best.values.tolist(), best.indices.tolist())]

    def name(self, components: list[AnomalyComponent], dense: torch.Tensor, k: int = 3) -> list[AnomalyComponent]:
        """Fills in `words` of every component (in place) and returns them."""
        for component in components:
            component.words = self.nearest_words(dense, component.mask, k)
        return components
