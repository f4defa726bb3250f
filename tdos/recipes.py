"""The released per-benchmark training recipes (docs/method.md §9, `configs/tdos/` of the release): one model per target
benchmark, all trained on POC's Cityscapes+COCO-objects set (`cityscapes_ood`) with the schedule of docs/method.md §5 and
rare-class sampling, differing in backbone, OOD class weight, images per GPU, backbone learning-rate multiplier and
test scale. `run_ood_segmentation.py --recipe NAME` applies one; explicit arguments still win.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """One release config. `images_per_gpu` is mmseg's `samples_per_gpu` (the number of GPUs was not recorded; the
    release README's example uses 4). `image_tower_lr_multiplier` is the config's backbone `lr_mult`: it has no effect
    while the image tower is frozen (as released), and is kept for `train_image_tower=true` ablations. The released
    code's prompt assembly (`prompt_mode="release"`) and, for ViT-B/16, its OOD augmentation (a no-op:
    `ood_augmentation=False` computes the same) are what the recipes reproduce."""

    preset: str
    benchmark: str
    ood_class_weight: float
    images_per_gpu: int
    image_tower_lr_multiplier: float
    test_scale: tuple[int, int]
    release_config: str
    prompt_mode: str = "release"
    ood_augmentation: bool = True

    def arguments(self) -> list[str]:
        """`run_ood_segmentation.py` arguments of this recipe (config overrides last, see [`apply_recipe`])."""
        return [
            "--preset", self.preset,
            "--train_dataset", "cityscapes_ood",
            "--per_device_train_batch_size", str(self.images_per_gpu),
            "--eval_scale", str(self.test_scale[0]), str(self.test_scale[1]),
            "--rare_class_sampling", "true",
        ]  # fmt: skip

    def config_overrides(self) -> str:
        return (
            f"ood_class_weight={self.ood_class_weight},image_tower_lr_multiplier={self.image_tower_lr_multiplier},"
            f"prompt_mode={self.prompt_mode},ood_augmentation={str(self.ood_augmentation).lower()}"
        )

    def summary(self) -> str:
        return (
            f"{self.benchmark}: {self.preset}, ood_class_weight {self.ood_class_weight:g}, {self.images_per_gpu} images/GPU, "
            f"backbone lr x{self.image_tower_lr_multiplier:g}, test scale {self.test_scale[0]}x{self.test_scale[1]}, "
            f"prompt_mode {self.prompt_mode}, OOD augmentation {'on' if self.ood_augmentation else 'off'}, rare-class "
            f"sampling ({self.release_config})"
        )


def _recipes() -> dict[str, Recipe]:
    rows = {
        # name suffix: (benchmark, release config suffix, test scale, ViT (w_ood, spg, lr_mult), RN50 (w_ood, spg, lr_mult))
        "cityscapes": ("cityscapes_ood", "c2c", (2048, 1024), (10.0, 8, 0.0), (1.0, 8, 0.1)),
        "fishyscapes-lf": ("fishyscapes_lf", "c2fishy_LnF", (2048, 1024), (4.0, 4, 0.1), (4.0, 8, 0.1)),
        "fishyscapes-static": ("fishyscapes_static", "c2fishy_Static", (2048, 1024), (4.0, 4, 0.1), (4.0, 8, 0.1)),
        "road-anomaly": ("road_anomaly", "c2road_anomaly", (512, 512), (4.0, 4, 0.1), (4.0, 8, 0.001)),
        "smiyc-anomaly": ("smiyc_anomaly", "c2segment_me_AT", (1280, 720), (10.0, 8, 0.0), (1.0, 8, 0.05)),
        "smiyc-obstacle": ("smiyc_obstacle", "c2segment_me_OT", (1920, 1080), (4.0, 4, 0.1), (4.0, 8, 0.1)),
    }
    recipes = {}
    for suffix, (benchmark, config, scale, vit, rn50) in rows.items():
        for prefix, preset, release_name, (weight, batch, lr_mult) in (
            ("vit-b16", "tdos-vit-b16", "vit-b", vit),
            ("rn50", "tdos-rn50", "resnet", rn50),
        ):
            recipes[f"{prefix}-{suffix}"] = Recipe(
                preset=preset,
                benchmark=benchmark,
                ood_class_weight=weight,
                images_per_gpu=batch,
                image_tower_lr_multiplier=lr_mult,
                test_scale=scale,
                release_config=f"text_driven_ood_seg_{release_name}_1e-5_20k-{config}-512.py",
                ood_augmentation=preset == "tdos-rn50",  # the released ViT augmentation is a no-op
            )
    return recipes


RECIPES = _recipes()


def apply_recipe(argv: list[str]) -> list[str]:
    """`argv` with the arguments of its `--recipe NAME` (if any) put first, so that every argument given explicitly
    wins; the recipe's config overrides are put before the explicit `--config_overrides` ones (later keys win)."""
    names = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--recipe"] + [
        arg.split("=", 1)[1] for arg in argv if arg.startswith("--recipe=")
    ]
    if not names:
        return argv
    name = names[-1]
    if name not in RECIPES:
        raise ValueError(f"--recipe: unknown recipe {name!r}; expected one of {sorted(RECIPES)}")
    recipe = RECIPES[name]
    overrides = recipe.config_overrides()
    rest = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--config_overrides" and index + 1 < len(argv):
            overrides = f"{overrides},{argv[index + 1]}"
            index += 2
            continue
        if arg.startswith("--config_overrides="):
            overrides = f"{overrides},{arg.split('=', 1)[1]}"
        else:
            rest.append(arg)
        index += 1
    return [*recipe.arguments(), "--config_overrides", overrides, *rest]


def recipes_help() -> str:
    return "; ".join(f"{name} ({recipe.summary()})" for name, recipe in RECIPES.items())


__all__ = ["RECIPES", "Recipe", "apply_recipe", "recipes_help"]
