"""The training-progress plot: every logged loss term and the learning rate against the step, from the `log_history`
of a `Trainer` state (`trainer_state.json`). `run_ood_segmentation.py` writes it next to the model as
`training_progress.png`; `python -m tdos.training_progress OUTPUT_DIR` draws it for any finished or interrupted run
(a checkpoint folder works too). Needs matplotlib (`pip install tdos[plots]`).
"""

import argparse
import json
import os
from pathlib import Path
from typing import Union

from .atomic_io import write_atomically


PLOT_FILE = "training_progress.png"
STATE_FILE = "trainer_state.json"


def read_log_history(path: Union[str, os.PathLike]) -> list[dict]:
    """The `log_history` of `path` (a `trainer_state.json`, or a folder holding one), with a clear error for a
    missing or malformed file."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected the trainer_state.json a Trainer run writes")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read {path}: {error}; expected a Trainer state (JSON)") from error
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise ValueError(f"{path} has no log_history list; expected the trainer_state.json a Trainer run writes")
    return history


def loss_series(log_history: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """`{name: (steps, values)}` of every logged loss term (`loss` and each `loss_*`) and of `learning_rate`, from the
    training log lines (those with a `loss`; the final summary line with `train_loss` is left out)."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for entry in log_history:
        if "loss" not in entry or "step" not in entry:
            continue
        for name, value in entry.items():
            plotted = name in ("loss", "learning_rate") or name.startswith("loss_")
            if plotted and isinstance(value, (int, float)):
                steps, values = series.setdefault(name, ([], []))
                steps.append(int(entry["step"]))
                values.append(float(value))
    return series


def plot_training_progress(log_history: list[dict], path: Union[str, os.PathLike], title: str = "") -> Path:
    """Writes the training-progress plot of `log_history` to `path` (PNG, atomically): the total loss and every
    loss term on a log scale (left), the learning rate (right), both against the optimiser step.

    Raises:
        ValueError: when `log_history` holds no training log line (a run shorter than `logging_steps`).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plot_training_progress needs matplotlib: pip install 'tdos[plots]'") from error
    series = loss_series(log_history)
    if "loss" not in series:
        raise ValueError("the log history has no training loss line: the run logged nothing (raise --max_steps or "
                         "lower --logging_steps)")  # fmt: skip
    figure = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(figure)
    loss_axes, lr_axes = figure.subplots(1, 2, width_ratios=(2, 1))
    for name, (steps, values) in series.items():
        if name == "learning_rate":
            continue
        positive = [(step, value) for step, value in zip(steps, values) if value > 0]
        if positive:
            loss_axes.plot(*zip(*positive), marker=".", linewidth=2.5 if name == "loss" else 1.2, label=name)
    loss_axes.set(xlabel="step", ylabel="loss (log scale)", yscale="log", title="loss terms")
    low, high = loss_axes.get_ylim()
    loss_axes.set_ylim(low, high * 10)  # head room for the legend above the curves
    loss_axes.grid(True, which="both", alpha=0.3)
    loss_axes.legend(fontsize=8, ncol=4, loc="upper right")
    if "learning_rate" in series:
        lr_axes.plot(*series["learning_rate"], marker=".")
    lr_axes.set(xlabel="step", ylabel="base learning rate", title="learning rate")
    lr_axes.grid(True, alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return write_atomically(Path(path), lambda handle: figure.savefig(handle, format="png", dpi=110))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="an output or checkpoint folder holding trainer_state.json, or the file itself")
    parser.add_argument("--output", help=f"PNG to write (default: {PLOT_FILE} next to the state file)")
    args = parser.parse_args(argv)
    state = Path(args.run)
    folder = state if state.is_dir() else state.parent
    output = args.output or folder / PLOT_FILE
    path = plot_training_progress(read_log_history(state), output, title=folder.resolve().name)
    print(path)


if __name__ == "__main__":
    main()
