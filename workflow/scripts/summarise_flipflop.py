"""Gather every flip-flop evaluation into the summary table (gnode.jobs.summarise_flipflop)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.summarise_flipflop(
    evaluations=sm.input.evaluations,
    out_summary=sm.output.summary,
    out_html=sm.output.html,
)
