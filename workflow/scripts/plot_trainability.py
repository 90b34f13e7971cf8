"""Draw the trainability figures: learning curves, diagnostics at init, final loss per cell.

Inputs: ``members``, ``history``, ``propagation`` (Parquet). Outputs: one PNG per figure (plus
the other formats of ``figures.formats``). Params: ``figures``, ``compare_epoch``.
"""

from gnode.io import read_table
from gnode.plotting import trainability as plots
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
fig = dict(sm.params.figures)
opts = {"formats": fig["formats"], "dpi": fig["dpi"]}
members = read_table(sm.input.members)
plots.learning_curves(read_table(sm.input.history), sm.output.learning_curves,
                      compare_epoch=sm.params.compare_epoch, **opts)
plots.init_diagnostics(members, read_table(sm.input.propagation), sm.output.init, **opts)
plots.final_loss(members, sm.output.final_loss, **opts)
