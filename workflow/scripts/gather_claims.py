"""Gather the claims rows of every study part.

Inputs: ``claims`` (Parquet files with gnode.claims.CLAIMS_SCHEMA). Outputs: ``table``
(results/claims.parquet), ``html`` (a readable table for the report).
"""

from gnode.claims import gather_job
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
gather_job(list(sm.input.claims), sm.output.table, sm.output.html)
