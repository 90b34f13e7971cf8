"""Attractor analysis of one flip-flop experiment: fixed/slow points, memory test, gates.

Inputs: ``models``, ``evaluations`` (parallel lists, one per model x N), ``data``.
Outputs: ``fixed_points``, ``trajectories``, ``speed_grid``, ``gates``, ``memory``,
``memory_curve`` (Parquet). Params: ``settings`` (gnode.studies.flipflop_analysis.analysis_settings).
"""

from gnode.runtime import setup_job
from gnode.studies import flipflop_analysis

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
outputs = {name: sm.output[name] for name in flipflop_analysis.SCHEMAS}
flipflop_analysis.analyse_job(
    dict(sm.params.settings), list(sm.input.models), list(sm.input.evaluations), sm.input.data, outputs
)
