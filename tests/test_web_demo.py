"""The Gradio web demo (app.py): the prediction behind the page, and the page itself in a real headless Chromium.

The browser test needs `gradio`, `selenium`, and Debian's `chromium` + `chromium-driver` (`TDOS_SETUP_BROWSER=1 bash
scripts/setup.sh`); it skips without them unless `TDOS_REQUIRE_BROWSER=1` (set by `.ci/run`), where it fails
instead. Its screenshot is kept at `outputs/test_artifacts/web_demo.png` (not in git).
"""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import build_tiny_model
from PIL import Image

from tdos import TDOSImageProcessor, save_for_inference
from tdos.random_clip import byte_level_clip_tokenizer


REPO = Path(__file__).resolve().parents[1]
ARTEFACT = REPO / "outputs" / "test_artifacts" / "web_demo.png"
CHROMIUM, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _browser_or_skip():
    missing = [name for name, found in (("chromium", CHROMIUM), ("chromedriver", DRIVER)) if not found]
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
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, str(REPO / "app.py"), "--model", str(demo_model_dir), "--port", str(port), "--threshold", "0"]
    server = subprocess.Popen(command, env=env, stdout=open(tmp_path / "app.log", "w"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "app.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the demo did not start in 180 s"
                time.sleep(1)
        options = Options()
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1700"):
            options.add_argument(argument)
        options.binary_location = CHROMIUM
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        try:
            driver.get(url)
            upload = WebDriverWait(driver, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#input-image input[type=file]"))
            upload.send_keys(str(road_image))
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-image img"))
            driver.find_element(By.CSS_SELECTOR, "#run").click()
            panel = WebDriverWait(driver, 240).until(lambda d: d.find_element(By.CSS_SELECTOR, "#panel img"))
            WebDriverWait(driver, 60).until(
                lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", panel)
            )
            rendered = np.asarray(Image.open(io.BytesIO(panel.screenshot_as_png)).convert("RGB"))
            assert rendered.shape[1] > 200 and rendered.std() > 10  # a drawn panel, not a blank box
            WebDriverWait(driver, 60).until(lambda d: "ANOMALY" in d.find_element(By.CSS_SELECTOR, "#semantic").text)
            table = driver.find_element(By.CSS_SELECTOR, "#components").text
            assert "nearest words" in table and "7200" in table  # threshold 0: one component of 60 x 120 pixels
            ARTEFACT.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(ARTEFACT))
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)
