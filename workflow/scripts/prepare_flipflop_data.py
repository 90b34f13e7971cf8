"""Generate one flip-flop task's trials (gnode.jobs.prepare_flipflop_data)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.prepare_flipflop_data(
    sm.params.settings,
    out_data=sm.output.data,
)
