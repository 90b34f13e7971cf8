"""Gather the real-world evaluations into the summary and claims tables (gnode.jobs.summarise_realworld)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.summarise_realworld(
    sm.params.thresholds,
    evaluations=sm.input.evaluations,
    out_summary=sm.output.summary,
    out_claims=sm.output.claims,
    out_html=sm.output.html,
)
