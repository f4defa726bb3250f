import logging
import subprocess
import sys

import numpy as np
import pytest
from conftest import build_tiny_model
from PIL import Image

from tdos import TDOSImageProcessor
from tdos.predict import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_tdos_cli")
    build_tiny_model().save_pretrained(path)
    TDOSImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=8).save_pretrained(path)
    return path


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 90, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "sub" / "b.jpg")
    Image.fromarray((rng.integers(0, 65536, (30, 50))).astype(np.uint16)).save(folder / "c16.png")
    good = folder / "d.png"
    Image.fromarray(rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)).save(good)
    (folder / "broken.png").write_bytes(good.read_bytes()[:200])  # truncated PNG
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_with_a_corrupt_file(model_dir, image_folder, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tdos.predict")
    out = tmp_path / "out"
    code = main([str(image_folder), "--model", str(model_dir), "--output-dir", str(out), "--threshold", "0.05"])
    assert code == 1  # broken.png failed
    assert "broken.png" in caplog.text and "cannot read the image" in caplog.text
    for stem, size in [("a", (40, 90)), ("sub/b", (64, 64)), ("c16", (30, 50)), ("d", (48, 96))]:
        score = np.load(out / f"{stem}_anomaly.npy")
        assert score.dtype == np.float32 and score.shape == size
        overlay, semantic, mask = (Image.open(out / f"{stem}_{kind}.png") for kind in ("overlay", "semantic", "mask"))
        assert overlay.mode == "RGB" and overlay.width >= 3 * 400  # image | heat map | mask, 400 px per column
        assert semantic.mode == "P" and semantic.size == size[::-1] and np.asarray(semantic).max() < 20
        np.testing.assert_array_equal(np.asarray(mask) == 255, score >= 0.05)
    assert not list(out.rglob("broken*")) and not list(out.rglob("*.tmp"))
    assert "wrote 4 of 5 images" in caplog.text


def test_all_good_exit_zero_options_and_files(model_dir, image_folder, tmp_path):
    (image_folder / "broken.png").unlink()
    out = tmp_path / "out"
    arguments = [str(image_folder / "a.png"), "--model", str(model_dir), "--output-dir", str(out)]
    assert main(arguments + ["--inference-mode", "whole"]) == 0
    whole = np.load(out / "a_anomaly.npy")
    assert not (out / "a_mask.png").exists()  # no threshold: no mask
    assert main(arguments + ["--bf16"]) == 0
    slide_bf16 = np.load(out / "a_anomaly.npy")
    assert slide_bf16.dtype == np.float32 and not np.allclose(whole, slide_bf16)


def test_missing_inputs_and_no_images(model_dir, tmp_path, caplog):
    assert main([str(tmp_path / "nope.png"), "--model", str(model_dir), "--output-dir", str(tmp_path / "o")]) == 1
    assert "nope.png: no such file or folder" in caplog.text


def test_overlay_panel_columns_and_normalization(model_dir, image_folder, tmp_path):
    arguments = [str(image_folder / "d.png"), "--model", str(model_dir), "--output-dir"]
    assert main(arguments + [str(tmp_path / "fixed")]) == 0
    assert main(arguments + [str(tmp_path / "image"), "--overlay-normalization", "image", "--threshold", "0.05"]) == 0
    fixed, per_image = (Image.open(tmp_path / kind / "d_overlay.png") for kind in ("fixed", "image"))
    assert per_image.width > fixed.width  # the mask column
    assert not np.array_equal(np.asarray(fixed)[:, : fixed.width // 2], np.asarray(per_image)[:, : fixed.width // 2])


def test_module_entry_point_exit_code(model_dir, tmp_path):
    missing = tmp_path / "x.jpg"  # fails before the model is loaded: a cheap check of the exit code
    command = [sys.executable, "-m", "tdos.predict", str(missing), "--model", str(model_dir), "--output-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "x.jpg" in result.stderr


def test_missing_model_folder_and_file_output_dir_fail_in_the_parser(model_dir, image_folder, tmp_path, capsys):
    from tdos.predict import load_pipeline

    (tmp_path / "outputs" / "demo").mkdir(parents=True)
    typo = tmp_path / "outputs" / "dmeo"
    with pytest.raises(SystemExit) as exit_info:
        main([str(image_folder), "--model", str(typo), "--output-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"--model {str(typo)!r} does not exist; expected a folder with config.json" in error
    assert "similar folders in" in error and "demo" in error
    with pytest.raises(FileNotFoundError, match=r"model folder '.*dmeo' does not exist"):
        load_pipeline(str(typo), "cpu")
    with pytest.raises(FileNotFoundError, match=r"model folder '.*demo' has no config.json"):
        load_pipeline(str(tmp_path / "outputs" / "demo"), "cpu")
    taken = tmp_path / "out.txt"
    taken.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        main([str(image_folder), "--model", str(model_dir), "--output-dir", str(taken)])
    assert exit_info.value.code == 2
    assert f"--output-dir {str(taken)!r} is a file; expected a folder" in capsys.readouterr().err
