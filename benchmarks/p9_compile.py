"""P9: ``torch.compile`` of a training step against the package's Euler scan, compile time counted.

Issue 16 asks whether fusing a step's element-wise work (gate, activation, Euler update) with
``torch.compile`` pays on a CPU. The scan (:mod:`gnode.scan`) is a custom autograd Function with
in-place, ``out=`` kernels that Dynamo would have to break on, so what is compiled is the
reference autograd loop (``RecurrentEnsemble.use_scan = False``) plus the loss: the same numbers
to rounding, every step's element-wise work open to Inductor's fusion. Printed per shape:
seconds to compile (first call), ms per step compiled and eager (median of interleaved
repeats), ms per step of the scan, and how many steps the compile costs before it pays.

    python benchmarks/p9_compile.py [--shapes small 2bit] [--repeat 5] [--mode default|max-autotune-no-cudagraphs]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHAPES, interleaved_many, machine  # noqa: E402

from gnode.models import RecurrentEnsemble  # noqa: E402


def loss_fn(model: RecurrentEnsemble, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out, _ = model(x)
    return (out - y).pow(2).mean()


def loss_step(model, fn, x, y):
    def step():
        model.zero_grad(set_to_none=True)
        fn(model, x, y).backward()
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["small", "2bit"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mode", default="default", help="torch.compile mode")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"P9 torch.compile (mode {args.mode}) vs eager vs the scan — {machine()}")
    print(f"{'shape':6s} {'compile s':>9s} {'compiled ms':>11s} {'eager ms':>9s} {'scan ms':>8s} "
          f"{'scan/compiled':>13s} {'steps to repay the compile':>26s}  max |loss diff|")
    for name in args.shapes:
        shape = SHAPES[name]
        spec, members, batch, bins = shape.spec, shape.members, shape.batch, shape.bins
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, bins, spec.n_input, generator=g)
        y = torch.randn(batch, bins, spec.n_output, generator=g)
        scan_model = RecurrentEnsemble(spec, list(range(members)))
        loop_model = RecurrentEnsemble(spec, list(range(members)))
        loop_model.use_scan = False
        torch._dynamo.reset()
        compiled = torch.compile(loss_fn, mode=args.mode, dynamic=False)
        t0 = time.perf_counter()
        loss_step(loop_model, compiled, x, y)()
        t_compile = time.perf_counter() - t0
        diff = abs(compiled(loop_model, x, y).item() - loss_fn(scan_model, x, y).item())
        (t_c, t_e, t_s), _ = interleaved_many([loss_step(loop_model, compiled, x, y), loss_step(loop_model, loss_fn, x, y),
                                                loss_step(scan_model, loss_fn, x, y)], repeat=args.repeat)
        gain = t_s - t_c
        repay = f"{t_compile / gain:.0f}" if gain > 0 else "never"
        print(f"{name:6s} {t_compile:9.1f} {t_c * 1e3:11.1f} {t_e * 1e3:9.1f} {t_s * 1e3:8.1f} {t_s / t_c:13.2f} "
              f"{repay:>26s}  {diff:.1e}", flush=True)


if __name__ == "__main__":
    main()
