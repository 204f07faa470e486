"""Argument types with range checks: a bad number is refused by argparse, naming the option."""
from __future__ import annotations

import argparse


def _number(kind, low: float, inclusive: bool, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if value < low or (value == low and not inclusive) or value != value:
            raise argparse.ArgumentTypeError(f"{text!r}: must be {what}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1, True, "at least 1")
nonneg_int = _number(int, 0, True, "0 or more")
positive_float = _number(float, 0.0, False, "greater than 0")


def batch_profile(text: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch {text!r}: expected MIN:OPT:MAX, e.g. 1:30:60") from None
    if not 1 <= lo <= opt <= hi:
        raise argparse.ArgumentTypeError(f"--batch {text!r}: need 1 <= MIN <= OPT <= MAX")
    return lo, opt, hi


def opset(text: str) -> int:
    if not text.isdigit() or not 18 <= int(text) <= 23:
        raise argparse.ArgumentTypeError(f"{text!r}: choose 18 to 23 (PyTorch's exporter writes opset 18 or newer)")
    return int(text)
