"""Train one (experiment, model, N) of the flip-flop study as an ensemble over the grid and seeds.

Inputs: ``data``. Outputs: ``model`` (.pt, best parameters of every member), ``history``
(Parquet, losses per member and epoch). Params: ``settings`` (gnode.studies.flipflop.
job_settings), ``checkpoints`` (folder to resume from after a kill).
"""

from gnode.runtime import setup_job
from gnode.studies import flipflop

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
flipflop.train_job(
    dict(sm.params.settings),
    int(sm.wildcards.n),
    sm.input.data,
    sm.output.model,
    sm.output.history,
    checkpoint_dir=sm.params.checkpoints,
    code=sm.params.code,
)
