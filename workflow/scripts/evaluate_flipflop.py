"""Evaluate one trained flip-flop ensemble (gnode.jobs.evaluate_flipflop)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
jobs.evaluate_flipflop(
    sm.params.run,
    model=sm.input.model,
    data=sm.input.data,
    out_evaluation=sm.output.evaluation,
    out_examples=sm.output.examples,
)
