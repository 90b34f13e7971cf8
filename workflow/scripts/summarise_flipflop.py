"""Gather every flip-flop evaluation into the summary table.

Inputs: ``evaluations`` (Parquet, one per job). Outputs: ``summary`` (Parquet), ``html``.
"""

from gnode.runtime import setup_job
from gnode.studies import flipflop

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
flipflop.summarise_job(list(sm.input.evaluations), sm.output.summary, sm.output.html)
