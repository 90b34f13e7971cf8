"""Fit one flow field x gating of the expressivity sweep (all N batched).

Outputs: ``fits`` (Parquet, one row per class x K x target). Params: ``settings``
(gnode.studies.expressivity.job_settings).
"""

from gnode.runtime import setup_job
from gnode.studies import expressivity

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
expressivity.fit_job(dict(sm.params.settings), sm.output.fits)
