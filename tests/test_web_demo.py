"""The Gradio web demo (app.py): the prediction behind the page, and the page itself in a real headless Chromium.

The browser test needs `gradio`, `selenium`, and Debian's `chromium` + `chromium-driver` (`TDOS_SETUP_BROWSER=1 bash
scripts/setup.sh`); it skips without them unless `TDOS_REQUIRE_BROWSER=1` (set by `.ci/run`), where it fails
instead. Its screenshot is kept at `outputs/test_artifacts/web_demo.png` (not in git).
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import build_tiny_model
from PIL import Image

from tdos import TDOSImageProcessor, save_for_inference
from tdos.random_clip import byte_level_clip_tokenizer


REPO = Path(__file__).resolve().parents[1]
ARTEFACT = REPO / "outputs" / "test_artifacts" / "web_demo.png"
sys.path.insert(0, str(REPO / "scripts"))
from web_demo_screenshot import browser_paths, run_in_browser, serve  # noqa: E402


@pytest.fixture(scope="module")
def demo_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_tdos_app")
    processor = TDOSImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=8)
    save_for_inference(build_tiny_model(), processor, path, tokenizer=byte_level_clip_tokenizer())
    return path


@pytest.fixture(scope="module")
def road_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("app_images") / "road.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (60, 120, 3), dtype=np.uint8)).save(path)
    return path


def test_demo_outputs_panel_labelled_anomaly_layer_and_components(demo_model_dir, road_image):
    from app import TDOSDemo, anomaly_label, default_threshold

    demo = TDOSDemo(str(demo_model_dir))
    threshold = float(np.quantile(demo.pipe(str(road_image))["anomaly_score"], 0.8))
    panel, (image, sections), rows = demo(Image.open(road_image), threshold, per_image_range=True)
    assert panel.width > 3 * 400 and np.asarray(panel).std() > 10
    names = [name for _, name in sections]
    assert names[-1] == anomaly_label(threshold) and names[-1].startswith("ANOMALY")
    anomaly = sections[-1][0]
    assert anomaly.shape == (60, 120) and 0 < anomaly.mean() < 1
    assert rows and rows[0][0] == 1 and sum(row[1] for row in rows) <= anomaly.sum()
    assert rows[0][5]  # named: the folder has the tokenizer
    assert default_threshold(str(demo_model_dir)) == 0.5  # no eval_results.json


def _browser_or_skip():
    chromium, driver = browser_paths()
    missing = [name for name, found in (("chromium", chromium), ("chromedriver", driver)) if not found]
    for module in ("gradio", "selenium"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        message = f"browser test needs {', '.join(missing)} (TDOS_SETUP_BROWSER=1 bash scripts/setup.sh)"
        if os.environ.get("TDOS_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def test_web_demo_in_a_real_headless_browser(demo_model_dir, road_image, tmp_path):
    _browser_or_skip()
    with serve(str(demo_model_dir), tmp_path / "app.log", ["--threshold", "0"]) as url:
        result = run_in_browser(url, road_image, ARTEFACT)
    panel = result["panel"]
    assert panel.shape[1] > 200 and panel.std() > 10  # a drawn panel, not a blank box
    assert "ANOMALY (score >= 0)" in result["legend"]
    assert "nearest words" in result["components"] and "7200" in result["components"]  # one 60 x 120 component
    assert ARTEFACT.is_file()
