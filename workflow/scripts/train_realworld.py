"""Train one (task, model) of the real-world benchmarks over all seeds; test at the best parameters.

Inputs: ``data``. Outputs: ``model`` (.pt, best parameters of every seed), ``history`` (Parquet,
losses per seed and epoch), ``evaluation`` (Parquet, test metric per seed). Params: ``settings``
(gnode.studies.realworld.job_settings), ``checkpoints`` (folder to resume from after a kill).
"""

from gnode.runtime import setup_job
from gnode.studies import realworld

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
realworld.train_job(
    dict(sm.params.settings),
    sm.input.data,
    sm.output.model,
    sm.output.history,
    sm.output.evaluation,
    checkpoint_dir=sm.params.checkpoints,
    code=sm.params.code,
)
