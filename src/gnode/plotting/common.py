"""Shared figure helpers: a non-interactive backend, one style, atomic multi-format saving."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; no display is assumed

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from gnode.io import atomic_path  # noqa: E402

MODEL_ORDER = ["rnn", "gru", "mgru", "node", "gnode"]
MODEL_LABELS = {"rnn": "RNN", "gru": "GRU", "mgru": "mGRU", "node": "nODE", "gnode": "gnODE"}
PALETTE = dict(zip(MODEL_ORDER, sns.color_palette("colorblind", len(MODEL_ORDER))))


def style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def save(fig, path: str | Path, formats: Sequence[str] = ("png",), dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``path`` (its suffix is the first format) plus the other formats beside it."""
    path = Path(path)
    written = []
    for fmt in dict.fromkeys([path.suffix.lstrip(".") or formats[0], *formats]):
        target = path.with_suffix("." + fmt)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
        written.append(target)
    plt.close(fig)
    return written
