"""Refresh the README's gallery: small PNG copies of the main figures of a finished run.

    .venv/bin/python scripts/refresh_gallery.py      # after `bash scripts/reproduce.sh`

Reads results/figures/**, writes docs/gallery/*.png (at most 640 px wide), which the README
shows. The gallery is the only generated image kept in git, refreshed by this one command.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "results" / "figures"
GALLERY = ROOT / "docs" / "gallery"
WIDTH = 640


def main() -> int:
    pngs = sorted(FIGURES.rglob("*.png"))
    if not pngs:
        print(f"no figures under {FIGURES}: run the workflow first (bash scripts/reproduce.sh)", file=sys.stderr)
        return 1
    GALLERY.mkdir(parents=True, exist_ok=True)
    for old in GALLERY.glob("*.png"):
        old.unlink()
    for src in pngs:
        name = "_".join(src.relative_to(FIGURES).parts)
        img = Image.open(src).convert("RGB")
        if img.width > WIDTH:
            img = img.resize((WIDTH, round(img.height * WIDTH / img.width)), Image.LANCZOS)
        img.save(GALLERY / name, optimize=True)
        print(f"{src.relative_to(ROOT)} -> {(GALLERY / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
