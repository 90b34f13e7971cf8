"""Train one (task, model) of the real-world benchmarks (gnode.jobs.train_realworld)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
jobs.train_realworld(
    sm.params.settings,
    data=sm.input.data,
    out_model=sm.output.model,
    out_history=sm.output.history,
    out_evaluation=sm.output.evaluation,
    checkpoints=sm.params.checkpoints,
    code=sm.params.code,
)
