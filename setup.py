"""apt-video: Attention Prompt Tuning of VideoMAE on NVIDIA DALI, ONNX and TensorRT."""
from setuptools import setup

DALI_CU12, DALI_CU13 = "nvidia-dali-cuda120>=1.40", "nvidia-dali-cuda130>=1.52"

setup(
    name="apt-video",
    version="0.1.0",
    description="Attention Prompt Tuning (APT) of VideoMAE: DALI training, ONNX/TensorRT export, batch scoring",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # layers, lowest first: models (tensors), pipeline (videos) and export (graphs), then the
    # application (apt_video: the library functions and the CLI above them)
    packages=["models", "pipeline", "export", "apt_video", "apt_video.commands", "apt_video.presets"],
    package_dir={"apt_video.presets": "configs"},  # the YAML presets travel inside the package
    package_data={"apt_video.presets": ["*.yaml"]},
    install_requires=[
        "torch>=2.4",
        "torchvision",  # timm imports it; must be the build that matches torch
        "timm>=1.0",
        "numpy",
        "onnx>=1.16",
        "onnxscript",  # torch.onnx.export(dynamo=True) needs it
        "av>=12",
        "safetensors",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "tensorboard",
    ],
    # DALI and ONNX Runtime come in one flavour per CUDA major, and two flavours of either package
    # install the same module: choose exactly one of cpu, cu12, cu13 (README, "Installing").
    extras_require={
        "cpu": [DALI_CU12, "onnxruntime>=1.23"],  # no GPU: DALI's CPU operators need no CUDA
        "cu12": [DALI_CU12, "onnxruntime-gpu>=1.23,<1.27"],  # ORT's PyPI builds for CUDA 12
        "cu13": [DALI_CU13, "onnxruntime-gpu>=1.27"],  # ORT's PyPI builds for CUDA 13
        "cu12-trt": [DALI_CU12, "onnxruntime-gpu>=1.23,<1.27", "tensorrt-cu12>=10.14"],
        "cu13-trt": [DALI_CU13, "onnxruntime-gpu>=1.27", "tensorrt-cu13>=10.14"],  # 10.14: the Attention op
        "ray": ["ray[data]>=2.50"],  # score --engine ray (Ray Data); any flavour
        "dev": ["pytest", "ruff", "decord", "transformers"],
    },
    entry_points={"console_scripts": ["apt-video=apt_video.cli:main"]},
)
