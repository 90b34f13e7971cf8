"""Evaluate one trained flip-flop ensemble: test loss per member, one example trial.

Inputs: ``model``, ``data``. Outputs: ``evaluation``, ``examples`` (Parquet).
Params: ``run`` (device, dtype).
"""

from gnode.runtime import setup_job
from gnode.studies import flipflop

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
flipflop.evaluate_job(dict(sm.params.run), sm.input.model, sm.input.data, sm.output.evaluation, sm.output.examples)
