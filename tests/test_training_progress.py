"""The training-progress plot (`tdos.training_progress`) and its command line."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from tdos.training_progress import loss_series, plot_training_progress, read_log_history


HISTORY = [
    {"loss": 40.0, "grad_norm": 9.0, "learning_rate": 1e-3, "loss_cls": 5.0, "loss_mask": 2.0, "num_tokens": 8,
     "step": 50},
    {"loss": 20.0, "grad_norm": 30.0, "learning_rate": 5e-4, "loss_cls": 1.0, "loss_mask": 0.0, "epoch": 0.2,
     "step": 100},
    {"train_loss": 30.0, "train_runtime": 10.0, "epoch": 0.2, "step": 100},
]


def test_series_hold_every_loss_term_and_the_learning_rate_but_not_the_summary():
    series = loss_series(HISTORY)
    assert set(series) == {"loss", "loss_cls", "loss_mask", "learning_rate"}
    assert series["loss"] == ([50, 100], [40.0, 20.0]) and series["learning_rate"] == ([50, 100], [1e-3, 5e-4])


def test_plot_is_written_and_the_command_line_draws_it_next_to_the_state(tmp_path):
    path = plot_training_progress(HISTORY, tmp_path / "progress.png", title="run")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > image.height
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": HISTORY}))
    result = subprocess.run([sys.executable, "-m", "tdos.training_progress", str(tmp_path)], capture_output=True,
                            text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "training_progress.png")


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"trainer_state.json does not exist"):
        read_log_history(tmp_path)
    (tmp_path / "trainer_state.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"Cannot read .*trainer_state.json"):
        read_log_history(tmp_path)
    (tmp_path / "trainer_state.json").write_text(json.dumps({"best_metric": None}))
    with pytest.raises(ValueError, match="has no log_history list"):
        read_log_history(tmp_path / "trainer_state.json")
    with pytest.raises(ValueError, match="no training loss line"):
        plot_training_progress(HISTORY[-1:], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
