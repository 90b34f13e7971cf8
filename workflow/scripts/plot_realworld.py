"""Draw the figure of one real-world task (gnode.jobs.plot_realworld)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.plot_realworld(
    sm.params.figures,
    evaluations=sm.input.evaluations,
    histories=sm.input.histories,
    out_figure=sm.output.figure,
)
