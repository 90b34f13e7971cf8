"""The expressivity study, one function per workflow step: fit and examples (scores and claims:
:mod:`gnode.studies.expressivity_scores`; figures: :mod:`gnode.plotting.expressivity`).

A fitting job covers one (flow field, gated) pair of the sweep over all N (the fits of a class
do not depend on how the sweep is split). Tables: fits (one row per class x K x target), scores
(one row per class), examples (trajectories), claims (gnode.claims schema).
"""

from __future__ import annotations

import logging
from pathlib import Path

from gnode import expressivity as ex
from gnode import io
from gnode.config import ExpressivityFitSettings, ExpressivitySweep
from gnode.runtime import DTYPES, resolve_device

logger = logging.getLogger(__name__)


def fit_job(settings: ExpressivityFitSettings, out_fits: str | Path) -> None:
    """Fit every (N, K, target, restart) of the job's flow field and gating; write the fits table."""
    device, dtype = resolve_device(settings.device), DTYPES[settings.dtype]
    fits, _ = ex.run_sweep(settings.sweep, device=device, dtype=dtype, seed=settings.seed, log=logger)
    prov = io.provenance(settings.model_dump(mode="json"), device=device)  # as the rule's params
    io.write_table(fits[ex.FIT_COLUMNS], out_fits, ex.FIT_SCHEMA, prov)


def example_classes(sweep: ExpressivitySweep) -> tuple[list[dict], list[int]]:
    """The classes and K of the example panel: the two smallest N >= 2, the simplest and richest
    flow, non-gated, K = 1..3."""
    ns = [n for n in sorted(sweep.n) if n >= 2][:2] or sorted(sweep.n)[:1]
    flows = [sweep.flows[0]] + ([sweep.flows[-1]] if len(sweep.flows) > 1 else [])
    classes = [{"n": n, **f.model_dump(), "gated": False} for f in flows for n in ns]
    return classes, list(range(1, min(3, sweep.k_max) + 1))


def examples_job(settings: ExpressivityFitSettings, out_examples) -> None:
    """Target and fitted trajectories of a few classes (the example panel)."""
    device, dtype = resolve_device(settings.device), DTYPES[settings.dtype]
    classes, ks = example_classes(settings.sweep)
    df = ex.example_fits(classes, ks, settings.sweep, device=device, dtype=dtype, seed=settings.seed, log=logger)
    prov = io.provenance(settings.model_dump(mode="json"), device=device)
    io.write_table(df[ex.EXAMPLE_COLUMNS], out_examples, ex.EXAMPLE_SCHEMA, prov)
