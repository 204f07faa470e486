"""apt_video.evaluate: the test-time merge and the accuracy report, against VideoMAE's merge and
compute_video (tests/reference.py)."""
import numpy as np
import pytest
import torch

from apt_video.evaluate import accuracy_report, merge_views, topk_correct

from reference import ref_videomae_merge


@pytest.mark.parametrize("videos,views,classes", [(7, 6, 9), (5, 30, 3), (1, 1, 2), (12, 2, 400)])
def test_merge_and_top_k_are_videomaes(videos, views, classes):
    rng = np.random.default_rng(videos * views + classes)
    logits = rng.normal(0, 3, (videos, views, classes)).astype(np.float32)
    labels = rng.integers(0, classes, videos)
    lines = [(f"v{i}", logits[i, k], str(labels[i]), str(k // 3), str(k % 3)) for i in range(videos)
             for k in range(views)]
    lines += lines[:3]  # views written twice (the distributed sampler pads the last batch): counted once
    ref, top1, top5 = ref_videomae_merge(lines)
    ours = merge_views(torch.from_numpy(logits)).numpy()
    np.testing.assert_allclose(ours, np.stack([ref[f"v{i}"] for i in range(videos)]), rtol=1e-5, atol=1e-7)
    report = accuracy_report(ours, labels, [f"c{j}" for j in range(classes)])
    assert report["top1"] == pytest.approx(top1) and report["top5"] == pytest.approx(top5)
    assert topk_correct(torch.from_numpy(ours), torch.from_numpy(labels)) == [round(top1 * videos / 100),
                                                                             round(top5 * videos / 100)]


def test_the_report_counts_per_class_and_the_merged_loss():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
    report = accuracy_report(probs, np.array([0, 1, 1, 2]), ["a", "b", "c"])
    assert report["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert report["per_class"]["b"] == {"videos": 2, "top1": 50.0} and report["top1"] == 75.0
    assert report["loss"] == pytest.approx(-np.log([0.7, 0.6, 0.4, 0.6]).mean())
    assert accuracy_report(np.zeros((0, 3)), np.zeros(0, int), ["a", "b", "c"])["videos"] == 0
