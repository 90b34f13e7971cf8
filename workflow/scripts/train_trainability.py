"""Diagnose at initialisation, then train, every member (init x seed) of one (model, depth, activation).

Inputs: ``data`` (the flip-flop task's trials). Outputs: ``members``, ``history``,
``propagation``, ``spectrum`` (Parquet, gnode.studies.trainability.JOB_TABLES). Params:
``settings`` (gnode.studies.trainability.job_settings), ``checkpoints`` (folder to resume from).
"""

from gnode.runtime import setup_job
from gnode.studies import trainability

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
out = {t: sm.output[t] for t in trainability.JOB_TABLES}
trainability.train_job(dict(sm.params.settings), sm.input.data, out, checkpoint_dir=sm.params.checkpoints, code=sm.params.code)
