"""Shared helpers of the benchmark scripts: timing by the median of repeats."""

from __future__ import annotations

import platform
import statistics
import time

import torch


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
