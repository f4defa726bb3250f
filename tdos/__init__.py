"""TDOS-HF: text-driven out-of-distribution segmentation for road scenes on Hugging Face transformers.

The package is lazy: `import tdos` loads neither torch nor transformers, so torch-free parts (`tdos.evaluation`,
`tdos.ood_prompts`, `tdos.atomic_io`) import on their own. The public names below are imported on first use, and
the TDOS classes are registered with transformers' Auto classes and the "ood-segmentation" pipeline task either
then or, after a bare `import tdos`, as soon as transformers' Auto classes or pipelines are imported (see
`tdos.auto_registration`), so `import tdos` followed by `AutoModel.from_pretrained(folder)` or
`pipeline("ood-segmentation", ...)` works as before.
"""

import importlib

from .auto_registration import register_when_transformers_is_used


__version__ = "0.1.0.dev0"

_LAZY_NAMES = {
    "CITYSCAPES_CLASSES": "configuration_tdos",
    "OOD_CLASS": "configuration_tdos",
    "TDOSConfig": "configuration_tdos",
    "TDOSImageProcessor": "image_processing_tdos",
    "TDOSImageProcessorPil": "image_processing_tdos",
    "TDOSForOODSegmentation": "modeling_tdos",
    "TDOSForSemanticSegmentation": "modeling_tdos",
    "TDOSOutput": "modeling_tdos",
    "TDOSPreTrainedModel": "modeling_tdos",
    "OODSegmentationPipeline": "pipeline_tdos",
    "save_for_inference": "pipeline_tdos",
}

__all__ = sorted(_LAZY_NAMES)


def __getattr__(name: str):
    if name not in _LAZY_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .auto_registration import register

    register()
    value = getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))


register_when_transformers_is_used()
