"""The released training recipe (METHOD §4.4-§4.6): defaults of the training script, the learning-rate schedule and the
named per-benchmark recipes."""

import sys
from pathlib import Path

import pytest
import torch
from transformers import HfArgumentParser

from tdos.training import TDOSTrainer


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import run_ood_segmentation  # noqa: E402


pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the Trainer may create its output folder


def parse(*argv):
    parser = HfArgumentParser(
        (run_ood_segmentation.ModelArguments, run_ood_segmentation.DataArguments, run_ood_segmentation.TDOSTrainingArguments)
    )
    return parser.parse_args_into_dataclasses(args=["--output_dir", "out", *argv])


def mmcv_poly_with_linear_warmup(step, base_lr=1e-4, total=20000, warmup=1500, min_lr=1e-6, power=0.9, ratio=1e-6):
    """mmcv `PolyLrUpdaterHook(power=0.9, min_lr=1e-6, warmup='linear', warmup_iters=1500, warmup_ratio=1e-6)`."""
    regular = (base_lr - min_lr) * (1 - step / total) ** power + min_lr
    if step >= warmup:
        return regular
    return regular * (1 - (1 - step / warmup) * (1 - ratio))


def test_script_defaults_are_the_release_optimisation_recipe():
    _, _, training_args = parse()
    assert training_args.max_grad_norm == 0  # the release has no gradient clipping (transformers' default is 1.0)
    assert training_args.lr_schedule == "release_poly"
    assert training_args.ddp_find_unused_parameters is True
    assert (training_args.learning_rate, training_args.weight_decay, training_args.max_steps) == (1e-4, 1e-5, 20000)
    assert training_args.warmup_steps == 1500


@pytest.mark.parametrize("step", [0, 1, 750, 1499, 1500, 1501, 10000, 15000, 19999])
def test_learning_rate_follows_the_released_schedule(tiny_model, step):
    _, _, training_args = parse("--use_cpu", "--report_to", "none")
    trainer = TDOSTrainer(model=tiny_model, args=training_args)
    trainer.create_optimizer()
    scheduler = trainer.create_scheduler(num_training_steps=training_args.max_steps)
    for _ in range(step):
        scheduler.step()
    for lr in scheduler.get_last_lr():
        assert lr == pytest.approx(mmcv_poly_with_linear_warmup(step), rel=1e-9, abs=1e-15)


def test_hf_schedule_stays_available():
    model = torch.nn.Linear(2, 2)
    _, _, training_args = parse("--use_cpu", "--report_to", "none", "--lr_schedule", "hf")
    trainer = TDOSTrainer(model=model, args=training_args)
    trainer.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scheduler = trainer.create_scheduler(num_training_steps=20000)
    for _ in range(10000):
        scheduler.step()
    # transformers' polynomial decay restarts at the end of the warm-up: ~7 % above the release's at step 10,000
    assert scheduler.get_last_lr()[0] / mmcv_poly_with_linear_warmup(10000) == pytest.approx(1.066, abs=0.01)


def test_release_schedule_min_lr_is_absolute_for_every_group():
    from tdos.optimization import get_release_poly_schedule

    parameters = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.AdamW([{"params": parameters[:1], "lr": 1e-4}, {"params": parameters[1:], "lr": 1e-5}])
    scheduler = get_release_poly_schedule(optimizer, num_warmup_steps=1500, num_training_steps=20000)
    for _ in range(19999):
        scheduler.step()
    expected = [mmcv_poly_with_linear_warmup(19999, base_lr=lr) for lr in (1e-4, 1e-5)]
    assert scheduler.get_last_lr() == pytest.approx(expected, rel=1e-9)
