"""P1: K models trained as one ensemble vs the same K trained one after another.

Prints the ratio serial / ensemble, measured side by side in one run. Small models are the
expressivity sweep's shapes (autonomous nODE, N = 4, F 2 x 32, batch 100, 100 steps); large
ones the 3-bit flip-flop's (N = 100, F 3 x 100).

    python benchmarks/p1_ensemble_vs_serial.py [--members 27] [--steps 100] [--large] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, timeit  # noqa: E402

import gnode.chunks  # noqa: E402
from gnode.models import ModelSpec, RecurrentEnsemble  # noqa: E402
from gnode.training import FitSettings, fit  # noqa: E402


def train(spec, seeds, data, steps, batch):
    x, y = data
    ens = RecurrentEnsemble(spec, seeds, device=x.device)
    n = x.shape[0]
    epochs = max(1, steps * batch // n)
    fit(ens, (x, y), (x[:batch], y[:batch]),
        FitSettings(epochs=epochs, batch_size=batch, lr=[1e-3] * len(seeds), weight_decay=[0.01] * len(seeds),
                    seeds=list(seeds)))
    if x.device.type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--members", type=int, default=27)
    ap.add_argument("--steps", type=int, default=100, help="optimiser steps per model")
    ap.add_argument("--large", action="store_true", help="also the N = 100 flip-flop shape (slow on a CPU)")
    ap.add_argument("--chunk-bytes", type=int, default=gnode.chunks.CHUNK_BYTES,
                    help="gnode.chunks.CHUNK_BYTES (0: all members at once, as before benchmarks/p8)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads of the ensemble")
    ap.add_argument("--serial-threads", type=int, default=None,
                    help="torch threads of the one-by-one runs (default: --threads). Tiny models run fastest on one "
                         "thread, so --threads 2 --serial-threads 1 compares each side at its best on 2 cores")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    gnode.chunks.CHUNK_BYTES = a.chunk_bytes
    dev = torch.device(a.device)
    serial_threads = a.serial_threads or a.threads
    torch.set_num_threads(a.threads)
    print(f"P1 ensemble vs serial — {machine()}, device {dev}; serial on {serial_threads} thread(s)")
    cases = [("small: node N=4 F 2x32, T=50", ModelSpec(kind="node", n_input=1, n_hidden=4, n_output=1, depth=2,
                                                         width=32, tau=0.1, dt=0.01), 50, 1, a.steps)]
    if a.large:
        cases.append(("large: gnode N=100 F 3x100, T=100",
                      ModelSpec(kind="gnode", n_input=3, n_hidden=100, n_output=3, depth=3, width=100), 100, 3,
                      max(2, a.steps // 20)))
    for name, spec, t, i, steps in cases:
        g = torch.Generator().manual_seed(0)
        batch = 100
        data = (torch.randn(batch, t, i, generator=g).to(dev),
                torch.randn(batch, t, spec.n_output, generator=g).to(dev))
        seeds = list(range(a.members))
        torch.set_num_threads(a.threads)
        t_ens = timeit(lambda: train(spec, seeds, data, steps, batch), repeat=1)
        torch.set_num_threads(serial_threads)
        t_ser = timeit(lambda: [train(spec, [s], data, steps, batch) for s in seeds], repeat=1)
        print(f"  {name}: {a.members} models x {steps} steps  serial {t_ser:.2f} s  ensemble {t_ens:.2f} s  "
              f"ratio {t_ser / t_ens:.1f}x")


if __name__ == "__main__":
    main()
