"""P7: the Euler scan's products for small batches: column layout (W^T h^T, the layout of
``gnode.scan``) against the row product (h W)^T, one training step side by side.

A batched matrix product whose right operand is thin (a few columns: the batch) runs far below
the BLAS rate on a CPU; with the batch on the left it runs near it. ``gnode.scan.ROW_MAX_B`` is
the largest batch that takes the row product. This script times one optimiser step (forward +
backward, 100 bins) of the paper profile's two dominant flip-flop shapes at several batch sizes
with the row product off (``ROW_MAX_B = 0``) and on (``ROW_MAX_B = batch``), interleaved.

    python benchmarks/p7_small_batch.py [--batches 1 10 20 32 50] [--repeat 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHAPES, interleaved, machine, step_fn  # noqa: E402

import gnode.scan as scan  # noqa: E402
from gnode.models import RecurrentEnsemble  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 10, 20, 32, 50])
    ap.add_argument("--shapes", nargs="+", choices=["3bit", "2bit"], default=["3bit", "2bit"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    default = scan.ROW_MAX_B
    print(f"P7 on {machine()}; gnode.scan.ROW_MAX_B = {default}")
    print(f"{'shape':6s} {'batch':>5s} {'column ms':>10s} {'row ms':>8s} {'column/row (min..max of pairs)':>32s}")
    for name in args.shapes:
        spec, members, bins = SHAPES[name].spec, SHAPES[name].members, SHAPES[name].bins
        model = RecurrentEnsemble(spec, list(range(members)))
        for b in args.batches:
            x = torch.randn(b, bins, spec.n_input, generator=torch.Generator().manual_seed(0))
            t_col, t_row, ratios = interleaved(step_fn(model, x, scan, "ROW_MAX_B", 0),
                                              step_fn(model, x, scan, "ROW_MAX_B", b), repeat=args.repeat)
            print(f"{name:6s} {b:5d} {t_col * 1e3:10.1f} {t_row * 1e3:8.1f} "
                  f"{t_col / t_row:10.2f} ({ratios[0]:.2f}..{ratios[-1]:.2f})", flush=True)
    scan.ROW_MAX_B = default


if __name__ == "__main__":
    main()
