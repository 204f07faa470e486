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
    """Top-1 / top-5 (percent, mean over videos), per-class top-1, the confusion matrix (rows:
    true class, columns: predicted) and ``loss`` (the true class's negative log-likelihood, mean
    over videos) of merged per-video probabilities ``(N, C)``."""
    probs = np.asarray(probs)
    report = accuracy_from_ranks(np.argsort(-probs, axis=1)[:, :5], labels, classes)
    labels = np.asarray(labels, dtype=np.int64)
    true = probs[np.arange(len(labels)), labels] if len(labels) else np.zeros(0)
    # the loss of the merged prediction: negative log-likelihood of the true class (floored at 1e-12)
    report["loss"] = float(-np.log(np.maximum(true, 1e-12)).mean()) if len(labels) else None
    return report


def accuracy_from_ranks(ranks: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """The accuracy report from each video's classes in rank order ``(N, K)`` (best first, K >= 1;
    top-5 counts the first min(K, 5)) and its true ``labels (N,)``."""
    labels = np.asarray(labels, dtype=np.int64)
    ranks = np.asarray(ranks, dtype=np.int64).reshape(len(labels), -1) if len(labels) else np.zeros((0, 1), np.int64)
    n, c = len(labels), len(classes)
    pred = ranks[:, 0] if n else np.zeros(0, np.int64)
    top5 = (ranks[:, :5] == labels[:, None]).any(axis=1) if n else np.zeros(0, bool)
    confusion = np.zeros((c, c), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {}
    for k, name in enumerate(classes):
        total = int(confusion[k].sum())
        per_class[name] = {"videos": total, "top1": 100.0 * confusion[k, k] / total if total else None}
    return {"videos": int(n), "top1": 100.0 * float((pred == labels).mean()) if n else 0.0,
            "top5": 100.0 * float(top5.mean()) if n else 0.0, "per_class": per_class,
            "confusion_matrix": confusion.tolist(), "classes": list(classes)}
