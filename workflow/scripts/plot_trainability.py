"""Draw the trainability figures (gnode.jobs.plot_trainability)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.plot_trainability(
    sm.params.figures,
    sm.params.compare_epoch,
    members=sm.input.members,
    history=sm.input.history,
    propagation=sm.input.propagation,
    out_learning_curves=sm.output.learning_curves,
    out_init=sm.output.init,
    out_final_loss=sm.output.final_loss,
)
