import os

# No network here: every Hub or dataset access must come from local folders.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


TEST_OOD_BANDS = [[f"thing{band}x{index}" for index in range(3)] for band in range(16)]


def build_tiny_model(**overrides):
    """A tiny TDOS model around a random CLIP, created through the real `from_clip` path."""
    from tdos import TDOSConfig, TDOSForOODSegmentation
    from tdos.random_clip import random_clip

    config = TDOSConfig.from_preset("tiny", **overrides)
    clip, tokenizer = random_clip(config.clip_config, seed=0)
    torch.manual_seed(0)
    return TDOSForOODSegmentation.from_clip(clip, tokenizer, ood_bands=TEST_OOD_BANDS, config=config)


@pytest.fixture
def tiny_model():
    return build_tiny_model()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny model folder (with auto_map and code), shared by the tests that only read it."""
    path = tmp_path_factory.mktemp("tiny_tdos")
    build_tiny_model().save_pretrained(path)
    return path


def save_tiny_inference_folder(path):
    """Writes a tiny model, its image processor and the ood-segmentation pipeline code to `path` (save_for_inference)."""
    from tdos import TDOSImageProcessor, save_for_inference

    processor = TDOSImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=8)
    save_for_inference(build_tiny_model(), processor, path)
    return path


@pytest.fixture
def tiny_batch():
    generator = torch.Generator().manual_seed(0)
    pixel_values = torch.randn(2, 3, 64, 128, generator=generator)
    labels = torch.randint(0, 19, (2, 64, 128), generator=generator)
    labels[0, 20:40, 40:80] = 19  # an OOD object
    labels[1, :6] = 255
    return pixel_values, labels
