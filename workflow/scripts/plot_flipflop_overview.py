"""Draw the test loss of every model on every flip-flop task (one panel per experiment).

Inputs: ``evaluations`` (Parquet, one per job). Outputs: ``test_loss`` (PNG, plus the other
formats of ``figures.formats``). Params: ``figures``.
"""

import pandas as pd

from gnode.io import read_table
from gnode.plotting import flipflop as plots
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
ev = pd.concat([read_table(p) for p in sm.input.evaluations], ignore_index=True)
plots.test_loss_per_model(ev, sm.output.test_loss, formats=sm.params.figures["formats"], dpi=sm.params.figures["dpi"])
