"""P3: the native Euler scan vs torchdiffeq's ``euler`` on the same model, forward + backward.

Prints the ratio torchdiffeq / native, measured side by side in one run.

    python benchmarks/p3_euler_vs_torchdiffeq.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleaved, machine  # noqa: E402

from gnode.models import ModelSpec, RecurrentEnsemble  # noqa: E402


def step(model, x):
    model.zero_grad(set_to_none=True)
    y, _ = model(x)
    y.pow(2).mean().backward()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeat", type=int, default=9, help="interleaved (torchdiffeq, native) pairs")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"P3 native Euler vs torchdiffeq euler (forward + backward) — {machine()}")
    cases = [
        ("3-bit flip-flop gnode N=100 F 3x100, B=100, T=100", dict(kind="gnode", n_input=3, n_hidden=100,
                                                                   n_output=3, depth=3, width=100), 100, 100, 3),
        ("small gnode N=12 F 3x100, B=100, T=100", dict(kind="gnode", n_input=3, n_hidden=12, n_output=3, depth=3,
                                                        width=100), 100, 100, 3),
    ]
    for name, kw, batch, bins, i in cases:
        x = torch.randn(batch, bins, i, generator=torch.Generator().manual_seed(0))
        native = RecurrentEnsemble(ModelSpec(**kw), [0])
        tdq = RecurrentEnsemble(ModelSpec(**kw, solver="euler"), [0])
        t_t, t_n, ratios = interleaved(lambda: step(tdq, x), lambda: step(native, x), repeat=a.repeat)
        print(f"  {name}: torchdiffeq {t_t * 1e3:.0f} ms  native {t_n * 1e3:.0f} ms  "
              f"ratio {statistics.median(ratios):.2f}x (median of {a.repeat} pairs; range {ratios[0]:.2f}-{ratios[-1]:.2f})")


if __name__ == "__main__":
    main()
