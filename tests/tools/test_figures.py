"""tools/figures: figures drawn off-screen and written atomically."""
import pytest

from apt_video.tools.figures import plt, save_figure


def test_a_figure_is_written_whole_or_not_at_all(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == []  # closed
    (tmp_path / "b.nosuchformat").write_text("the old file")
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="cannot write 'nosuchformat' files; use a suffix among .*png"):
        save_figure(fig, tmp_path / "b.nosuchformat")
    assert (tmp_path / "b.nosuchformat").read_text() == "the old file"
    fig, _ = plt.subplots()
    save_figure(fig, tmp_path / "c")  # no suffix: PNG, under the name given
    assert (tmp_path / "c").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.nosuchformat", "c"]  # no temporary left
