"""What the Snakefile computes when it plans the jobs: each job's settings from the config.

One function per rule that has settings, named after the rule (:mod:`gnode.jobs`), taking the
validated config and the rule's wildcards and returning ``{param: value}``: the rule's
``params`` (the rules read them through :func:`job_params`) and the settings arguments of the
job function. ``python -m gnode <job> --config ...`` plans with the same functions, so a job run
by hand gets exactly the settings Snakemake would give it. Also here: the job lists.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

from gnode.config import Config
from gnode.jobs import JOBS
from gnode.studies import expressivity as ex_study
from gnode.studies import flipflop as ff
from gnode.studies import flipflop_analysis as ffa
from gnode.studies import flipflop_data as ffd
from gnode.studies import realworld as rw
from gnode.studies import trainability as tr

#: rule name -> planner (cfg, **wildcards) -> {param: value}; a job without settings has none
PLANS: dict[str, Callable[..., dict]] = {}


def _plans(fn: Callable[..., dict]) -> Callable[..., dict]:
    PLANS[fn.__name__] = fn
    return fn


def job_params(rule: str, cfg: Config, wildcards: Mapping[str, object] | None = None) -> dict:
    """The settings of one job of ``rule``: ``{param: value}`` (empty for a job without settings).

    Of ``wildcards`` (Snakemake's, or given by hand) the planner takes those it names, converted
    to the types the job declares; a missing one is a :class:`ValueError` naming it.
    """
    if rule not in PLANS:
        return {}
    planner, types = PLANS[rule], JOBS[rule].wildcards
    given = dict(wildcards.items()) if wildcards is not None else {}
    needed = list(inspect.signature(planner).parameters)[1:]
    missing = [w for w in needed if given.get(w) is None]
    if missing:
        raise ValueError(f"{rule}: planning its settings needs the wildcard(s) {', '.join(missing)}")
    return planner(cfg, **{w: types[w](given[w]) for w in needed})


def run_settings(cfg: Config) -> dict:
    """Device and dtype of the jobs that only run a model."""
    return {"device": cfg.device, "dtype": cfg.dtype}


def figure_settings(cfg: Config) -> dict:
    return cfg.figures.model_dump()


def flipflop_jobs(cfg: Config, experiment: str | None = None) -> list[tuple[str, str, int]]:
    """(experiment, model, n) of every flip-flop training job (of one experiment if given)."""
    return [
        (name, m, n)
        for name, exp in cfg.flipflop.experiments.items()
        if experiment in (None, name)
        for m in exp.models
        for n in exp.sizes_of(m)
    ]


def realworld_jobs(cfg: Config, task: str | None = None) -> list[tuple[str, str]]:
    """(task, model) of every real-world training job (of one task if given)."""
    return [(t, m) for t, spec in cfg.realworld.tasks.items() if task in (None, t) for m in spec.models]


# --- flip-flop study ------------------------------------------------------------------------


@_plans
def prepare_flipflop_data(cfg: Config, task: str) -> dict:
    return {"settings": ffd.data_settings(cfg, task)}


@_plans
def train_flipflop(cfg: Config, experiment: str, model: str) -> dict:
    # N is not a setting: the job takes it as its own argument (one settings dict per model)
    return {"settings": ff.job_settings(cfg, experiment, model)}


@_plans
def evaluate_flipflop(cfg: Config) -> dict:
    return {"run": run_settings(cfg)}


@_plans
def plot_flipflop(cfg: Config) -> dict:
    return {"figures": figure_settings(cfg)}


@_plans
def analyse_flipflop_attractors(cfg: Config, experiment: str) -> dict:
    return {"settings": ffa.analysis_settings(cfg, experiment)}


@_plans
def plot_flipflop_attractors(cfg: Config) -> dict:
    return {"figures": figure_settings(cfg)}


@_plans
def plot_flipflop_overview(cfg: Config) -> dict:
    return {"figures": figure_settings(cfg)}


@_plans
def claims_flipflop(cfg: Config) -> dict:
    experiments = cfg.flipflop.experiments
    return {
        "settings": {
            "experiments": list(experiments),
            "tasks": {name: exp.task for name, exp in experiments.items()},
            "thresholds": cfg.flipflop.claims.model_dump(),
        }
    }


# --- expressivity study ---------------------------------------------------------------------


@_plans
def fit_expressivity(cfg: Config, flow: int, gated: int) -> dict:
    return {"settings": ex_study.job_settings(cfg, flow, bool(gated))}


@_plans
def score_expressivity(cfg: Config) -> dict:
    return {"sweep": ex_study.sweep_settings(cfg), "thresholds": cfg.expressivity.claims.model_dump()}


@_plans
def examples_expressivity(cfg: Config) -> dict:
    return {"settings": {"seed": cfg.seed, **run_settings(cfg), "sweep": ex_study.sweep_settings(cfg)}}


@_plans
def plot_expressivity(cfg: Config) -> dict:
    return {"threshold": cfg.expressivity.threshold}


# --- real-world benchmarks ------------------------------------------------------------------


@_plans
def prepare_realworld_data(cfg: Config, task: str) -> dict:
    return {"settings": rw.data_settings(cfg, task)}


@_plans
def train_realworld(cfg: Config, task: str, model: str) -> dict:
    return {"settings": rw.job_settings(cfg, task, model)}


@_plans
def summarise_realworld(cfg: Config) -> dict:
    return {"thresholds": cfg.realworld.claims.model_dump()}


@_plans
def plot_realworld(cfg: Config) -> dict:
    return {"figures": figure_settings(cfg)}


# --- trainability study ---------------------------------------------------------------------


@_plans
def train_trainability(cfg: Config, model: str, depth: int, activation: str) -> dict:
    return {"settings": tr.job_settings(cfg, model, depth, activation)}


@_plans
def summarise_trainability(cfg: Config) -> dict:
    return {"settings": {"epochs": cfg.trainability.epochs, "claims": cfg.trainability.claims.model_dump()}}


@_plans
def plot_trainability(cfg: Config) -> dict:
    return {"figures": figure_settings(cfg), "compare_epoch": cfg.trainability.claims.compare_epoch}
