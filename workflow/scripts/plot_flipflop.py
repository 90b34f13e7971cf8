"""Draw the flip-flop figures of one experiment (gnode.jobs.plot_flipflop)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.plot_flipflop(
    sm.params.figures,
    evaluations=sm.input.evaluations,
    examples=sm.input.examples,
    histories=sm.input.histories,
    out_test_loss=sm.output.test_loss,
    out_example=sm.output.example,
    out_learning_curves=sm.output.learning_curves,
)
