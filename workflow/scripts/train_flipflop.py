"""Train one (experiment, model, N) of the flip-flop study (gnode.jobs.train_flipflop)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
jobs.train_flipflop(
    sm.params.settings,
    int(sm.wildcards.n),
    data=sm.input.data,
    out_model=sm.output.model,
    out_history=sm.output.history,
    checkpoints=sm.params.checkpoints,
    code=sm.params.code,
)
