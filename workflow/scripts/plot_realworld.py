"""Draw the figure of one real-world task: test metric per model over seeds, validation curves.

Inputs: ``evaluations``, ``histories`` (Parquet). Outputs: ``figure`` (PNG, plus the other
formats of ``figures.formats``). Params: ``figures``.
"""

import pandas as pd

from gnode.io import read_table
from gnode.plotting import realworld as plots
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
fig = dict(sm.params.figures)
load = lambda paths: pd.concat([read_table(p) for p in paths], ignore_index=True)  # noqa: E731
plots.task_figure(load(sm.input.evaluations), load(sm.input.histories), sm.output.figure,
                  formats=fig["formats"], dpi=fig["dpi"])
