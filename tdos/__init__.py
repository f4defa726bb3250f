"""TDOS-HF: text-driven out-of-distribution segmentation for road scenes on Hugging Face transformers."""

from transformers import AutoConfig, AutoModel, AutoModelForSemanticSegmentation

from .configuration_tdos import CITYSCAPES_CLASSES, OOD_CLASS, TDOSConfig
from .modeling_tdos import TDOSForOODSegmentation, TDOSOutput, TDOSPreTrainedModel


__version__ = "0.1.0.dev0"

AutoConfig.register(TDOSConfig.model_type, TDOSConfig, exist_ok=True)
AutoModel.register(TDOSConfig, TDOSForOODSegmentation, exist_ok=True)
AutoModelForSemanticSegmentation.register(TDOSConfig, TDOSForOODSegmentation, exist_ok=True)
# Saved folders carry `auto_map` and the code, so they load with trust_remote_code=True without this package.
TDOSConfig.register_for_auto_class()
TDOSForOODSegmentation.register_for_auto_class("AutoModel")

__all__ = [
    "CITYSCAPES_CLASSES",
    "OOD_CLASS",
    "TDOSConfig",
    "TDOSForOODSegmentation",
    "TDOSOutput",
    "TDOSPreTrainedModel",
]
