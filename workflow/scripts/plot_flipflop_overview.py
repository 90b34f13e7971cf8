"""Draw the test loss of every model on every flip-flop task (gnode.jobs.plot_flipflop_overview)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.plot_flipflop_overview(
    sm.params.figures,
    evaluations=sm.input.evaluations,
    out_test_loss=sm.output.test_loss,
)
