"""Fit the example panel of the expressivity figures (a few classes, target 0 per K).

Outputs: ``examples`` (Parquet). Params: ``settings``.
"""

from gnode.runtime import setup_job
from gnode.studies import expressivity

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
expressivity.examples_job(dict(sm.params.settings), sm.output.examples)
