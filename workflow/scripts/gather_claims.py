"""Gather the claims rows of every study part (gnode.jobs.gather_claims)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.gather_claims(
    claims=sm.input.claims,
    out_table=sm.output.table,
    out_html=sm.output.html,
)
