"""Attractor analysis of one flip-flop experiment (gnode.jobs.analyse_flipflop_attractors)."""

from gnode import jobs
from gnode.runtime import setup_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_job(sm.threads, sm.log[0])
jobs.analyse_flipflop_attractors(
    sm.params.settings,
    models=sm.input.models,
    evaluations=sm.input.evaluations,
    data=sm.input.data,
    out_fixed_points=sm.output.fixed_points,
    out_trajectories=sm.output.trajectories,
    out_speed_grid=sm.output.speed_grid,
    out_gates=sm.output.gates,
    out_memory=sm.output.memory,
    out_memory_curve=sm.output.memory_curve,
)
