"""Refresh the README's gallery: small PNG copies of the main figures of a finished run.

    .venv/bin/python scripts/refresh_gallery.py      # after `bash scripts/reproduce.sh`
    .venv/bin/python scripts/refresh_gallery.py --figures OTHER_RUN/results/figures

Reads the main figures (GALLERY below) from results/figures/, writes docs/gallery/*.png (at
most 640 px wide), which the README shows. These few small PNGs are the only generated images
kept in git, refreshed by this one command.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "results" / "figures"
GALLERY_DIR = ROOT / "docs" / "gallery"
WIDTH = 640
# the main figures of the study, relative to results/figures/ (missing ones are skipped)
GALLERY = [
    "flipflop/test_loss_all_tasks.png",
    "flipflop/3bit_variable_example.png",
    "flipflop/3bit_variable_learning_curves.png",
    "flipflop/2bit_ring_attractors.png",
    "flipflop/3bit_variable_attractors.png",
    "flipflop/3bit_variable_memory.png",
    "expressivity/heatmaps.png",
    "expressivity/iso.png",
    "realworld/walker2d.png",
    "trainability/learning_curves.png",
    "trainability/init.png",
]


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--figures", type=Path, default=FIGURES, help="the results/figures folder of a finished run")
    figures = ap.parse_args().figures
    pngs = [figures / g for g in GALLERY if (figures / g).exists()]
    if not pngs:
        print(f"no figures under {figures}: run the workflow first (bash scripts/reproduce.sh)", file=sys.stderr)
        return 1
    GALLERY_DIR.mkdir(parents=True, exist_ok=True)
    for old in GALLERY_DIR.glob("*.png"):
        old.unlink()
    for src in pngs:
        name = "_".join(src.relative_to(figures).parts)
        img = Image.open(src).convert("RGB")
        if img.width > WIDTH:
            img = img.resize((WIDTH, round(img.height * WIDTH / img.width)), Image.LANCZOS)
        img.save(GALLERY_DIR / name, optimize=True)
        print(f"{src} -> {(GALLERY_DIR / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
