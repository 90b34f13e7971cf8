"""Fit the example panel of the expressivity figures (gnode.jobs.examples_expressivity)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
jobs.examples_expressivity(
    sm.params.settings,
    out_examples=sm.output.examples,
)
