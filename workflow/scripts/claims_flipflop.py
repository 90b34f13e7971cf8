"""Test the flip-flop findings: one claims row per finding and experiment.

Inputs: ``summary``, ``fixed_points``, ``memory``, ``data`` (lists parallel to the experiments).
Outputs: ``claims`` (Parquet, gnode.claims.CLAIMS_SCHEMA), ``html``. Params: ``settings``
(experiments, their tasks, the thresholds of config flipflop.claims).
"""

from gnode.runtime import setup_job
from gnode.studies import flipflop_claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
settings = dict(sm.params.settings)
flipflop_claims.claims_job(
    settings, sm.input.summary, settings["experiments"], list(sm.input.fixed_points), list(sm.input.memory),
    list(sm.input.data), sm.output.claims, sm.output.html,
)
