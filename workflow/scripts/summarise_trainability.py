"""Gather the trainability jobs' tables; add epochs to the threshold; write the summary and the claims.

Inputs: ``members``, ``history``, ``propagation``, ``spectrum`` (lists, one file per job).
Outputs: the gathered tables, ``summary`` (Parquet and ``html``), ``claims``. Params:
``settings`` (epochs and the thresholds of config trainability.claims).
"""

from gnode.runtime import setup_job
from gnode.studies import trainability, trainability_summary

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
inputs = {t: list(sm.input[t]) for t in trainability.JOB_TABLES}
out = {k: sm.output[k] for k in [*trainability.JOB_TABLES, "summary", "html", "claims"]}
trainability_summary.summarise_job(inputs, dict(sm.params.settings), out)
