"""Draw the flip-flop figures of one experiment: test loss per model, an example trial, learning curves.

Inputs: ``evaluations``, ``examples``, ``histories`` (Parquet). Outputs: one PNG per figure
(plus the other formats of ``figures.formats``). Params: ``figures``.
"""

import pandas as pd

from gnode.io import read_table
from gnode.plotting import flipflop as plots
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
fig = dict(sm.params.figures)
opts = {"formats": fig["formats"], "dpi": fig["dpi"]}
load = lambda paths: pd.concat([read_table(p) for p in paths], ignore_index=True)  # noqa: E731
plots.test_loss_per_model(load(sm.input.evaluations), sm.output.test_loss, **opts)
plots.example_trial(load(sm.input.examples), sm.output.example, **opts)
plots.learning_curves(load(sm.input.histories), sm.output.learning_curves, **opts)
