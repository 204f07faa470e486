"""``apt-video models``: the registered architectures and their parameter counts."""
from __future__ import annotations

import argparse

from apt_video import models

from .argtypes import nonneg_int, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-classes", type=positive_int, default=400, help="head size for the counts (default 400)")
    p.add_argument("--prompt-num-tokens", type=nonneg_int, default=200, help="prompt tokens per layer (default 200)")


def run(args: argparse.Namespace) -> int:
    import torch  # the networks are built to be counted

    print(f"{'model':<26}{'frames':>7}{'size':>6}{'total params':>15}{'prompt-tuned':>14}{'linear':>10}"
          f"{'GFLOP/clip':>12}")
    for name in models.list_models():
        with torch.device("meta"):
            m = models.create_model(name, num_classes=args.num_classes,
                                    prompt_num_tokens=args.prompt_num_tokens)
        trainable, total = models.count_parameters(m)
        m.set_transfer_type("linear")
        linear, _ = models.count_parameters(m)
        print(f"{name:<26}{m.num_frames:>7}{m.img_size:>6}{total:>15,}{trainable:>14,}{linear:>10,}"
              f"{models.flops_per_clip(m) / 1e9:>12.1f}")
    return 0
