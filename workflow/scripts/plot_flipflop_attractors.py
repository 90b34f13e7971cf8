"""Draw the attractor figures of one flip-flop experiment (gnode.jobs.plot_flipflop_attractors)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(1, sm.log[0])
jobs.plot_flipflop_attractors(
    sm.params.figures,
    fixed_points=sm.input.fixed_points,
    trajectories=sm.input.trajectories,
    speed_grid=sm.input.speed_grid,
    gates=sm.input.gates,
    memory=sm.input.memory,
    memory_curve=sm.input.memory_curve,
    out_attractors=sm.output.attractors,
    out_memory=sm.output.memory,
    out_gates=sm.output.gates,
)
