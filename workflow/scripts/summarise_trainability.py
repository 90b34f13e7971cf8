"""Gather the trainability jobs' tables; write the summary and the claims (gnode.jobs.summarise_trainability)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.summarise_trainability(
    sm.params.settings,
    members=sm.input.members,
    history=sm.input.history,
    propagation=sm.input.propagation,
    spectrum=sm.input.spectrum,
    out_members=sm.output.members,
    out_history=sm.output.history,
    out_propagation=sm.output.propagation,
    out_spectrum=sm.output.spectrum,
    out_summary=sm.output.summary,
    out_html=sm.output.html,
    out_claims=sm.output.claims,
)
