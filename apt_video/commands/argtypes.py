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
