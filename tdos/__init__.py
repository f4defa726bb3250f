"""TDOS-HF: text-driven out-of-distribution segmentation for road scenes on Hugging Face transformers."""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForSemanticSegmentation
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_tdos import CITYSCAPES_CLASSES, OOD_CLASS, TDOSConfig
from .image_processing_tdos import TDOSImageProcessor, TDOSImageProcessorPil
from .modeling_tdos import TDOSForOODSegmentation, TDOSOutput, TDOSPreTrainedModel
from .pipeline_tdos import OODSegmentationPipeline, save_for_inference


__version__ = "0.1.0.dev0"

AutoConfig.register(TDOSConfig.model_type, TDOSConfig, exist_ok=True)
AutoModel.register(TDOSConfig, TDOSForOODSegmentation, exist_ok=True)
AutoModelForSemanticSegmentation.register(TDOSConfig, TDOSForOODSegmentation, exist_ok=True)
# Saved folders carry `auto_map` and the code, so they load with trust_remote_code=True without this package.
TDOSConfig.register_for_auto_class()
TDOSForOODSegmentation.register_for_auto_class("AutoModel")
AutoImageProcessor.register(
    TDOSConfig, image_processor_classes={"torchvision": TDOSImageProcessor, "pil": TDOSImageProcessorPil}, exist_ok=True
)
TDOSImageProcessor.register_for_auto_class("AutoImageProcessor")
if "ood-segmentation" not in PIPELINE_REGISTRY.get_supported_tasks():
    PIPELINE_REGISTRY.register_pipeline("ood-segmentation", pipeline_class=OODSegmentationPipeline, pt_model=AutoModel)

__all__ = [
    "CITYSCAPES_CLASSES",
    "OOD_CLASS",
    "OODSegmentationPipeline",
    "TDOSConfig",
    "TDOSForOODSegmentation",
    "TDOSImageProcessor",
    "TDOSImageProcessorPil",
    "TDOSOutput",
    "TDOSPreTrainedModel",
    "save_for_inference",
]
