"""P2: achieved training FLOP/s of a flip-flop ensemble vs a large torch matmul.

Shapes (issue 16's two dominant ones): ``3bit`` gnODE N = 100, F 3 x 100, 27 members, batch 100;
``2bit`` gnODE N = 2, F 2 x 316, 9 members, batch 50; 100 bins each.

Training FLOPs are counted analytically from the matrix products of the Euler scan (forward)
times 3 (backward ~ 2x forward); element-wise work is not counted, so the ratio is a lower
bound of the machine's use. Both numbers are measured side by side in one run.

    python benchmarks/p2_flops.py [--shape 3bit|2bit] [--members E] [--batches 2] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHAPES, interleaved, machine  # noqa: E402

import gnode.chunks  # noqa: E402
from gnode.models import ModelSpec, RecurrentEnsemble  # noqa: E402
from gnode.training import FitSettings, fit  # noqa: E402


def forward_flops(spec: ModelSpec, batch: int, bins: int) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass of one member."""
    n, m, i, o = spec.n_hidden, spec.width, spec.n_input, spec.n_output
    per_step = n * m + (spec.depth - 1) * m * m + m * n + (n * n if spec.kind == "gnode" else 0)
    per_bin = per_step * spec.substeps
    inputs = i * (m + (n if spec.kind == "gnode" else 0))
    return 2.0 * batch * bins * (per_bin + inputs + n * o)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", choices=["3bit", "2bit"], default="3bit")
    ap.add_argument("--members", type=int, default=None, help="ensemble size (default: the shape's)")
    ap.add_argument("--batches", type=int, default=2, help="optimiser steps timed")
    ap.add_argument("--chunk-bytes", type=int, default=gnode.chunks.CHUNK_BYTES,
                    help="gnode.chunks.CHUNK_BYTES (0: all members at once, as before benchmarks/p8)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeat", type=int, default=5, help="interleaved (matmul, training) pairs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=2048, help="side of the reference matmul (a GPU wants 8192)")
    a = ap.parse_args()
    gnode.chunks.CHUNK_BYTES = a.chunk_bytes
    dev = torch.device(a.device)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    torch.set_num_threads(a.threads)
    print(f"P2 training FLOP/s vs matmul FLOP/s — {machine()}, device {dev}")
    size = a.size
    x, y = torch.randn(size, size, device=dev), torch.randn(size, size, device=dev)
    shape = SHAPES[a.shape]
    spec, members, batch = shape.spec, shape.members, shape.batch
    a.members = a.members or members
    bins, c = shape.bins, spec.n_input
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(batch * a.batches, bins, c, generator=g).to(dev),
            torch.randn(batch * a.batches, bins, c, generator=g).to(dev))
    small_test = (data[0][:1], data[1][:1])
    ens = RecurrentEnsemble(spec, list(range(a.members)), device=dev)
    settings = FitSettings(epochs=1, batch_size=batch, lr=[1e-3] * a.members, weight_decay=[0.1] * a.members,
                           seeds=list(range(a.members)))
    flops = 3 * forward_flops(spec, batch, bins) * a.batches * a.members
    t_mm, t_train, time_ratios = interleaved(lambda: (x @ y, sync()),
                                             lambda: (fit(ens, data, small_test, settings), sync()), repeat=a.repeat)
    mm, train = 2 * size**3 / t_mm, flops / t_train
    ratios = [flops / (2 * size**3) * r for r in time_ratios]  # per pair: training rate / matmul rate
    print(f"  matmul {size}x{size}: {mm / 1e9:.1f} GFLOP/s")
    print(f"  gnode N={spec.n_hidden} F {spec.depth}x{spec.width} ensemble of {a.members}, {a.batches} steps of batch {batch} x {bins} bins: "
          f"{train / 1e9:.1f} GFLOP/s")
    print(f"  ratio {statistics.median(ratios):.0%} of the matmul rate (median of {a.repeat} pairs; "
          f"range {ratios[0]:.0%}-{ratios[-1]:.0%})")


if __name__ == "__main__":
    main()
