import subprocess
import sys

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image
from sklearn.metrics import average_precision_score

from datasets_scripts.panels import MASK_COLOUR, TRUTH_COLOUR, mask_outline, overlay_panel, panel_title, value_range_of


HEIGHT, WIDTH = 64, 128


def _frame():
    rng = np.random.default_rng(0)
    image = rng.integers(60, 120, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    score = np.full((HEIGHT, WIDTH), 0.04, np.float32)
    score[20:40, 50:90] = 0.06  # a weak response, as a briefly trained model gives
    label = np.zeros((HEIGHT, WIDTH), np.uint8)
    label[22:38, 52:88] = 1
    label[:4] = 255
    return image, score, label


def _has_colour(panel: Image.Image, colour, tolerance=3) -> int:
    pixels = np.asarray(panel).astype(int)
    return int((np.abs(pixels - np.asarray(colour)[:3]).max(-1) <= tolerance).sum())


def test_columns_appear_with_their_inputs():
    image, score, label = _frame()
    widths = [
        overlay_panel(image).width,
        overlay_panel(image, score).width,
        overlay_panel(image, score, threshold=0.05).width,
        overlay_panel(image, score, threshold=0.05, ground_truth=label).width,
    ]
    assert widths == sorted(widths) and len(set(widths)) == 4
    full = overlay_panel(image, score, threshold=0.05, ground_truth=label, title=panel_title("a/b", 0.5))
    assert full.mode == "RGB"
    assert _has_colour(full, MASK_COLOUR) > 50 and _has_colour(full, TRUTH_COLOUR) > 50
    no_mask = overlay_panel(image, score, ground_truth=label)
    assert _has_colour(no_mask, MASK_COLOUR) == 0


def test_fixed_range_hides_a_weak_response_and_per_image_normalisation_shows_it():
    image, score, _ = _frame()
    brightest = [round(255 * c) for c in colormaps["inferno"](1.0)[:3]]
    fixed = overlay_panel(image, score, value_range=(0.0, 1.0))
    per_image = overlay_panel(image, score, normalization="image")
    narrow = overlay_panel(image, score, value_range=(0.04, 0.06))
    assert _has_colour(fixed, brightest, tolerance=10) < 50  # the top of the colour bar only
    assert _has_colour(per_image, brightest, tolerance=10) > 500
    assert _has_colour(narrow, brightest, tolerance=10) > 500


def test_value_range_and_bad_input():
    score = np.array([[0.2, 0.4], [np.nan, 0.3]], np.float32)
    assert value_range_of(score, "image", (0, 1)) == pytest.approx((0.2, 0.4))
    assert value_range_of(score, "fixed", (0, 1)) == (0.0, 1.0)
    with pytest.raises(ValueError, match="normalization"):
        value_range_of(score, "global", (0, 1))
    with pytest.raises(ValueError, match="high > low"):
        value_range_of(score, "fixed", (1, 1))
    image, score, label = _frame()
    with pytest.raises(ValueError, match=r"score has shape \(2, 2\)"):
        overlay_panel(image, score[:2, :2])
    with pytest.raises(ValueError, match="ground-truth kind"):
        overlay_panel(image, ground_truth=label, ground_truth_kind="instance")


def test_outline_and_title():
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    edge = mask_outline(mask)
    assert edge.sum() == 12 and not edge[2:4, 2:4].any()
    assert mask_outline(mask, width=2)[1:5, 1:5].all()
    assert panel_title("x", 0.51234) == "frame x  |  AP 0.512"
    assert panel_title("x", float("nan")) == "frame x  |  AP n/a (no OOD pixel)"


def test_frame_average_precision_and_benchmark_range():
    from tdos.evaluation import PixelOODMetrics
    from tdos.overlays import anomaly_value_range, benchmark_value_range, frame_average_precision

    rng = np.random.default_rng(1)
    labels = (rng.random((32, 32)) < 0.1).astype(np.uint8)
    scores = (rng.random((32, 32)) * 0.5 + labels * 0.3).astype(np.float16).astype(np.float32)
    assert frame_average_precision(scores, labels) == pytest.approx(average_precision_score(labels.ravel(), scores.ravel()))
    assert np.isnan(frame_average_precision(scores, np.zeros_like(labels)))
    assert frame_average_precision(scores, None) is None
    metrics = PixelOODMetrics()
    metrics.update(scores, labels)
    low, high = benchmark_value_range(metrics.compute())
    assert np.mean(scores < low) <= 0.002 and np.mean(scores > high) <= 0.002 and high - low > 0.5
    assert anomaly_value_range("ood_probability", 20) == (0.0, 1.0) and anomaly_value_range("rba", 20) == (-19.0, 0.0)
    assert anomaly_value_range("max_softmax", 20) == (-1.0, -1.0 / 19)


def test_datasets_cli_and_panels_do_not_import_torch():
    code = "import sys, datasets_scripts.cli, datasets_scripts.panels; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
