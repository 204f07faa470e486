"""tools.plot: the panels chosen from the data, runs labelled by what differs."""

from PIL import Image

from apt_video.tools.plot import choose_panels, plot_runs, run_labels


def test_plot_chooses_panels_from_the_data_and_labels_runs_by_difference(tmp_path, prompt_run, backbone_run):
    fig = plot_runs([backbone_run[0], prompt_run[0]], tmp_path / "fig.png")
    # 4 classes: top-5 would be a flat 100%, so the training loss takes its place
    assert [a.get_ylabel() for a in fig.axes] == ["top-1 (%)", "training loss", "validation loss"]
    full = [{"epoch": 0, "val_top1": 1, "val_top5": 2, "val_loss": 3, "train_loss": 4, "lr": 5}]
    names = lambda classes, rows: [k for k, _ in choose_panels(classes, rows)]  # noqa: E731
    assert names([4, 101], [full, full]) == ["val_top1", "val_top5", "val_loss"]
    assert names([None], [full]) == ["val_top1", "val_top5", "val_loss"]  # class count unknown: keep top-5
    assert names([5], [full]) == ["val_top1", "train_loss", "val_loss"]
    assert names([5], [[{"epoch": 0, "val_top1": 1, "lr": 5}]]) == ["val_top1", "lr"]
    no_top5 = [{k: v for k, v in full[0].items() if k != "val_top5"}]
    assert names([101], [no_top5]) == ["val_top1", "val_loss", "train_loss"]  # a missing panel gives way
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["A", "B"]  # the two runs differ in many keys: labelled by folder
    assert Image.open(tmp_path / "fig.png").size[0] > 1000
    assert run_labels([{"a": 1, "b": 2}, {"a": 1, "b": 3}], ["x", "y"]) == ["b=2", "b=3"]
    assert run_labels([{"a": 1, "b": 2}, {"a": 2, "b": 3}], ["x", "y"]) == ["a=1, b=2", "a=2, b=3"]
