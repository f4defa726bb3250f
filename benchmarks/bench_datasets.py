"""Data throughput vs model inference: is reading/generating data ever the bottleneck?

Compares, in one run (single process, the machine's threads; shared machines are noisy, read the ratios):
  * streaming + decoding + remapping Cityscapes-layout 2048x1024 PNG fixtures through `load_benchmark`
    (images by path, labels remapped and passed as BMP bytes) vs the same work with `datasets`' default
    encoding of the arrays (PNG re-compression);
  * the synthetic generator at 512x1024: `generate_scene` alone and streamed through `load_benchmark`
    (encode + decode);
  * the model's per-image inference time: the `tiny` preset on the whole 512x1024 image and, unless
    `--skip-vit`, `tdos-vit-b16` (random weights) at 512x1024, one forward.
The last table gives images/s x seconds/image = how many images the data side delivers while the model
processes one (goal >= 4).

Usage (from the repository root): PYTHONPATH=. python benchmarks/bench_datasets.py [--files 8] [--synthetic 24] [--skip-vit]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from datasets_scripts import FEATURES, load_benchmark  # noqa: E402
from datasets_scripts.common import read_label  # noqa: E402
from datasets_scripts.synthetic import generate_scene  # noqa: E402
from tdos import TDOSConfig, TDOSForOODSegmentation  # noqa: E402


# Cityscapes labelIds for the synthetic trainIds (inverse of the remap), so the fixtures look like gtFine.
TRAIN_ID_TO_LABEL_ID = np.full(256, 0, dtype=np.uint8)
TRAIN_ID_TO_LABEL_ID[:19] = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]


def write_cityscapes_fixtures(root: Path, count: int) -> None:
    """`count` 2048x1024 frames in the Cityscapes layout (synthetic scenes, PNG as distributed)."""
    for index in range(count):
        image, label = generate_scene(index, "validation", 1024, 2048)
        folder_image = root / "leftImg8bit/val/frankfurt"
        folder_label = root / "gtFine/val/frankfurt"
        folder_image.mkdir(parents=True, exist_ok=True)
        folder_label.mkdir(parents=True, exist_ok=True)
        base = f"frankfurt_000000_{index:06d}"
        Image.fromarray(image).save(folder_image / f"{base}_leftImg8bit.png")
        Image.fromarray(TRAIN_ID_TO_LABEL_ID[label]).save(folder_label / f"{base}_gtFine_labelIds.png")


def images_per_second(dataset) -> float:
    start = time.perf_counter()
    count = 0
    for example in dataset:
        np.asarray(example["image"])
        np.asarray(example["label"])
        count += 1
    return count / (time.perf_counter() - start)


def default_encoding_dataset(root: Path):
    """The same frames and remapping, yielding arrays that `datasets` encodes itself (PNG)."""
    pairs = sorted((root / "leftImg8bit/val/frankfurt").glob("*.png"))

    def generate(files):
        for path in files:
            label_path = str(path).replace("leftImg8bit", "gtFine", 1).replace("_leftImg8bit.png", "_gtFine_labelIds.png")
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
            yield {"image": array, "label": read_label(label_path, "cityscapes_label_ids"), "id": path.stem, "dataset": "x"}

    return datasets.IterableDataset.from_generator(generate, features=FEATURES, gen_kwargs={"files": pairs})


def forward_seconds(preset: str, height: int, width: int, repeats: int) -> float:
    torch.manual_seed(0)
    model = TDOSForOODSegmentation(TDOSConfig.from_preset(preset)).eval()
    pixel_values = torch.randn(1, 3, height, width)
    times = []
    with torch.no_grad():
        model(pixel_values)  # warm-up (also caches the text branch, as inference does)
        for _ in range(repeats):
            start = time.perf_counter()
            model(pixel_values)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=8, help="2048x1024 fixtures to stream")
    parser.add_argument("--synthetic", type=int, default=24, help="synthetic scenes to generate")
    parser.add_argument("--skip-vit", action="store_true", help="do not time tdos-vit-b16")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; shared machine, timings are noisy\n")

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_cityscapes_fixtures(root, args.files)
        ours = images_per_second(load_benchmark("cityscapes", root))
        default = images_per_second(default_encoding_dataset(root))
    synthetic_raw = args.synthetic / sum(
        _timed(lambda index=index: generate_scene(index, "train", 512, 1024)) for index in range(args.synthetic)
    )
    synthetic_streamed = images_per_second(
        load_benchmark("synthetic", split="train", num_examples=args.synthetic, height=512, width=1024)
    )
    print("| data path | images/s | ratio |")
    print("| --- | --- | --- |")
    print(f"| cityscapes 2048x1024 PNG, load_benchmark (paths + BMP labels) | {ours:.2f} | {ours / default:.2f}x |")
    print(f"| cityscapes 2048x1024 PNG, datasets default array encoding (PNG) | {default:.2f} | 1.00x |")
    print(f"| synthetic 512x1024, generate_scene | {synthetic_raw:.1f} | {synthetic_raw / synthetic_streamed:.2f}x |")
    print(f"| synthetic 512x1024, load_benchmark stream (encode + decode) | {synthetic_streamed:.1f} | 1.00x |")

    models = {"tiny, whole 512x1024 image": forward_seconds("tiny", 512, 1024, repeats=3)}
    if not args.skip_vit:
        models["tdos-vit-b16 (random weights), 512x1024"] = forward_seconds("tdos-vit-b16", 512, 1024, repeats=1)
    print("\n| model forward | s/image | cityscapes-stream images per forward | synthetic-stream images per forward |")
    print("| --- | --- | --- | --- |")
    for name, seconds in models.items():
        print(f"| {name} | {seconds:.3f} | {ours * seconds:.1f}x | {synthetic_streamed * seconds:.1f}x |")


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
