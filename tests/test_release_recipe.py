"""The released training recipe (docs/method.md §5, §9): defaults of the training script, the learning-rate schedule and the
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


# docs/method.md §9: recipe -> (preset, ood_class_weight, images per GPU, backbone lr_mult, test scale)
RELEASE_TABLE = {
    "vit-b16-cityscapes": ("tdos-vit-b16", 10.0, 8, 0.0, (2048, 1024)),
    "vit-b16-fishyscapes-lf": ("tdos-vit-b16", 4.0, 4, 0.1, (2048, 1024)),
    "vit-b16-fishyscapes-static": ("tdos-vit-b16", 4.0, 4, 0.1, (2048, 1024)),
    "vit-b16-road-anomaly": ("tdos-vit-b16", 4.0, 4, 0.1, (512, 512)),
    "vit-b16-smiyc-anomaly": ("tdos-vit-b16", 10.0, 8, 0.0, (1280, 720)),
    "vit-b16-smiyc-obstacle": ("tdos-vit-b16", 4.0, 4, 0.1, (1920, 1080)),
    "rn50-cityscapes": ("tdos-rn50", 1.0, 8, 0.1, (2048, 1024)),
    "rn50-fishyscapes-lf": ("tdos-rn50", 4.0, 8, 0.1, (2048, 1024)),
    "rn50-fishyscapes-static": ("tdos-rn50", 4.0, 8, 0.1, (2048, 1024)),
    "rn50-road-anomaly": ("tdos-rn50", 4.0, 8, 0.001, (512, 512)),
    "rn50-smiyc-anomaly": ("tdos-rn50", 1.0, 8, 0.05, (1280, 720)),
    "rn50-smiyc-obstacle": ("tdos-rn50", 4.0, 8, 0.1, (1920, 1080)),
}


@pytest.mark.parametrize("name", sorted(RELEASE_TABLE))
def test_named_recipes_set_the_release_values(name):
    from tdos import TDOSConfig

    preset, weight, batch, lr_mult, scale = RELEASE_TABLE[name]
    model_args, data_args, training_args = parse(*run_ood_segmentation.apply_recipe(["--recipe", name]))
    assert model_args.preset == preset
    assert training_args.per_device_train_batch_size == batch
    assert tuple(data_args.eval_scale) == scale
    assert data_args.rare_class_sampling and data_args.train_dataset == "cityscapes_ood"
    overrides = run_ood_segmentation.parse_config_overrides(model_args.config_overrides)
    config = TDOSConfig.from_preset(model_args.preset, **overrides)
    assert (config.ood_class_weight, config.image_tower_lr_multiplier, config.prompt_mode) == (weight, lr_mult, "release")
    assert config.ood_augmentation == (preset == "tdos-rn50")  # the released ViT augmentation is a no-op
    assert training_args.max_grad_norm == 0 and training_args.lr_schedule == "release_poly"


def test_explicit_arguments_win_over_the_recipe():
    argv = ["--recipe", "rn50-road-anomaly", "--per_device_train_batch_size", "2", "--config_overrides", "ood_class_weight=7,prompt_mode=corrected"]
    model_args, _, training_args = parse(*run_ood_segmentation.apply_recipe(argv))
    assert training_args.per_device_train_batch_size == 2
    overrides = run_ood_segmentation.parse_config_overrides(model_args.config_overrides)
    assert overrides == {
        "ood_class_weight": 7.0, "image_tower_lr_multiplier": 0.001, "prompt_mode": "corrected", "ood_augmentation": True
    }  # fmt: skip
    assert model_args.recipe == "rn50-road-anomaly"


def test_unknown_recipe_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown recipe 'vit-l'.*vit-b16-cityscapes"):
        run_ood_segmentation.apply_recipe(["--recipe", "vit-l"])


def test_help_lists_every_recipe():
    import subprocess

    result = subprocess.run(
        [sys.executable, str(REPO / "run_ood_segmentation.py"), "--help"], capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO), "COLUMNS": "1000"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    for name in RELEASE_TABLE:
        assert name in result.stdout
