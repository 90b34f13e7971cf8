"""Draw the attractor figures of one flip-flop experiment: phase portraits, memory test, gates.

Inputs: the analysis tables (Parquet). Outputs: ``attractors``, ``memory``, ``gates`` (PNG,
plus the other formats of ``figures.formats``). Params: ``figures``.
"""

from gnode.io import read_table
from gnode.plotting import attractors as plots
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
opts = {"formats": sm.params.figures["formats"], "dpi": sm.params.figures["dpi"]}
traj = read_table(sm.input.trajectories)
plots.attractor_figure(read_table(sm.input.fixed_points), traj, read_table(sm.input.speed_grid), sm.output.attractors,
                       **opts)
plots.memory_figure(read_table(sm.input.memory), read_table(sm.input.memory_curve), sm.output.memory, **opts)
plots.gates_figure(read_table(sm.input.gates), sm.output.gates, **opts)
