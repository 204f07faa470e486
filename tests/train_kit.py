"""What the tests of training and its tools share."""
import csv
from pathlib import Path


def rows(run):
    with open(Path(run) / "metrics.csv") as f:
        return list(csv.DictReader(f))
