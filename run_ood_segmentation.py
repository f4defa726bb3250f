#!/usr/bin/env python
"""
Train and evaluate TDOS (text-driven OOD segmentation) with the 🤗 Trainer, on one CPU, one GPU or many (Accelerate).

    python run_ood_segmentation.py --output_dir OUT --do_train --do_eval ...
    accelerate launch run_ood_segmentation.py --output_dir OUT --do_train --do_eval ...

The built-in demo (no downloads): `--preset tiny --random_clip_init --train_dataset synthetic
--eval_benchmarks synthetic`. See README.md for the demo command and the real ViT-B/16 recipe.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
import transformers
from transformers import AutoConfig, CLIPTokenizer, HfArgumentParser, TrainingArguments, set_seed

import datasets_scripts
from tdos import TDOSConfig, TDOSForOODSegmentation
from tdos.benchmark_evaluation import (
    RESIZE_ORDERS,
    TEST_SCALES,
    BenchmarkEvaluator,
    BenchmarkSpec,
    check_results_file,
    evaluate_benchmarks,
    format_results_table,
    parse_benchmark_spec,
)
from tdos.components import load_clip_tokenizer
from tdos.image_processing_tdos import TDOSImageProcessor
from tdos.model_folder import check_model_folder
from tdos.pipeline_tdos import save_for_inference
from tdos.rare_class_sampling import (
    RareClassSampler,
    RareClassTrainingStream,
    load_or_compute_class_statistics,
    statistics_cache_path,
)
from tdos.recipes import apply_recipe, recipes_help
from tdos.sync_batch_norm import SyncBatchNorm, convert_sync_batchnorm
from tdos.smiyc_export import TRACK_DATASETS, export_submission, submission_path
from tdos.training import TDOSTrainer, TrainingStream, TrainTransform, collate_segmentation_batch, last_complete_checkpoint
from tdos.training_progress import PLOT_FILE, plot_training_progress


logger = logging.getLogger(__name__)

LR_SCHEDULES = ("release_poly", "hf")


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A trained TDOS folder / Hub id (fine-tune or evaluate it), or a transformers CLIP folder / Hub id "
            "such as openai/clip-vit-base-patch16 (build TDOS around it). Not needed with --random_clip_init."
        },
    )
    recipe: str | None = field(
        default=None,
        metadata={
            "help": "A released per-benchmark recipe (docs/method.md §9): sets --preset, --per_device_train_batch_size, "
            "--eval_scale, --rare_class_sampling and config overrides (ood_class_weight, image_tower_lr_multiplier, "
            "prompt_mode, ood_augmentation); explicit arguments win. One of: " + recipes_help()
        },
    )
    preset: str = field(
        default="tdos-vit-b16",
        metadata={"help": "TDOSConfig preset for a new model: tdos-vit-b16, tdos-rn50, tiny or tiny-rn50."},
    )
    random_clip_init: bool = field(
        default=False,
        metadata={"help": "Build the preset around randomly initialised CLIP towers (the offline demo; no weights)."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "TDOSConfig overrides for a new model, e.g. 'train_image_tower=true,ood_class_weight=10'."},
    )
    ood_bands_file: str | None = field(
        default=None,
        metadata={"help": "OOD word bands (tdos-ood-words output) for the text anchors; default: the shipped list."},
    )


@dataclass
class DataArguments:
    train_dataset: str = field(
        default="cityscapes_ood",
        metadata={"help": f"Training benchmark name, one of {sorted(datasets_scripts.BENCHMARKS)} (trainId labels)."},
    )
    train_root: str | None = field(default=None, metadata={"help": "Root folder of the training dataset."})
    train_split: str = field(default="train")
    eval_benchmarks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Benchmarks to evaluate: NAME[:SPLIT][=ROOT] each, e.g. fishyscapes_lf=/data/fs_lf "
            "smiyc_anomaly:validation=/data/smiyc synthetic."
        },
    )
    crop_size: int | None = field(default=None, metadata={"help": "Training crop (default: the model's crop_size)."})
    min_scale: float = field(default=0.5, metadata={"help": "Smallest random rescale factor."})
    max_scale: float = field(default=2.0, metadata={"help": "Largest random rescale factor."})
    cat_max_ratio: float = field(default=0.75, metadata={"help": "Largest share of one class in a training crop."})
    shuffle_buffer: int = field(default=64, metadata={"help": "Examples in the streaming shuffle buffer (0: off)."})
    ood_objects_folder: str | None = field(
        default=None, metadata={"help": "Folder of OOD object cut-outs pasted into training scenes (label 19)."}
    )
    ood_objects_coco: str | None = field(
        default=None, metadata={"help": "COCO instances JSON whose non-Cityscapes objects are pasted (label 19)."}
    )
    ood_objects_coco_images: str | None = field(default=None, metadata={"help": "Image folder of --ood_objects_coco."})
    paste_probability: float = field(default=0.5, metadata={"help": "Probability of pasting objects into a scene."})
    rare_class_sampling: bool = field(
        default=False,
        metadata={
            "help": "Rare-class sampling as released (docs/method.md §6; on in every --recipe): each sample draws a class, an "
            "image with enough of it and a crop holding enough of it. Class statistics: one pass, cached in output_dir."
        },
    )
    rcs_temperature: float = field(default=100.0, metadata={"help": "RCS: T of softmax((1 - class frequency) / T)."})
    rcs_min_pixels: int = field(default=3000, metadata={"help": "RCS: pixels of the class an image needs to be drawn."})
    rcs_min_crop_ratio: float = field(
        default=0.5, metadata={"help": "RCS: crops are re-drawn (up to 10 times) until they hold > min_pixels * ratio pixels."}
    )
    synthetic_num_examples: int = field(default=2000, metadata={"help": "Synthetic benchmark: examples per split."})
    synthetic_height: int = field(default=256, metadata={"help": "Synthetic benchmark: image height."})
    synthetic_width: int = field(default=512, metadata={"help": "Synthetic benchmark: image width."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on at most this many images."})
    eval_scale: list[int] | None = field(
        default=None,
        metadata={
            "help": "Test scale LONG SHORT for every benchmark (default: per benchmark, docs/method.md §7) and for "
            "the image processor saved with the model (default: long side 2048, short side 1024)."
        },
    )
    inference_mode: str | None = field(default=None, metadata={"help": "slide or whole (default: the model's)."})
    eval_resize_order: str = field(
        default="semantic_map",
        metadata={
            "help": "semantic_map: resize the semantic map to the original image, then take the anomaly score (the "
            "release); anomaly_score: resize the score."
        },
    )
    eval_round_to_stride: bool = field(
        default=False,
        metadata={"help": "Round test sizes to the input stride (1080 -> 1088) instead of padding them (the release)."},
    )
    num_overlays: int = field(default=4, metadata={"help": "Overlay panels written per benchmark."})
    overlay_normalization: str = field(
        default="fixed",
        metadata={
            "help": "Heat-map colour scale of the overlay panels: fixed (one range for all frames of a benchmark, "
            "comparable across its panels: --overlay_range, by default the benchmark's 0.1%%..99.9%% score quantiles) "
            "or image (each frame's own min..max)."
        },
    )
    smiyc_export: str | None = field(
        default=None,
        metadata={
            "help": "With --do_predict: write SMIYC submission files (official layout, float16 HDF5 per frame) of the "
            "smiyc_anomaly / smiyc_obstacle entries of --eval_benchmarks under this folder (list the test and the "
            "validation split of a track, e.g. smiyc_anomaly:test=/data/smiyc smiyc_anomaly:validation=/data/smiyc)."
        },
    )
    smiyc_method: str = field(default="TDOS", metadata={"help": "Method name of the SMIYC submission files."})
    overlay_range: list[float] | None = field(
        default=None, metadata={"help": "LOW HIGH: the fixed heat-map colour range of the panels, e.g. 0 1."}
    )
    smiyc_protocol: str = field(
        default="smiyc",
        metadata={
            "help": "Protocol of the SMIYC tracks: smiyc (the official evaluation, comparable with the leaderboard) or "
            "exact (scikit-learn's pixel metrics). Other benchmarks always use exact.",
            "choices": ["smiyc", "exact"],
        },
    )
    overwrite_eval_results: bool = field(
        default=False,
        metadata={"help": "Replace the results (and plots) of benchmarks already in OUTPUT_DIR/eval_results.json."},
    )


@dataclass
class TDOSTrainingArguments(TrainingArguments):
    """`TrainingArguments` with TDOS's released recipe as defaults (docs/method.md §5): AdamW lr 1e-4, weight decay 1e-5,
    20k steps, mmcv's poly decay (power 0.9, to 1e-6) over all steps with a linear warm-up over the first 1,500 from
    1e-6 of the rate, no gradient clipping, and `find_unused_parameters=True` under DDP."""

    learning_rate: float = field(default=1e-4, metadata={"help": "Base AdamW learning rate (per-module multipliers apply)."})
    weight_decay: float = field(default=1e-5, metadata={"help": "AdamW weight decay (none on norms and embeddings)."})
    max_steps: int = field(default=20000, metadata={"help": "Training steps (the training data is an endless stream)."})
    max_grad_norm: float = field(
        default=0.0, metadata={"help": "Gradient clipping norm; 0 (the release) clips nothing (transformers' default: 1)."}
    )
    warmup_steps: float = field(default=1500, metadata={"help": "Linear warm-up steps."})
    lr_schedule: str = field(
        default="release_poly",
        metadata={
            "help": "release_poly: the release's schedule (poly decay over all steps, warm-up factor on top; "
            "docs/method.md §5); hf: transformers' --lr_scheduler_type (its polynomial decay restarts after the warm-up)."
        },
    )
    warmup_start_factor: float = field(
        default=1e-6, metadata={"help": "release_poly: learning-rate factor at step 0 of the warm-up (mmcv warmup_ratio)."}
    )
    lr_scheduler_type: str = field(default="polynomial", metadata={"help": "Schedule with --lr_schedule hf."})
    lr_scheduler_kwargs: dict | str | None = field(
        default_factory=lambda: {"lr_end": 1e-6, "power": 0.9}, metadata={"help": "Schedule arguments (JSON)."}
    )
    ddp_find_unused_parameters: bool | None = field(
        default=True, metadata={"help": "DDP find_unused_parameters (the release: True)."}
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep the collated columns as they are."})


def parse_config_overrides(text: str | None) -> dict:
    """'a=1,b=true,c=x' → {'a': 1, 'b': True, 'c': 'x'} (values typed by the TDOSConfig field defaults)."""
    overrides = {}
    defaults = TDOSConfig()
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not hasattr(defaults, key):
            raise ValueError(f"--config_overrides: {item!r} is not KEY=VALUE with KEY a TDOSConfig argument")
        default = getattr(defaults, key)
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"--config_overrides: {key} expects true/false, got {value!r}")
            overrides[key] = value.lower() in ("true", "1")
        elif isinstance(default, (int, float)):
            overrides[key] = type(default)(value)
        else:
            overrides[key] = value
    return overrides


def check_arguments(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments):
    """Every argument problem we can see before a long run starts."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ValueError("nothing to do: pass --do_train, --do_eval and/or --do_predict")
    if model_args.model_name_or_path is None and not model_args.random_clip_init:
        raise ValueError("pass --model_name_or_path (TDOS or CLIP weights) or --random_clip_init")
    if model_args.model_name_or_path and model_args.random_clip_init:
        raise ValueError("--random_clip_init builds a new model; it cannot be combined with --model_name_or_path")
    if model_args.model_name_or_path:
        check_model_folder(model_args.model_name_or_path, "--model_name_or_path")
    if training_args.fp16 and not torch.cuda.is_available():
        raise ValueError("--fp16 needs a CUDA device; use --bf16 (bfloat16 autocast) on CPU")
    if training_args.bf16 and training_args.use_cpu is False and torch.cuda.is_available():
        if not torch.cuda.is_bf16_supported():
            raise ValueError("--bf16: this GPU does not support bfloat16; use --fp16")
    if training_args.do_train:
        if training_args.max_steps <= 0:
            raise ValueError("--max_steps must be set (> 0): the training data is a stream without a length")
        check_benchmark(
            data_args.train_dataset, data_args.train_root, "--train_dataset", data_args.train_split, "semantic"
        )
    if training_args.do_eval and not data_args.eval_benchmarks:
        raise ValueError("--do_eval needs --eval_benchmarks")
    if training_args.do_predict:
        if data_args.smiyc_export is None:
            raise ValueError("--do_predict writes SMIYC submissions: pass --smiyc_export DIR")
        tracks = [spec for spec in map(parse_benchmark_spec, data_args.eval_benchmarks) if spec.name in TRACK_DATASETS]
        if not tracks:
            raise ValueError("--do_predict --smiyc_export needs smiyc_anomaly or smiyc_obstacle in --eval_benchmarks")
        submission_path(data_args.smiyc_export, data_args.smiyc_method, tracks[0].name, "frame")  # checks the name
    specs = [parse_benchmark_spec(text) for text in data_args.eval_benchmarks]
    for spec in specs:
        check_benchmark(spec.name, spec.root, "--eval_benchmarks", spec.split)
    if training_args.do_eval:
        check_results_file(training_args.output_dir, specs, data_args.overwrite_eval_results)
    for name in ("ood_objects_folder", "ood_objects_coco", "ood_objects_coco_images"):
        path = getattr(data_args, name)
        if path is not None and not os.path.exists(path):
            raise FileNotFoundError(f"--{name}: {path} does not exist")
    if (data_args.ood_objects_coco is None) != (data_args.ood_objects_coco_images is None):
        raise ValueError("--ood_objects_coco and --ood_objects_coco_images go together")
    if data_args.eval_scale is not None and len(data_args.eval_scale) != 2:
        raise ValueError(f"--eval_scale takes two numbers (LONG SHORT), got {data_args.eval_scale}")
    if training_args.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"--lr_schedule must be one of {LR_SCHEDULES}, got {training_args.lr_schedule!r}")
    if data_args.eval_resize_order not in RESIZE_ORDERS:
        raise ValueError(f"--eval_resize_order must be one of {RESIZE_ORDERS}, got {data_args.eval_resize_order!r}")
    if data_args.inference_mode not in (None, "slide", "whole"):
        raise ValueError(f"--inference_mode must be slide or whole, got {data_args.inference_mode!r}")
    if int(os.environ.get("WORLD_SIZE", "1")) != training_args.world_size:
        raise RuntimeError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but the Trainer runs with world size {training_args.world_size}; "
            "on CPU launch with ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N (README)"
        )


def check_benchmark(name: str, root: str | None, option: str, split: str | None, expected_kind: str | None = None):
    if name not in datasets_scripts.BENCHMARKS:
        raise ValueError(f"{option}: unknown benchmark {name!r}; expected one of {sorted(datasets_scripts.BENCHMARKS)}")
    kind = datasets_scripts.benchmark_kind(name, split)  # also checks the split
    if expected_kind is not None and kind != expected_kind:
        raise ValueError(f"{option}: {name!r} split {split!r} has OOD (0/1) labels; training needs trainId labels")
    if datasets_scripts.BENCHMARKS[name].needs_root:
        if root is None:
            raise ValueError(f"{option}: {name!r} needs a root folder")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{option}: root folder {root} of {name!r} does not exist")


def synthetic_options(name: str, data_args: DataArguments) -> dict:
    if name != "synthetic":
        return {}
    return {
        "num_examples": data_args.synthetic_num_examples,
        "height": data_args.synthetic_height,
        "width": data_args.synthetic_width,
    }


def build_model(model_args: ModelArguments, seed: int) -> tuple[TDOSForOODSegmentation, CLIPTokenizer | None]:
    """The model and its CLIP tokenizer (saved with the model: component names need it; None for a TDOS folder
    saved without one)."""
    overrides = parse_config_overrides(model_args.config_overrides)
    bands = None
    if model_args.ood_bands_file is not None:
        from tdos.ood_prompts import load_ood_bands

        bands = load_ood_bands(model_args.ood_bands_file)
    if model_args.random_clip_init:
        from tdos.random_clip import random_clip, random_clip_resnet

        config = TDOSConfig.from_preset(model_args.preset, **overrides)
        if config.backbone == "clip-rn50":
            clip, tokenizer = random_clip_resnet(
                config.clip_config, config.resnet_layers, config.resnet_width, image_size=config.crop_size, seed=seed
            )
        else:
            clip, tokenizer = random_clip(config.clip_config, seed=seed)
        return TDOSForOODSegmentation.from_clip(clip, tokenizer, ood_bands=bands, config=config), tokenizer
    path = model_args.model_name_or_path
    if AutoConfig.from_pretrained(path).model_type == TDOSConfig.model_type:
        try:
            tokenizer = load_clip_tokenizer(path)
        except ValueError as error:
            logger.warning(f"{error}: the saved model will have no tokenizer (no component names)")
            tokenizer = None
        return TDOSForOODSegmentation.from_pretrained(path, **overrides), tokenizer
    config = TDOSConfig.from_preset(model_args.preset, **overrides)
    tokenizer = CLIPTokenizer.from_pretrained(path)
    return TDOSForOODSegmentation.from_clip(path, tokenizer, ood_bands=bands, config=config), tokenizer


def build_object_paster(data_args: DataArguments, seed: int):
    from datasets_scripts.pasting import OODObjectPaster

    options = {"probability": data_args.paste_probability, "seed": seed}
    if data_args.ood_objects_folder is not None:
        return OODObjectPaster.from_folder(data_args.ood_objects_folder, **options)
    if data_args.ood_objects_coco is not None:
        return OODObjectPaster.from_coco(data_args.ood_objects_coco, data_args.ood_objects_coco_images, **options)
    return None


def open_training_source(data_args: DataArguments):
    """The training benchmark as a stream; its layout is checked and its first example read (fail fast)."""
    source = datasets_scripts.load_benchmark(
        data_args.train_dataset,
        data_args.train_root,
        split=data_args.train_split,
        streaming=True,
        **synthetic_options(data_args.train_dataset, data_args),
    )
    if next(iter(source), None) is None:
        raise ValueError(f"--train_dataset {data_args.train_dataset} (split {data_args.train_split}) has no examples")
    return source


def build_training_stream(
    source, paster, data_args: DataArguments, crop_size: int, training_args: TrainingArguments, num_classes: int
) -> TrainingStream | RareClassTrainingStream:
    transform = TrainTransform(
        crop_size=crop_size, scale_range=(data_args.min_scale, data_args.max_scale), cat_max_ratio=data_args.cat_max_ratio
    )
    seed = training_args.seed

    def paste(image, label, generator):
        # the paster is deterministic per integer index: draw it from the example's generator
        return paster(image, label, int(torch.randint(0, 2**31 - 1, (), generator=generator)))

    paste_objects = None if paster is None else paste
    if not data_args.rare_class_sampling:
        return TrainingStream(
            source, transform, seed=seed, shuffle_buffer=data_args.shuffle_buffer, paste_objects=paste_objects
        )
    options = synthetic_options(data_args.train_dataset, data_args)
    description = {
        "name": data_args.train_dataset,
        "root": None if data_args.train_root is None else str(Path(data_args.train_root).resolve()),
        "split": data_args.train_split,
        "options": options,
        "num_classes": num_classes,
    }
    cache = statistics_cache_path(training_args.output_dir, description)
    with training_args.main_process_first(desc="rare-class statistics"):
        statistics = load_or_compute_class_statistics(source, num_classes, cache, description)
    sampler = RareClassSampler(
        statistics,
        temperature=data_args.rcs_temperature,
        min_pixels=data_args.rcs_min_pixels,
        min_crop_ratio=data_args.rcs_min_crop_ratio,
    )
    logger.info(
        "rare-class sampling: class probabilities "
        + ", ".join(f"{c}: {p:.4f}" for c, p in zip(sampler.classes, sampler.probabilities.tolist()))
    )
    reader = datasets_scripts.ShardReader(data_args.train_dataset, data_args.train_root, data_args.train_split, **options)
    return RareClassTrainingStream(sampler, reader.example, transform, seed=seed, paste_objects=paste_objects)


def setup_logging(training_args: TrainingArguments):
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:  # the main process logs at INFO unless --log_level says otherwise
        transformers.utils.logging.set_verbosity_info()
    level = training_args.get_process_log_level()
    logger.setLevel(level)
    logging.getLogger("tdos").setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def train(trainer: TDOSTrainer, training_args: TrainingArguments, processor: TDOSImageProcessor, tokenizer=None):
    checkpoint = None
    if training_args.resume_from_checkpoint not in (None, "False", "false"):
        if training_args.resume_from_checkpoint in ("True", "true", "last"):
            checkpoint = last_complete_checkpoint(training_args.output_dir)
            if checkpoint is None:
                logger.warning(f"no complete checkpoint in {training_args.output_dir}: training from scratch")
        else:
            checkpoint = Path(training_args.resume_from_checkpoint)
            if not (checkpoint / "trainer_state.json").is_file():
                raise FileNotFoundError(f"--resume_from_checkpoint: {checkpoint} is not a complete Trainer checkpoint")
    try:
        result = trainer.train(resume_from_checkpoint=None if checkpoint is None else str(checkpoint))
    except FloatingPointError as error:
        last = last_complete_checkpoint(training_args.output_dir)
        raise SystemExit(
            f"training stopped at step {trainer.state.global_step}: {error}. Last good checkpoint: "
            f"{last if last is not None else 'none (raise --save_steps frequency)'}; lower the learning rate or "
            "check the data, then resume with --resume_from_checkpoint."
        ) from error
    if trainer.is_world_process_zero():
        # model + image processor + the ood-segmentation pipeline code: `pipeline(model=OUTPUT_DIR)` loads it
        model = trainer.accelerator.unwrap_model(trainer.model)
        save_for_inference(
            model, processor, training_args.output_dir, tokenizer=tokenizer, training=trainer.card_training,
            model_id=training_args.hub_model_id,
        )  # fmt: skip
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    if trainer.is_world_process_zero():
        write_training_progress(trainer.state.log_history, Path(training_args.output_dir) / PLOT_FILE)


def write_training_progress(log_history: list[dict], path: Path):
    """The loss-terms and learning-rate plot next to the model; a missing matplotlib or a run too short to log
    leaves a warning, not a failed training run."""
    try:
        plot_training_progress(log_history, path, title=path.parent.name)
    except (ImportError, ValueError) as error:
        logger.warning(f"no {path.name}: {error}")
    else:
        logger.info(f"training progress plot: {path}")


def card_recipe(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> dict:
    """The training recipe lines of the model card."""
    initialisation = "random CLIP towers (offline demo)" if model_args.random_clip_init else model_args.model_name_or_path
    objects = data_args.ood_objects_folder or data_args.ood_objects_coco
    return {
        "initialisation": initialisation,
        "train dataset": data_args.train_dataset,
        "pasted OOD objects": f"{objects} (probability {data_args.paste_probability})" if objects else "none",
        "steps": training_args.max_steps,
        "batch size per device": training_args.per_device_train_batch_size,
        "learning rate": f"{training_args.learning_rate:g} ({training_args.lr_scheduler_type}, "
        f"{training_args.warmup_steps:g} warm-up steps)",
        "seed": training_args.seed,
    }


def check_replicas_in_sync(trainer: TDOSTrainer):
    """After distributed training every process must hold the same weights and (SyncBatchNorm) batch-norm statistics;
    a per-tensor checksum is compared."""
    accelerator = trainer.accelerator
    if accelerator.num_processes == 1:
        return
    model = accelerator.unwrap_model(trainer.model)
    for what, tensors in (
        ("trainable weights", [p for p in model.parameters() if p.requires_grad]),
        ("batch-norm statistics", [b for m in model.modules() if isinstance(m, SyncBatchNorm) for b in m.buffers()]),
    ):
        if not tensors:
            continue
        sums = torch.stack([t.detach().double().sum() for t in tensors])
        gathered = accelerator.gather(sums[None].to(accelerator.device))  # (processes, tensors)
        if not torch.equal(gathered, gathered[:1].expand_as(gathered)):
            raise RuntimeError(f"{what} differ between the {accelerator.num_processes} processes")
        logger.info(f"{what} identical on all {accelerator.num_processes} processes")


def main(argv: list[str] | None = None):
    parser = HfArgumentParser((ModelArguments, DataArguments, TDOSTrainingArguments))
    from_command_line = argv is None
    if from_command_line and len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(json_file=os.path.abspath(sys.argv[1]))
    else:
        arguments = sys.argv[1:] if from_command_line else argv
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=apply_recipe(arguments))
    setup_logging(training_args)
    try:
        check_arguments(model_args, data_args, training_args)
    except (ValueError, OSError) as error:
        if not from_command_line:  # called from Python: the caller gets the exception
            raise
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    set_seed(training_args.seed)
    # open every dataset before building the model: layout problems surface in seconds, not after minutes
    specs: list[BenchmarkSpec] = [parse_benchmark_spec(text) for text in data_args.eval_benchmarks]
    train_source = open_training_source(data_args) if training_args.do_train else None
    paster = build_object_paster(data_args, training_args.seed) if training_args.do_train else None
    for spec in specs if training_args.do_eval or training_args.do_predict else []:
        options = synthetic_options(spec.name, data_args)
        datasets_scripts.load_benchmark(spec.name, spec.root, split=spec.split, streaming=True, **options)

    model, tokenizer = build_model(model_args, training_args.seed)
    if training_args.world_size > 1 and training_args.do_train:
        model, converted = convert_sync_batchnorm(model)  # as the release under distributed training (docs/method.md §5)
        logger.info(f"{converted} BatchNorm layers converted to SyncBatchNorm")
    processor_options = {"size_divisor": model.config.input_stride}
    if data_args.eval_scale is not None:  # saved with the model: its pipelines then resize to the evaluation scale
        processor_options["size"] = {"longest_edge": data_args.eval_scale[0], "shortest_edge": data_args.eval_scale[1]}
    processor = TDOSImageProcessor(**processor_options)
    logger.info(
        f"TDOS model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
        f"{sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.1f}M trainable; "
        f"world size {training_args.world_size}, device {training_args.device}"
    )

    train_dataset = None
    if training_args.do_train:
        crop_size = data_args.crop_size or model.config.crop_size
        train_dataset = build_training_stream(
            train_source, paster, data_args, crop_size, training_args, model.config.num_id_classes
        )
    trainer = TDOSTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=collate_segmentation_batch,
    )
    trainer.card_training = card_recipe(model_args, data_args, training_args)
    if training_args.do_train:
        train(trainer, training_args, processor, tokenizer)
        check_replicas_in_sync(trainer)

    if training_args.do_eval:
        results = evaluate_benchmarks(
            trainer.accelerator.unwrap_model(trainer.model),
            processor,
            specs,
            Path(training_args.output_dir),
            dataset_options={spec.name: synthetic_options(spec.name, data_args) for spec in specs},
            max_samples=data_args.max_eval_samples,
            scale=None if data_args.eval_scale is None else tuple(data_args.eval_scale),
            inference_mode=data_args.inference_mode,
            num_overlays=data_args.num_overlays,
            overlay_normalization=data_args.overlay_normalization,
            overlay_range=None if data_args.overlay_range is None else tuple(data_args.overlay_range),
            bf16=training_args.bf16,
            accelerator=trainer.accelerator,
            smiyc_protocol=data_args.smiyc_protocol,
            overwrite=data_args.overwrite_eval_results,
            resize_order=data_args.eval_resize_order,
            round_to_stride=data_args.eval_round_to_stride,
        )
        if trainer.is_world_process_zero():
            print(format_results_table(results), flush=True)
            if training_args.do_train:  # the model card of the saved model, now with the evaluation results
                trainer.create_model_card()

    if training_args.do_predict and trainer.is_world_process_zero():
        scale = None if data_args.eval_scale is None else tuple(data_args.eval_scale)
        evaluator = BenchmarkEvaluator(
            trainer.accelerator.unwrap_model(trainer.model), processor, Path(training_args.output_dir),
            data_args.inference_mode, training_args.bf16, resize_order=data_args.eval_resize_order,
            round_to_stride=data_args.eval_round_to_stride,
        )  # fmt: skip
        for spec in (spec for spec in specs if spec.name in TRACK_DATASETS):
            dataset = datasets_scripts.load_benchmark(spec.name, spec.root, split=spec.split, streaming=True)
            export_submission(
                evaluator, spec.name, dataset, data_args.smiyc_export, data_args.smiyc_method,
                scale=scale or TEST_SCALES[spec.name], max_samples=data_args.max_eval_samples,
            )  # fmt: skip

    if training_args.push_to_hub and trainer.is_world_process_zero():
        trainer.push_to_hub(finetuned_from=model_args.model_name_or_path, tasks="image-segmentation")
    trainer.accelerator.end_training()
    if training_args.world_size > 1:
        # two-process gloo runs can abort at interpreter exit after the work is done (docs/method.md §8)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
