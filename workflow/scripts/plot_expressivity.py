"""Draw the expressivity figures: score heatmaps, iso-expressivity, score vs parameters, R2(K), examples.

Inputs: ``fits``, ``scores``, ``examples``. Outputs: one PNG per figure and a PDF beside it.
"""

from gnode.plotting import expressivity
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
out = {k: sm.output[k] for k in ("heatmaps", "iso", "params", "r2", "examples")}
expressivity.plot_job(list(sm.input.fits), sm.input.scores, sm.input.examples, out, sm.params.threshold)
