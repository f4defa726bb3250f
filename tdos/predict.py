"""`tdos-predict`: anomaly score maps, overlay panels and semantic colour maps for images or folders of images.

    tdos-predict IMAGES_OR_FOLDERS... --model DIR --output-dir OUT [--threshold T] [--device cpu] [--bf16]
                 [--inference-mode slide|whole] [--overlay-normalization fixed|image] [--overlay-range LOW HIGH]
                 [--components [--top-k K] [--vocabulary WORDS.txt] [--min-area PX] [--tokenizer DIR]]

Per image `NAME` (folders are searched recursively; the sub-folder structure is kept under OUT):
  * `NAME_anomaly.npy`   float32 anomaly scores at the image size (lossless; higher is more anomalous);
  * `NAME_overlay.png`   an overlay panel (`datasets_scripts.panels`): image | anomaly heat map with its colour bar |
                         with `--threshold`, the mask outlined on the image. The heat map spans a fixed range, the
                         same for every image (`--overlay-range`, by default the anomaly score's natural range: [0, 1]
                         for the OOD probability) or, with `--overlay-normalization image`, each image's own min..max;
  * `NAME_semantic.png`  class ids as a palette PNG (Cityscapes colours, orange for the OOD class);
  * `NAME_mask.png`      with `--threshold`: 255 where the score is at least the threshold;
  * `NAME_components.json` with `--components` (needs `--threshold`): the connected regions of the mask (area, mean
                         and max score, bounding box `[left, top, right, bottom)`) and the `--top-k` nearest words
                         of the vocabulary (`--vocabulary`, one word per line; default the OOD word bands) with their
                         cosine similarities in CLIP space (`tdos.components`); the panel labels each region.
Every file is written to a temporary name and renamed, so an output is never half-written. An unreadable or
truncated image is reported by name and skipped; the exit code is 1 when any image failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import AutoImageProcessor, AutoModel, pipeline

from datasets_scripts.panels import NORMALIZATIONS, overlay_panel, panel_title

from . import TDOSImageProcessor  # importing the package registers the model, processor and pipeline task
from .atomic_io import write_atomically
from .components import load_clip_tokenizer
from .image_processing_tdos import SIXTEEN_BIT_MODES, to_rgb_input
from .model_folder import check_model_folder
from .overlays import MAX_LABELLED_COMPONENTS as MAX_LABELLED
from .overlays import anomaly_value_range, component_label, save_panel


logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


def find_images(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """`(image path, output stem relative to the output folder)` for files and (recursively) folders, and the inputs
    that do not exist."""
    images, missing = [], []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            images.extend((p, p.relative_to(path).with_suffix("")) for p in found)
        elif path.is_file():
            images.append((path, Path(path.stem)))
        else:
            missing.append(name)
    return images, missing


def load_rgb_image(path: Path) -> Image.Image:
    """Opens and fully decodes an image (so truncated files fail here), as RGB; raises `OSError` naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return Image.fromarray(to_rgb_input(image)) if image.mode in SIXTEEN_BIT_MODES else image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise OSError(f"{path}: cannot read the image ({error})") from error


def save_outputs(output: dict, image: Image.Image, stem: Path, output_dir: Path, threshold: float | None, panel) -> None:
    """Writes the files of one image; `panel(image, score, title, components)` draws its overlay panel."""
    base = output_dir / stem
    directory, name = base.parent, base.name
    write_atomically(directory / f"{name}_anomaly.npy", lambda f: np.save(f, output["anomaly_score"]))
    components = output.get("components")
    drawn = panel(image, output["anomaly_score"], panel_title(str(stem)), components)
    save_panel(drawn, directory / f"{name}_overlay.png")
    if components is not None:
        report = {"threshold": threshold, "components": [component.to_dict() for component in components]}
        text = json.dumps(report, indent=2).encode()
        write_atomically(directory / f"{name}_components.json", lambda f: f.write(text))
    write_atomically(directory / f"{name}_semantic.png", lambda f: output["semantic"].save(f, format="PNG"))
    if threshold is not None:
        write_atomically(directory / f"{name}_mask.png", lambda f: output["anomaly_mask"].save(f, format="PNG"))


def read_vocabulary(path: Path) -> list[str]:
    """One word (or phrase) per line; blank lines and `#` comments skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"--vocabulary {path}: cannot read it ({error})") from error
    words = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not words:
        raise ValueError(f"--vocabulary {path}: no words in it (expected one word per line)")
    return words


def load_pipeline(model_dir: str, device: str, tokenizer: str | None = None):
    """The `ood-segmentation` pipeline of a model folder; `tokenizer`: a CLIP tokenizer folder for component names
    (default: the model folder's, loaded when components are first asked for)."""
    check_model_folder(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    try:
        processor = AutoImageProcessor.from_pretrained(model_dir)
    except OSError:
        stride = model.config.input_stride
        logger.warning("%s has no preprocessor_config.json; using TDOSImageProcessor defaults (stride %d)", model_dir, stride)
        processor = TDOSImageProcessor(size_divisor=stride)
    tokenizer = load_clip_tokenizer(tokenizer) if tokenizer is not None else None
    return pipeline(
        "ood-segmentation", model=model, image_processor=processor, tokenizer=tokenizer, device=torch.device(device)
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tdos-predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGES_OR_FOLDERS", help="image files and/or folders")
    parser.add_argument("--model", required=True, help="a saved TDOS model folder (with its image processor)")
    parser.add_argument("--output-dir", required=True, type=Path, help="where the outputs are written")
    parser.add_argument("--threshold", type=float, default=None, help="anomaly score threshold for NAME_mask.png")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    parser.add_argument("--bf16", action="store_true", help="run the model under bfloat16 autocast")
    parser.add_argument("--inference-mode", choices=("slide", "whole"), default=None, help="default: the model config's")
    parser.add_argument(
        "--overlay-normalization", choices=NORMALIZATIONS, default="fixed",
        help="heat-map colour scale of NAME_overlay.png: fixed (the anomaly score's range, default) or image (min..max "
        "of each image)",
    )  # fmt: skip
    parser.add_argument(
        "--overlay-range", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
        help="fixed heat-map colour range (default: the anomaly score's natural range, [0, 1] for the OOD probability)",
    )  # fmt: skip
    parser.add_argument("--components", action="store_true", help="write NAME_components.json (needs --threshold)")
    parser.add_argument("--top-k", type=int, default=3, help="nearest words per component (default 3)")
    parser.add_argument("--vocabulary", type=Path, help="word list, one per line (default: the OOD word bands)")
    parser.add_argument("--min-area", type=int, default=1, help="smallest component in pixels (default 1)")
    parser.add_argument("--tokenizer", help="CLIP tokenizer folder (default: the model folder's)")
    args = parser.parse_args(argv)
    try:
        check_model_folder(args.model, "--model")
    except FileNotFoundError as error:
        parser.error(str(error))
    if args.output_dir.exists() and not args.output_dir.is_dir():
        parser.error(f"--output-dir {str(args.output_dir)!r} is a file; expected a folder (created when missing)")
    if args.components and args.threshold is None:
        parser.error("--components needs --threshold: components are the regions at or above it")
    if args.top_k < 1 or args.min_area < 1:
        parser.error(f"--top-k and --min-area must be >= 1, got {args.top_k} and {args.min_area}")
    if args.overlay_range is not None and not args.overlay_range[1] > args.overlay_range[0]:
        parser.error(f"--overlay-range: expected LOW < HIGH, got {args.overlay_range}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the exit code (0: all images done, 1: some failed or no image found)."""
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    images, missing = find_images(args.inputs)
    failed = list(missing)
    for name in missing:
        logger.error("%s: no such file or folder", name)
    if not images:
        logger.error("no images found in %s", args.inputs)
        return 1
    vocabulary = None
    if args.components and args.vocabulary is not None:
        try:
            vocabulary = read_vocabulary(args.vocabulary)
        except ValueError as error:
            logger.error("%s", error)
            return 2
    pipe = load_pipeline(args.model, args.device, args.tokenizer)
    component_kwargs = {"components": True, "top_k": args.top_k, "vocabulary": vocabulary, "min_area": args.min_area}
    device_type = torch.device(args.device).type
    autocast = torch.autocast(device_type, dtype=torch.bfloat16) if args.bf16 else nullcontext()
    config = pipe.model.config
    value_range, range_name = args.overlay_range, "--overlay-range"
    if value_range is None:
        value_range = anomaly_value_range(config.anomaly_score, config.num_id_classes)
        range_name = f"{config.anomaly_score} range"

    def panel(image, score, title, components):
        labels = None
        if components is not None:
            labels = [(c.bbox, component_label(rank, c)) for rank, c in enumerate(components[:MAX_LABELLED], 1)]
        return overlay_panel(
            image, score, threshold=args.threshold, threshold_name="--threshold", title=title,
            value_range=value_range, normalization=args.overlay_normalization, range_name=range_name, boxes=labels,
        )  # fmt: skip

    done = []
    for path, stem in tqdm(images, desc="tdos-predict", unit="image"):
        try:
            image = load_rgb_image(path)
        except OSError as error:
            logger.error("skipped %s", error)
            failed.append(str(path))
            continue
        with autocast:
            output = pipe(
                image, threshold=args.threshold, inference_mode=args.inference_mode,
                **(component_kwargs if args.components else {}),
            )  # fmt: skip
        if args.components:
            logger.info("%s: %d component(s) at >= %s", path, len(output["components"]), args.threshold)
        save_outputs(output, image, stem, args.output_dir, args.threshold, panel)
        done.append((path, output["anomaly_score"]))
    logger.info("wrote %d of %d images to %s", len(done), len(images) + len(missing), args.output_dir)
    for path, score in done:
        fraction = f", {np.mean(score >= args.threshold):.2%} above {args.threshold}" if args.threshold is not None else ""
        logger.info("  %s: anomaly score mean %.4f, max %.4f%s", path, score.mean(), score.max(), fraction)
    if failed:
        logger.error("%d failed: %s", len(failed), ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
