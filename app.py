"""TDOS web demo (Gradio; `app.py` at the repository root is the Hugging Face Spaces convention).

    pip install -e ".[app]"
    python app.py --model outputs/demo            # a saved TDOS folder or a Hub id; then open http://127.0.0.1:7860

Upload a road image: the demo shows the overlay panel (image | anomaly heat map | mask at the threshold, components
boxed and named), the semantic map with a legend in which the thresholded anomaly mask is its own layer labelled
"ANOMALY (score >= t)" (and the OOD class, where it is the arg-max, "ood (arg-max class)"), and a table of the
highest-scoring anomaly components with their nearest words in CLIP space (names need the model's CLIP tokenizer in
its folder; without one the components are listed unnamed). Releasing the threshold slider re-runs the prediction.
The slider starts at `--threshold`, by default the best-F1 threshold in the folder's `eval_results.json` (else 0.5).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from datasets_scripts.panels import overlay_panel
from tdos.components import find_components
from tdos.overlays import MAX_LABELLED_COMPONENTS, anomaly_value_range, component_label
from tdos.predict import load_pipeline


logger = logging.getLogger(__name__)

COMPONENT_COLUMNS = ["rank", "area (px)", "max score", "mean score", "bbox (left, top, right, bottom)", "nearest words"]


def anomaly_label(threshold: float) -> str:
    """The legend entry of the thresholded anomaly mask, so nobody mistakes it for a known class."""
    return f"ANOMALY (score >= {threshold:.3g})"


def default_threshold(model: str) -> float:
    """The best-F1 threshold of the first benchmark in `model/eval_results.json`, else 0.5."""
    path = Path(model) / "eval_results.json"
    if path.is_file():
        for row in json.loads(path.read_text()).values():
            if isinstance(row.get("best_threshold"), (int, float)):
                return float(row["best_threshold"])
    return 0.5


class TDOSDemo:
    """The prediction behind the page: one pipeline, one call per image and threshold."""

    def __init__(self, model: str, device: str = "cpu", top_k: int = 3):
        self.pipe = load_pipeline(model, device)
        self.top_k = top_k
        config = self.pipe.model.config
        self.value_range = anomaly_value_range(config.anomaly_score, config.num_id_classes)
        self.range_name = f"{config.anomaly_score} range"

    def components(self, image, threshold: float):
        """The prediction with named components, or unnamed ones where the model folder has no tokenizer."""
        try:
            return self.pipe(image, threshold=threshold, components=True, top_k=self.top_k)
        except ValueError as error:
            logger.warning("components are listed unnamed: %s", error)
            output = self.pipe(image, threshold=threshold)
            mask = np.asarray(output["anomaly_mask"]) == 255
            output["components"] = find_components(mask, output["anomaly_score"])
            return output

    def __call__(self, image, threshold: float, per_image_range: bool):
        if image is None:
            raise ValueError("upload an image first")
        image = image.convert("RGB")
        output = self.components(image, threshold)
        found = output["components"]
        boxes = [(c.bbox, component_label(rank, c)) for rank, c in enumerate(found[:MAX_LABELLED_COMPONENTS], 1)]
        panel = overlay_panel(
            image, output["anomaly_score"], threshold=threshold, threshold_name="slider", boxes=boxes,
            value_range=self.value_range, range_name=self.range_name,
            normalization="image" if per_image_range else "fixed", title="TDOS anomaly segmentation",
        )  # fmt: skip
        labels = np.asarray(output["semantic"])
        names = output["labels"]
        ood_id = max(names)
        sections = [
            (labels == class_id, f"{names[class_id]} (arg-max class)" if class_id == ood_id else names[class_id])
            for class_id in np.unique(labels).tolist()
        ]
        sections.append((np.asarray(output["anomaly_mask"]) == 255, anomaly_label(threshold)))
        rows = [
            [rank, c.area, round(c.max_score, 4), round(c.mean_score, 4), str(list(c.bbox)),
             ", ".join(f"{word} ({cosine:.2f})" for word, cosine in c.words)]
            for rank, c in enumerate(found[:10], 1)
        ]  # fmt: skip
        return panel, (image, sections), rows


def build_demo(demo: TDOSDemo, threshold: float = 0.5, per_image_range: bool = False):
    import gradio as gr

    with gr.Blocks(title="TDOS: text-driven OOD segmentation") as page:
        gr.Markdown(
            "## TDOS: anomaly segmentation of road scenes\n"
            "Upload a road image. Heat map: the anomaly score; the mask: pixels at or above the threshold. "
            "OOD detection is not a safety certificate."
        )
        with gr.Row():
            image = gr.Image(type="pil", label="road image", elem_id="input-image")
            with gr.Column():
                threshold = gr.Slider(
                    0.0, 1.0, value=threshold, step=0.001, label="anomaly threshold", elem_id="threshold"
                )
                per_image = gr.Checkbox(
                    value=per_image_range, label="heat map over this image's min..max (else the fixed score range)"
                )
                run = gr.Button("Segment", variant="primary", elem_id="run")
        panel = gr.Image(type="pil", label="overlay panel", elem_id="panel", format="png")
        semantic = gr.AnnotatedImage(label="semantic map and anomaly mask", elem_id="semantic", height=420)
        table = gr.Dataframe(headers=COMPONENT_COLUMNS, label="top anomaly components", elem_id="components")
        inputs, outputs = [image, threshold, per_image], [panel, semantic, table]
        run.click(demo, inputs, outputs)
        threshold.release(demo, inputs, outputs)
    return page


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a saved TDOS model folder or Hub id")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--threshold", type=float, help="initial threshold (default: best-F1 of eval_results.json)")
    parser.add_argument("--per-image-range", action="store_true", help="start with the per-image heat-map range")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    threshold = args.threshold if args.threshold is not None else default_threshold(args.model)
    page = build_demo(TDOSDemo(args.model, args.device), threshold, args.per_image_range)
    page.launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
