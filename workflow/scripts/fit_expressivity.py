"""Fit one flow field x gating of the expressivity sweep (gnode.jobs.fit_expressivity)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
jobs.fit_expressivity(
    sm.params.settings,
    out_fits=sm.output.fits,
)
