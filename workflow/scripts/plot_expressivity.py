"""Draw the expressivity figures (gnode.jobs.plot_expressivity)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.plot_expressivity(
    sm.params.threshold,
    fits=sm.input.fits,
    scores=sm.input.scores,
    examples=sm.input.examples,
    out_heatmaps=sm.output.heatmaps,
    out_iso=sm.output.iso,
    out_params=sm.output.params,
    out_r2=sm.output.r2,
    out_examples=sm.output.examples,
)
