"""Figures with matplotlib: drawn off-screen (the Agg backend: no display needed, as on a cluster
node) and written atomically, as every file apt-video writes."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from apt_video.models.files import atomic_path  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Write ``fig`` to ``path`` atomically (a reader sees the old file or the new one, never half
    of one), in the format its suffix names (png, pdf, svg, ...; PNG without a suffix);
    ``ValueError`` naming the formats for a suffix matplotlib cannot write. The figure is closed."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    try:
        if fmt not in fig.canvas.get_supported_filetypes():
            raise ValueError(f"{path}: matplotlib cannot write {fmt!r} files; use a suffix among "
                             f"{', '.join(sorted(fig.canvas.get_supported_filetypes()))}")
        with atomic_path(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt)
    finally:
        plt.close(fig)
