"""TDOS-HF: text-driven out-of-distribution segmentation for road scenes on Hugging Face transformers."""

__version__ = "0.1.0.dev0"
