"""Score the expressivity sweep: K* and AUC per class, and the claims rows.

Inputs: ``fits``. Outputs: ``scores``, ``claims`` (Parquet). Params: ``sweep``.
"""

from gnode.runtime import setup_job
from gnode.studies import expressivity_scores

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
expressivity_scores.score_job(dict(sm.params.sweep), list(sm.input.fits), sm.output.scores, sm.output.claims)
