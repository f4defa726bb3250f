"""Drives the web demo (app.py) in a headless Chromium: starts it on a model, uploads an image, waits for the result
and saves a screenshot of the page. The browser test runs it; the README's picture of the demo comes from it.

    python scripts/web_demo_screenshot.py MODEL IMAGE OUT.png [--threshold T] [--per-image-range]

Needs gradio and selenium (`pip install -e ".[app,browser]"`) and Debian's chromium + chromium-driver.
"""

from __future__ import annotations

import argparse
import contextlib
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
from PIL import Image


REPO = Path(__file__).resolve().parents[1]


def browser_paths() -> tuple[str | None, str | None]:
    """The Chromium and chromedriver executables on PATH (None where absent)."""
    return shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(model: str, log_path: Path, extra_args=(), timeout: float = 180):
    """Runs `app.py --model MODEL` on a free port; yields its URL once it answers; stops it afterwards."""
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    command = [sys.executable, str(REPO / "app.py"), "--model", str(model), "--port", str(port), *extra_args]
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(f"the demo exited: {Path(log_path).read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the demo did not answer within {timeout:.0f} s")
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_in_browser(url: str, image: Path, screenshot: Path, timeout: float = 240) -> dict:
    """Uploads `image`, presses "Segment", waits for the overlay panel and saves a screenshot of the page. Returns the
    rendered panel (RGB array), the legend text of the semantic map and the text of the components table."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver_path = browser_paths()
    options = Options()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        options.add_argument(argument)
    options.binary_location = chromium
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, timeout)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#input-image input[type=file]")).send_keys(str(image))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-image img"))
        driver.find_element(By.CSS_SELECTOR, "#run").click()
        panel = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#panel img"))
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", panel))
        wait.until(lambda d: "ANOMALY" in d.find_element(By.CSS_SELECTOR, "#semantic").text)
        rendered = np.asarray(Image.open(io.BytesIO(panel.screenshot_as_png)).convert("RGB"))
        result = {
            "panel": rendered,
            "legend": driver.find_element(By.CSS_SELECTOR, "#semantic").text,
            "components": driver.find_element(By.CSS_SELECTOR, "#components").text,
        }
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        return result
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("image", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--per-image-range", action="store_true")
    args = parser.parse_args()
    extra = (["--threshold", str(args.threshold)] if args.threshold is not None else []) + (
        ["--per-image-range"] if args.per_image_range else []
    )
    with serve(args.model, args.output.with_suffix(".log"), extra) as url:
        result = run_in_browser(url, args.image.resolve(), args.output)
    print(f"wrote {args.output}; panel {result['panel'].shape[1]}x{result['panel'].shape[0]} px")


if __name__ == "__main__":
    main()
