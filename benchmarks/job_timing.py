"""Seconds per training iteration of one paper-profile 3-bit variable job, and its projected hours.

The job: ``config/paper.yaml`` ``flipflop.experiments.3bit_variable`` at gnODE N = 100 (F 3 x 100
ReLU, fixed random h0, tau = dt = 0.01, float32): one ensemble of the 9 (lr, weight decay) grid
points of one batch size, trained by :func:`gnode.training.fit` as the workflow does (AdamW,
mini-batches in the data's order, the best parameters by test loss after every iteration: one
forward pass over the 100 test trials per optimiser step). Here ``--iterations`` optimiser steps
(one epoch over ``iterations x batch`` training trials) are timed after one warm-up step; an
iteration is what one of the job's costs (a step plus a test evaluation; the epoch's end adds
little). The projection is seconds per iteration x ceil(500 / batch) iterations x 600 epochs.

    python benchmarks/job_timing.py [--device cuda] [--batches 10 50 100] [--members 9] [--iterations 0]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from gnode.models import ModelSpec, RecurrentEnsemble  # noqa: E402
from gnode.tasks import flipflop  # noqa: E402
from gnode.training import FitSettings, fit  # noqa: E402

N_TRAIN, N_TEST, EPOCHS = 500, 100, 600  # config/config.yaml flipflop.data; paper.yaml 3bit_variable.epochs
LRS, WDS = (1e-4, 1e-3, 1e-2), (1e-3, 1e-2, 1e-1)  # paper.yaml 3bit_variable grid (per batch size)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--batches", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--members", type=int, default=9, help="grid points in the ensemble (9: 3 lr x 3 wd)")
    ap.add_argument("--n-hidden", type=int, default=100)
    ap.add_argument("--iterations", type=int, default=0, help="optimiser steps timed (0: one full epoch)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    d = flipflop.generate("3bit_variable", N_TRAIN + N_TEST, seed=0, n_bins=100)
    x = torch.as_tensor(d.inputs, device=dev)
    y = torch.as_tensor(d.targets, device=dev)
    test = (x[N_TRAIN:], y[N_TRAIN:])
    spec = ModelSpec(kind="gnode", n_input=3, n_hidden=a.n_hidden, n_output=3, depth=3, width=100,
                     activation="relu", tau=0.01, dt=0.01, initial_state="fixed_random")
    grid = [(lr, wd) for lr in LRS for wd in WDS]
    grid = (grid * math.ceil(a.members / len(grid)))[: a.members]
    seeds = [0] * a.members  # paper.yaml seeds: [0], every grid point from the same weights
    print(f"3-bit variable job timing — {machine()}, device {dev}: gnODE N={a.n_hidden} F 3x100, "
          f"{a.members} members, select_every=iteration, {N_TEST} test trials")

    def run(batch: int, iterations: int) -> float:
        model = RecurrentEnsemble(spec, seeds, device=dev)
        settings = FitSettings(epochs=1, batch_size=batch, lr=[g[0] for g in grid], weight_decay=[g[1] for g in grid],
                               seeds=seeds, select_every="iteration", shuffle=False)
        train = (x[: iterations * batch], y[: iterations * batch])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fit(model, train, test, settings)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for batch in a.batches:
        per_epoch = math.ceil(N_TRAIN / batch)
        iterations = a.iterations or per_epoch
        run(batch, 1)  # warm-up: allocator, kernels, cuBLAS handles
        s_it = run(batch, iterations) / iterations
        hours = s_it * per_epoch * EPOCHS / 3600
        print(f"  batch {batch:3d}: {s_it * 1e3:.0f} ms per iteration ({iterations} timed); one job of {EPOCHS} epochs "
              f"x {per_epoch} iterations: {hours:.2f} h")


if __name__ == "__main__":
    main()
