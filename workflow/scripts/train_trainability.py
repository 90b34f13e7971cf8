"""Diagnose at init, then train, one (model, depth, activation) of the trainability study (gnode.jobs.train_trainability)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
jobs.train_trainability(
    sm.params.settings,
    data=sm.input.data,
    out_members=sm.output.members,
    out_history=sm.output.history,
    out_propagation=sm.output.propagation,
    out_spectrum=sm.output.spectrum,
    checkpoints=sm.params.checkpoints,
    code=sm.params.code,
)
