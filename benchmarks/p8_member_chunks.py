"""P8: an ensemble's members in cache-sized chunks (``gnode.chunks.CHUNK_BYTES``) against the
whole ensemble at once, one training step side by side.

An ensemble step's working set (every member's weights and one step's activations) outgrows a
core's cache for the paper's flip-flop shapes: 27 members of the 3-bit N = 100 gnODE hold 5.5 MB
of parameters. The Euler scan and the discrete models' loop therefore run the members in
chunks that fit ``CHUNK_BYTES`` per thread (:mod:`gnode.chunks`). This script times one
optimiser step (forward + backward, 100 bins; 50 for the small expressivity-like shape) with
chunking off (``CHUNK_BYTES = 0``) and on (the default, or ``--chunk-bytes``), interleaved, and
prints the largest difference of the gradients between the two (0: the same bits).

    python benchmarks/p8_member_chunks.py [--shapes 3bit gru 2bit small] [--batches 10 50 100] [--repeat 5]
                                          [--chunk-bytes 2097152]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHAPES as COMMON  # noqa: E402
from _common import interleaved, machine, step_fn  # noqa: E402

import gnode.chunks as chunks  # noqa: E402
from gnode.chunks import member_chunks  # noqa: E402
from gnode.models import ModelSpec, RecurrentEnsemble  # noqa: E402
from gnode.scan import scan_chunks, scan_params  # noqa: E402

#: issue 16's shapes (``_common.SHAPES``) and the 3-bit baselines GRU and mGRU at N = 100
SHAPES = {**COMMON, **{k: replace(COMMON["3bit"], spec=ModelSpec(kind=k, n_input=3, n_hidden=100, n_output=3))
                       for k in ("gru", "mgru")}}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["3bit", "gru", "2bit", "small"])
    ap.add_argument("--batches", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chunk-bytes", type=int, default=chunks.CHUNK_BYTES, help="the chunked side's budget")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    default = chunks.CHUNK_BYTES
    chunks.CHUNK_BYTES = args.chunk_bytes
    print(f"P8 on {machine()}; gnode.chunks.CHUNK_BYTES = {args.chunk_bytes} (default {default})")
    print(f"{'shape':6s} {'batch':>5s} {'chunks':>14s} {'whole ms':>9s} {'chunked ms':>10s} "
          f"{'whole/chunked (min..max of pairs)':>34s} {'max |grad diff| / max |grad|':>28s}")
    for name in args.shapes:
        spec, members, bins = SHAPES[name].spec, SHAPES[name].members, SHAPES[name].bins
        model = RecurrentEnsemble(spec, list(range(members)))
        for b in args.batches:
            x = torch.randn(b, bins, spec.n_input, generator=torch.Generator().manual_seed(0))
            whole = step_fn(model, x, chunks, "CHUNK_BYTES", 0)
            chunked = step_fn(model, x, chunks, "CHUNK_BYTES", args.chunk_bytes)
            diff = max(((g - h).abs().max() / g.abs().max().clamp_min(1e-30)).item() for g, h in zip(whole(), chunked()))
            chunks.CHUNK_BYTES = args.chunk_bytes
            if spec.continuous:
                cfg = (spec.activation, spec.depth, spec.gated, 1, None)
                parts = scan_chunks(cfg, scan_params(model), b, torch.device("cpu"))
            else:
                parts = member_chunks(members, model._step_bytes(b), b, torch.device("cpu"))
            sizes = [c.stop - c.start for c in parts]
            t_w, t_c, ratios = interleaved(whole, chunked, repeat=args.repeat)
            print(f"{name:6s} {b:5d} {len(sizes):3d} x {max(sizes):2d} mem. {t_w * 1e3:9.1f} {t_c * 1e3:10.1f} "
                  f"{t_w / t_c:14.2f} ({ratios[0]:.2f}..{ratios[-1]:.2f}) {diff:28.1e}", flush=True)
    chunks.CHUNK_BYTES = default


if __name__ == "__main__":
    main()
