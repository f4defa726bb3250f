"""Outlier exposure: paste OOD objects into Cityscapes-style training scenes on the fly, labelled 19.

Sources: a folder of cut-outs (RGBA images, or images with `<name>_mask.png` masks), or COCO instance
annotations (via pycocotools) of classes absent from Cityscapes. Pasting is deterministic under `(seed, index)`,
so a streamed epoch is reproducible whatever the worker split. Use it in a `map`:

```python
paster = OODObjectPaster.from_folder("cutouts/", probability=0.5, seed=0)

def paste(example, index):
    image, label = paster(np.asarray(example["image"]), np.asarray(example["label"]), index)
    return {"image": Image.fromarray(image), "label": Image.fromarray(label)}

dataset = load_benchmark("cityscapes", root, split="train").map(paste, with_indices=True)
```
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
from PIL import Image

from .common import find_files


logger = logging.getLogger(__name__)

OOD_TRAIN_ID = 19
ROAD_TRAIN_ID = 0
# COCO classes that are Cityscapes classes (or close to one), left out when `exclude_cityscapes=True`.
COCO_CITYSCAPES_CLASSES = frozenset(
    {"person", "bicycle", "car", "motorcycle", "bus", "train", "truck", "traffic light", "stop sign"}
)
CutOut = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class FileCutOut:
    """A cut-out on disk: an RGBA image (alpha = mask) or an RGB image with a separate mask file."""

    image_path: str
    mask_path: Union[str, None] = None

    def __call__(self) -> CutOut:
        with Image.open(self.image_path) as image:
            if self.mask_path is None:
                rgba = np.asarray(image.convert("RGBA"))
                return rgba[..., :3], rgba[..., 3] >= 128
            rgb = np.asarray(image.convert("RGB"))
        with Image.open(self.mask_path) as mask_image:
            mask = np.asarray(mask_image.convert("L")) >= 128
        if mask.shape != rgb.shape[:2]:
            raise ValueError(f"Mask {self.mask_path} is {mask.shape[::-1]} but image {self.image_path} is {rgb.shape[1::-1]}.")
        return rgb, mask


@dataclass(frozen=True)
class CocoCutOut:
    """One COCO instance: the image file and the annotation's segmentation (polygons or RLE)."""

    image_path: str
    segmentation: object
    height: int
    width: int
    bbox: tuple

    def __call__(self) -> CutOut:
        from pycocotools import mask as mask_utils

        segmentation = self.segmentation
        if isinstance(segmentation, list):
            segmentation = mask_utils.merge(mask_utils.frPyObjects(segmentation, self.height, self.width))
        elif isinstance(segmentation.get("counts"), list):
            segmentation = mask_utils.frPyObjects(segmentation, self.height, self.width)
        mask = mask_utils.decode(segmentation).astype(bool)
        with Image.open(self.image_path) as image:
            rgb = np.asarray(image.convert("RGB"))
        if rgb.shape[:2] != mask.shape:
            raise ValueError(f"COCO image {self.image_path} is {rgb.shape[1::-1]}, its annotation says {mask.shape[::-1]}.")
        x, y, w, h = (int(round(value)) for value in self.bbox)
        rows, cols = slice(y, y + max(h, 1)), slice(x, x + max(w, 1))
        return rgb[rows, cols], mask[rows, cols]


class OODObjectPaster:
    """Paste random OOD objects into a scene and label them 19.

    Args:
        objects (`Sequence`):
            Cut-outs: `(rgb uint8 HxWx3, mask bool HxW)` pairs, or callables returning one (loaded on demand).
        probability (`float`, *optional*, defaults to 0.5):
            Probability that a scene gets any object.
        max_objects (`int`, *optional*, defaults to 3):
            A scene that gets objects gets 1 to `max_objects` of them.
        scale_range (`tuple[float, float]`, *optional*, defaults to `(0.05, 0.25)`):
            Range of the object height as a fraction of the image height (aspect ratio kept).
        road_preference (`float`, *optional*, defaults to 0.8):
            Probability that an object stands on a road pixel (trainId 0) when the scene has road; otherwise it
            is placed anywhere.
        seed (`int`, *optional*, defaults to 0):
            Seed; the result depends only on `(seed, index)`.
    """

    def __init__(
        self,
        objects: Sequence[Union[CutOut, Callable[[], CutOut]]],
        probability: float = 0.5,
        max_objects: int = 3,
        scale_range: tuple = (0.05, 0.25),
        road_preference: float = 0.8,
        seed: int = 0,
    ):
        if len(objects) == 0:
            raise ValueError("OODObjectPaster needs at least one object.")
        for name, value in (("probability", probability), ("road_preference", road_preference)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"OODObjectPaster {name}={value} must be in [0, 1].")
        if not isinstance(max_objects, int) or max_objects < 1:
            raise ValueError(f"OODObjectPaster max_objects={max_objects!r} must be an integer >= 1.")
        low, high = scale_range
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"OODObjectPaster scale_range={scale_range} must satisfy 0 < low <= high <= 1.")
        self.objects = list(objects)
        self.probability = probability
        self.max_objects = max_objects
        self.scale_range = (low, high)
        self.road_preference = road_preference
        self.seed = seed

    @classmethod
    def from_folder(cls, path, **kwargs) -> "OODObjectPaster":
        """Cut-outs from a folder: RGBA `*.png`/`*.webp` (alpha = mask), or `<name>.<png|jpg>` + `<name>_mask.png`."""
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"Cut-out folder not found: {folder}")
        files = find_files(folder, ["*.png", "*.jpg", "*.jpeg", "*.webp"], "cut-out images")
        masks = {file.name[: -len("_mask.png")]: file for file in files if file.name.endswith("_mask.png")}
        objects = []
        for file in files:
            if file.name.endswith("_mask.png"):
                continue
            if file.stem in masks:
                objects.append(FileCutOut(str(file), str(masks[file.stem])))
                continue
            with Image.open(file) as image:
                has_alpha = image.mode in ("RGBA", "LA") or "transparency" in image.info
            if not has_alpha:
                raise ValueError(f"Cut-out {file} has no alpha channel and no mask {file.stem}_mask.png beside it.")
            objects.append(FileCutOut(str(file)))
        logger.info("Found %d cut-outs in %s.", len(objects), folder)
        return cls(objects, **kwargs)

    @classmethod
    def from_coco(
        cls, annotation_json, image_dir, exclude_cityscapes: bool = True, min_area: float = 1000.0, **kwargs
    ) -> "OODObjectPaster":
        """Instances from a COCO annotation file (non-crowd, area >= `min_area`), leaving out the classes that are
        Cityscapes classes when `exclude_cityscapes` (`COCO_CITYSCAPES_CLASSES`)."""
        from pycocotools.coco import COCO

        annotation_json, image_dir = Path(annotation_json), Path(image_dir)
        if not annotation_json.is_file():
            raise FileNotFoundError(f"COCO annotation file not found: {annotation_json}")
        if not image_dir.is_dir():
            raise FileNotFoundError(f"COCO image folder not found: {image_dir}")
        coco = COCO(str(annotation_json))
        excluded = {c["id"] for c in coco.loadCats(coco.getCatIds()) if c["name"] in COCO_CITYSCAPES_CLASSES}
        category_ids = [c for c in coco.getCatIds() if not (exclude_cityscapes and c in excluded)]
        objects = []
        for annotation in coco.loadAnns(coco.getAnnIds(catIds=category_ids, iscrowd=False)):
            if annotation["area"] < min_area or annotation["category_id"] not in category_ids:
                continue
            image_info = coco.imgs[annotation["image_id"]]
            objects.append(
                CocoCutOut(
                    str(image_dir / image_info["file_name"]), annotation["segmentation"], image_info["height"],
                    image_info["width"], tuple(annotation["bbox"]),
                )
            )  # fmt: skip
        if not objects:
            raise ValueError(f"No COCO instance in {annotation_json} passes the filters (min_area={min_area}).")
        return cls(objects, **kwargs)

    def _cut_out(self, number: int) -> CutOut:
        source = self.objects[number]
        rgb, mask = source() if callable(source) else source
        rgb, mask = np.asarray(rgb), np.asarray(mask).astype(bool)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != mask.shape:
            raise ValueError(f"Cut-out {number} must be an HxWx3 image with an HxW mask, got {rgb.shape} and {mask.shape}.")
        if not mask.any():
            raise ValueError(f"Cut-out {number} ({source!r:.120}) has an empty mask.")
        return rgb, mask

    def __call__(self, image: np.ndarray, label: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return copies of `image` (HxWx3 uint8) and `label` (HxW) with 0 to `max_objects` objects pasted."""
        if image.ndim != 3 or image.shape[:2] != label.shape:
            raise ValueError(f"Image {image.shape} and label {label.shape} must be HxWx3 and HxW of the same size.")
        rng = np.random.default_rng([self.seed, index])
        image, label = image.copy(), label.copy()
        if rng.random() >= self.probability:
            return image, label
        road_rows, road_cols = np.nonzero(label == ROAD_TRAIN_ID)
        for _ in range(int(rng.integers(1, self.max_objects + 1))):
            rgb, mask = self._cut_out(int(rng.integers(len(self.objects))))
            rgb, mask = self._resize(rgb, mask, rng, image.shape[0], image.shape[1])
            if road_rows.size and rng.random() < self.road_preference:
                pick = rng.integers(road_rows.size)
                bottom, centre = int(road_rows[pick]), int(road_cols[pick])
            else:
                bottom = int(rng.integers(mask.shape[0], image.shape[0] + 1)) - 1
                centre = int(rng.integers(0, image.shape[1]))
            self._paste(image, label, rgb, mask, bottom, centre)
        return image, label

    def _resize(self, rgb, mask, rng, height, width):
        """Scale the cut-out (tight box around its mask) to a random height fraction of the scene."""
        rows, cols = np.nonzero(mask)
        rgb = rgb[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        mask = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        target = rng.uniform(*self.scale_range) * height
        factor = min(target / mask.shape[0], width / mask.shape[1])
        size = (max(int(round(mask.shape[1] * factor)), 1), max(int(round(mask.shape[0] * factor)), 1))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.BILINEAR)) >= 128
        return rgb, mask

    @staticmethod
    def _paste(image, label, rgb, mask, bottom, centre):
        """Paste with the object's bottom-centre at (bottom, centre), clipped to the image."""
        top, left = bottom - mask.shape[0] + 1, centre - mask.shape[1] // 2
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + mask.shape[0], image.shape[0]), min(left + mask.shape[1], image.shape[1])
        if y1 <= y0 or x1 <= x0:
            return
        local = mask[y0 - top : y1 - top, x0 - left : x1 - left]
        image[y0:y1, x0:x1][local] = rgb[y0 - top : y1 - top, x0 - left : x1 - left][local]
        label[y0:y1, x0:x1][local] = OOD_TRAIN_ID
