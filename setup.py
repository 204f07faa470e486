"""apt-video: Attention Prompt Tuning of VideoMAE on NVIDIA DALI, ONNX and TensorRT."""
from setuptools import setup

setup(
    name="apt-video",
    version="0.1.0",
    description="Attention Prompt Tuning (APT) of VideoMAE: DALI training, ONNX/TensorRT export, batch scoring",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=["models", "pipeline", "pipeline.commands", "pipeline.presets", "export", "bench"],
    package_dir={"pipeline.presets": "configs"},  # the YAML presets travel inside the package
    package_data={"pipeline.presets": ["*.yaml"]},
    install_requires=[
        "torch>=2.4",
        "torchvision",  # timm imports it; must be the build that matches torch
        "timm>=1.0",
        "numpy",
        "nvidia-dali-cuda120>=1.40",
        "onnx>=1.16",
        "onnxscript",  # torch.onnx.export(dynamo=True) needs it
        "onnxruntime-gpu>=1.18",  # also runs on CPU-only hosts (CPUExecutionProvider)
        "av>=12",
        "safetensors",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "tensorboard",
    ],
    extras_require={
        "trt": ["tensorrt>=10"],
        "dev": ["pytest", "ruff", "decord", "transformers"],
    },
    entry_points={"console_scripts": ["apt-video=pipeline.cli:main"]},
)
