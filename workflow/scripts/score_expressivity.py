"""Score the expressivity sweep (gnode.jobs.score_expressivity)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.score_expressivity(
    sm.params.sweep,
    sm.params.thresholds,
    fits=sm.input.fits,
    out_scores=sm.output.scores,
    out_claims=sm.output.claims,
)
