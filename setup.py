from setuptools import find_packages, setup


extras = {
    "rn50": ["timm>=1.0"],
    "plots": ["matplotlib>=3.8"],
    "coco": ["pycocotools>=2.0"],
    "train": ["kornia>=0.7"],
    "triton": ["triton>=3.0"],  # deformable_attention_kernel="triton" on CUDA; the tests run it under its interpreter
    "onnx": ["onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.2"],
    "smiyc": ["h5py>=3.8"],
    "app": ["gradio>=5"],
    "browser": ["selenium>=4.20"],  # the web demo's browser test (with Debian's chromium + chromium-driver)
}
extras["test"] = sorted(
    {"pytest>=8", "scikit-learn>=1.4", "open_clip_torch>=2.24"}
    | {p for k in ("rn50", "plots", "coco", "train", "triton", "onnx", "smiyc") for p in extras[k]}
)
extras["dev"] = extras["test"] + ["ruff"]

setup(
    name="tdos",
    version="0.1.0.dev0",
    description="TDOS: text-driven out-of-distribution segmentation for road scenes, on Hugging Face transformers",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["tdos", "tdos.*", "datasets_scripts", "datasets_scripts.*"]),
    package_data={"tdos": ["data/*"]},
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "transformers>=5.0,<6",
        "accelerate>=1.0",
        "datasets>=5.0",
        "evaluate>=0.4",
        "huggingface_hub>=1.0",
        "safetensors>=0.4",
        "numpy>=1.26",
        "scipy>=1.11",
        "nltk>=3.9",
        "ftfy>=6.1",
        "pillow>=10",
        "tqdm>=4.66",
    ],
    extras_require=extras,
    entry_points={
        "console_scripts": [
            "tdos-convert-clip=tdos.convert_clip:main",
            "tdos-ood-words=tdos.ood_prompts:main",
            "tdos-datasets=datasets_scripts.cli:main",
            "tdos-predict=tdos.predict:main",
            "tdos-export-onnx=tdos.export_onnx:main",
        ]
    },
)
