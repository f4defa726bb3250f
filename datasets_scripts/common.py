"""Schema and helpers shared by every benchmark builder."""

import io

import datasets
import numpy as np
from PIL import Image


FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "label": datasets.Image(),
        "id": datasets.Value("string"),
        "dataset": datasets.Value("string"),
    }
)
SEMANTIC = "semantic"
OOD = "ood"


def encode_array(array: np.ndarray) -> dict:
    """Encode an in-memory uint8 image (HxW or HxWx3) for an `Image` feature, losslessly and cheaply (BMP).

    `datasets` would otherwise compress arrays to PNG, which costs more than drawing a synthetic scene.
    """
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="BMP")
    return {"bytes": buffer.getvalue(), "path": None}
