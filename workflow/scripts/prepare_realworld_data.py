"""Prepare one real-world task's data: find the dataset (local copy, else download), load it with
the benchmark's protocol and write it as one Parquet table.

Inputs: none (the dataset is located from ``settings.source``). Outputs: ``data`` (Parquet, one
row per sequence). Params: ``settings`` (gnode.studies.realworld.data_settings).
"""

from gnode.runtime import setup_job
from gnode.studies import realworld

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
realworld.prepare_data(dict(sm.params.settings), sm.output.data)
