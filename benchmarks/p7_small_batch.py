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
from _common import interleaved, machine  # noqa: E402

import gnode.scan as scan  # noqa: E402
from gnode.models import ModelSpec, RecurrentEnsemble  # noqa: E402

#: shape -> (spec, members): issue 16's two dominant shapes (benchmarks/p2_flops.py)
SHAPES = {
    "3bit": (ModelSpec(kind="gnode", n_input=3, n_hidden=100, n_output=3, depth=3, width=100), 27),
    "2bit": (ModelSpec(kind="gnode", n_input=2, n_hidden=2, n_output=2, depth=2, width=316), 9),
}


def step_fn(model: RecurrentEnsemble, x: torch.Tensor, row_max_b: int):
    def step():
        scan.ROW_MAX_B = row_max_b
        model.zero_grad(set_to_none=True)
        out, _ = model(x)
        out.pow(2).mean().backward()
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 10, 20, 32, 50])
    ap.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["3bit", "2bit"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    default = scan.ROW_MAX_B
    print(f"P7 on {machine()}; gnode.scan.ROW_MAX_B = {default}")
    print(f"{'shape':6s} {'batch':>5s} {'column ms':>10s} {'row ms':>8s} {'column/row (min..max of pairs)':>32s}")
    for name in args.shapes:
        spec, members = SHAPES[name]
        model = RecurrentEnsemble(spec, list(range(members)))
        for b in args.batches:
            x = torch.randn(b, 100, spec.n_input, generator=torch.Generator().manual_seed(0))
            t_col, t_row, ratios = interleaved(step_fn(model, x, 0), step_fn(model, x, b), repeat=args.repeat)
            print(f"{name:6s} {b:5d} {t_col * 1e3:10.1f} {t_row * 1e3:8.1f} "
                  f"{t_col / t_row:10.2f} ({ratios[0]:.2f}..{ratios[-1]:.2f})", flush=True)
    scan.ROW_MAX_B = default


if __name__ == "__main__":
    main()
