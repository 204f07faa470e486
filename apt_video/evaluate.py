"""The VideoMAE test-time merge and the accuracy report shared by training and scoring."""
from __future__ import annotations

import numpy as np
import torch


def merge_views(logits: torch.Tensor) -> torch.Tensor:
    """``(N, V, C)`` logits of each view -> ``(N, C)``: softmax per view, mean over the views."""
    return torch.softmax(logits.float(), dim=-1).mean(dim=1)


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[int]:
    """How many rows have their label among the top k scores, for each k (k capped at C)."""
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hit = top == labels[:, None]
    return [int(hit[:, :min(k, scores.shape[1])].any(dim=1).sum()) for k in ks]


def accuracy_report(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """Top-1 / top-5 (percent, mean over videos), per-class top-1 and the confusion matrix
    (rows: true class, columns: predicted) of merged per-video probabilities ``(N, C)``."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    n, c = probs.shape
    order = np.argsort(-probs, axis=1)
    pred = order[:, 0]
    top5 = (order[:, :min(5, c)] == labels[:, None]).any(axis=1)
    confusion = np.zeros((c, c), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {}
    for k in range(c):
        total = int(confusion[k].sum())
        name = classes[k] if k < len(classes) else str(k)
        per_class[name] = {"videos": total, "top1": 100.0 * confusion[k, k] / total if total else None}
    return {"videos": int(n), "top1": 100.0 * float((pred == labels).mean()) if n else 0.0,
            "top5": 100.0 * float(top5.mean()) if n else 0.0, "per_class": per_class,
            "confusion_matrix": confusion.tolist(), "classes": list(classes)}
