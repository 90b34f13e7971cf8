"""Generate one flip-flop task's trials.

Inputs: none. Outputs: ``data`` (Parquet, one row per trial x bin x channel).
Params: ``settings`` (gnode.studies.flipflop_data.data_settings).
"""

from gnode.runtime import setup_job
from gnode.studies import flipflop_data

setup_job(1, snakemake.log[0])  # noqa: F821 (snakemake is injected)
flipflop_data.prepare_data(dict(snakemake.params.settings), snakemake.output.data)  # noqa: F821
