"""Test the flip-flop findings: the claims table (gnode.jobs.claims_flipflop)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.claims_flipflop(
    sm.params.settings,
    summary=sm.input.summary,
    fixed_points=sm.input.fixed_points,
    memory=sm.input.memory,
    data=sm.input.data,
    out_claims=sm.output.claims,
    out_html=sm.output.html,
)
