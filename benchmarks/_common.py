"""Shared helpers of the benchmark scripts: timing by the median of repeats."""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass

import torch

from gnode.models import ModelSpec, RecurrentEnsemble


@dataclass(frozen=True)
class Shape:
    """A benchmark shape: the model, how many members, the batch and the number of bins."""

    spec: ModelSpec
    members: int
    batch: int
    bins: int


#: issue 16's shapes: the paper profile's two dominant flip-flop ones, and P1's small models
#: (the expressivity sweep's size)
SHAPES = {
    "3bit": Shape(ModelSpec(kind="gnode", n_input=3, n_hidden=100, n_output=3, depth=3, width=100), 27, 100, 100),
    "2bit": Shape(ModelSpec(kind="gnode", n_input=2, n_hidden=2, n_output=2, depth=2, width=316), 9, 50, 100),
    "small": Shape(ModelSpec(kind="node", n_input=1, n_hidden=4, n_output=1, depth=2, width=32, tau=0.1, dt=0.01),
                   27, 100, 50),
}


def step_fn(model: RecurrentEnsemble, x: torch.Tensor, module=None, name: str = "", value=None):
    """One training step (forward, mean squared output, backward) of ``model`` on ``x``, as a
    function that returns the gradients. With ``module``, ``module.name = value`` is set first:
    interleaved timings flip a module constant (``gnode.scan.ROW_MAX_B``,
    ``gnode.chunks.CHUNK_BYTES``) between the two sides of a pair."""

    def step():
        if module is not None:
            setattr(module, name, value)
        model.zero_grad(set_to_none=True)
        out, _ = model(x)
        out.pow(2).mean().backward()
        return [p.grad for p in model.parameters()]  # fresh tensors each call (set_to_none)

    return step


def timeit(fn, *, repeat: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(fn_a, fn_b, *, repeat: int) -> tuple[float, float, list[float]]:
    """Time ``fn_a`` and ``fn_b`` in ``repeat`` interleaved pairs (one warm-up call each first):
    a noisy neighbour slows both sides of a pair alike.

    Returns the median seconds of each, and the per-pair ratios t_a / t_b, sorted.
    """
    fn_a()
    fn_b()
    pairs = [(timeit(fn_a, repeat=1, warmup=0), timeit(fn_b, repeat=1, warmup=0)) for _ in range(repeat)]
    return (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs),
            sorted(p[0] / p[1] for p in pairs))


def interleaved_many(fns, *, repeat: int) -> tuple[list[float], list[list[float]]]:
    """Time several functions in ``repeat`` interleaved rounds (one warm-up call each first; in
    each round every function runs once, in order): a noisy neighbour slows a round alike.

    Returns the median seconds of each function, and per function its seconds in every round
    (in round order, so that ratios can be taken per round).
    """
    for fn in fns:
        fn()
    rounds = [[timeit(fn, repeat=1, warmup=0) for fn in fns] for _ in range(repeat)]
    per_fn = [[r[i] for r in rounds] for i in range(len(fns))]
    return [statistics.median(t) for t in per_fn], per_fn


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
