"""SegmentMeIfYouCan submissions: anomaly maps in the layout and format the official benchmark code
(`road_anomaly_benchmark`, `Evaluation.save_output` / `channels["anomaly_p"]`) reads.

One HDF5 file per frame, `DIR/anomaly_p/<method>/<dataset>/<fid>.hdf5`, holding the anomaly score of every pixel at
the image's resolution as float16 in the dataset `value` (gzip level 9, as the official writer compresses); `<fid>`
is the image's file stem and `<dataset>` the name the official code stores the track under (`AnomalyTrack-all`,
`ObstacleTrack-all`: every split of a track is read from that folder). Higher is more anomalous. Point the
benchmark's `DIR_OUTPUTS` at `DIR` to compute its metrics, or pack `DIR/anomaly_p` for the SMIYC submission.
"""

from __future__ import annotations

import io
import logging
import re
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .atomic_io import write_atomically


logger = logging.getLogger(__name__)

TRACK_DATASETS = {"smiyc_anomaly": "AnomalyTrack-all", "smiyc_obstacle": "ObstacleTrack-all"}
VALUE_NAME = "value"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._+-]+$")


def _h5py():
    try:
        import h5py
    except ImportError as error:
        raise ImportError("SMIYC submissions need h5py: pip install 'tdos[smiyc]' (or h5py)") from error
    return h5py


def submission_path(output_dir, method_name: str, benchmark: str, frame_id: str) -> Path:
    """`output_dir/anomaly_p/<method>/<AnomalyTrack-all|ObstacleTrack-all>/<fid>.hdf5`."""
    if benchmark not in TRACK_DATASETS:
        raise ValueError(f"{benchmark!r} is not a SMIYC track; expected one of {sorted(TRACK_DATASETS)}")
    for what, name in (("method name", method_name), ("frame id", frame_id)):
        if not _SAFE_NAME.match(name):
            raise ValueError(f"{what} {name!r}: use letters, digits and . _ + - only (it becomes a path part)")
    return Path(output_dir) / "anomaly_p" / method_name / TRACK_DATASETS[benchmark] / f"{frame_id}.hdf5"


def write_anomaly_map(path, score: np.ndarray) -> Path:
    """Writes a `(H, W)` score map as float16 into `path` (dataset `value`, gzip 9), atomically."""
    h5py = _h5py()
    score = np.asarray(score)
    if score.ndim != 2 or not np.isfinite(score).all():
        raise ValueError(f"{path}: the anomaly map must be a finite (H, W) array, got shape {score.shape}")
    values = score.astype(np.float16)

    buffer = io.BytesIO()  # h5py needs a readable file; the bytes then go to disk atomically
    with h5py.File(buffer, "w") as file:
        file.create_dataset(VALUE_NAME, data=values, compression="gzip", compression_opts=9)
    data = buffer.getvalue()
    return write_atomically(path, lambda handle: handle.write(data))


def read_anomaly_map(path) -> np.ndarray:
    """The float16 `(H, W)` map of a submission file (what the official reader returns)."""
    h5py = _h5py()
    with h5py.File(path, "r") as file:
        if VALUE_NAME not in file:
            raise ValueError(f"{path}: no dataset {VALUE_NAME!r} (found {list(file.keys())})")
        return file[VALUE_NAME][:]


def export_submission(evaluator, benchmark: str, dataset, output_dir, method_name: str, scale=None, max_samples=None):
    """Predicts every frame of `dataset` (a SMIYC track, any split) with `evaluator` (`BenchmarkEvaluator`) at
    `scale` and writes its submission file. Returns the paths written."""
    paths = []
    for example in tqdm(islice(dataset, max_samples), desc=f"SMIYC {benchmark}", unit="img"):
        image = example["image"].convert("RGB")
        anomaly, _ = evaluator.predict(image, (image.height, image.width), scale)
        paths.append(write_anomaly_map(submission_path(output_dir, method_name, benchmark, example["id"]), anomaly))
    if not paths:
        raise ValueError(f"{benchmark}: no frames to export")
    logger.info("wrote %d %s anomaly maps under %s", len(paths), benchmark, paths[0].parent)
    return paths
