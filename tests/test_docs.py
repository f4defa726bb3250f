"""Documentation points at files of the repository, and the shapes it states hold for the presets."""

import re
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import TEST_OOD_BANDS

from tdos import TDOSConfig, TDOSForOODSegmentation
from tdos.random_clip import random_clip, random_clip_resnet


REPO = Path(__file__).resolve().parents[1]


def tracked_text_files():
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [REPO / name for name in names if name.endswith((".py", ".md", ".sh", ".json")) and "fixtures" not in name]


def test_references_point_at_the_projects_own_docs():
    sections = set(re.findall(r"^## (\d+)\. ", (REPO / "docs" / "method.md").read_text(encoding="utf-8"), re.M))
    for path in tracked_text_files():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"METHOD \u00a7|DESIGN\.md|BENCHMARKS\.md", text), path
        for cited in re.findall(r"docs/method\.md §(\d+)", text):
            assert cited in sections, f"{path} cites docs/method.md §{cited}"


@pytest.mark.parametrize("preset, stride", [("tiny", 2), ("tiny-rn50", 4)])
def test_forward_maps_have_the_stated_stride(preset, stride):
    config = TDOSConfig.from_preset(preset)
    if config.backbone == "clip-rn50":
        clip, tokenizer = random_clip_resnet(
            config.clip_config, config.resnet_layers, config.resnet_width, image_size=config.crop_size, seed=0
        )
    else:
        clip, tokenizer = random_clip(config.clip_config, seed=0)
    model = TDOSForOODSegmentation.from_clip(clip, tokenizer, ood_bands=TEST_OOD_BANDS, config=config).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 64, 128))
    assert outputs.semantic_map.shape == (1, 20, 64 // stride, 128 // stride)
    assert outputs.anomaly_score.shape == (1, 64 // stride, 128 // stride)
