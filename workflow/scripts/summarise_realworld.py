"""Gather the real-world evaluations into the summary (mean and sd over seeds) and claims tables.

Inputs: ``evaluations`` (Parquet, one per job). Outputs: ``summary``, ``claims`` (Parquet), ``html``.
"""

from gnode.runtime import setup_job
from gnode.studies import realworld_summary

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
realworld_summary.summarise_job(list(sm.input.evaluations), sm.output.summary, sm.output.claims, sm.output.html)
