"""What the Snakefile computes when it plans the jobs: each job's settings from the config.

One function per rule that has settings, named after the rule (:mod:`gnode.jobs`), taking the
validated config and the rule's wildcards and returning ``{param: value}``: the rule's
``params`` (the rules read them through :func:`job_params`) and the settings arguments of the
job function. Every job's settings are typed (one class per job kind in :mod:`gnode.config`, or
the config's own model where that is all a job takes): built here (the data jobs': by their
study module), passed as their ``model_dump(mode="json")`` (plain data), validated once in the
job. ``python -m gnode <job> --config ...`` plans with the same
functions, so a job run by hand gets exactly the settings Snakemake would give it. Also here:
the job lists.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

from gnode.config import (
    Config,
    ExpressivityFitSettings,
    ExpressivitySweep,
    FigureSettings,
    FlipflopAnalysisSettings,
    FlipflopClaimsSettings,
    FlipflopTrainSettings,
    RealworldTrainSettings,
    RunSettings,
    Strict,
    TrainabilitySummarySettings,
    TrainabilityTrainSettings,
)
from gnode.jobs import JOBS
from gnode.models import CONTINUOUS_KINDS
from gnode.studies import flipflop_data as ffd
from gnode.studies import realworld as rw

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


def _run(cfg: Config) -> dict:
    """The fields of :class:`JobSettings`: base seed, device and dtype."""
    return {"seed": cfg.seed, "device": cfg.device, "dtype": cfg.dtype}


def _dump(settings: Strict) -> dict:
    """A job's settings as the plain data of the rule's params."""
    return settings.model_dump(mode="json")


def flipflop_train_settings(cfg: Config, experiment: str, model: str) -> FlipflopTrainSettings:
    """Everything the training of one (experiment, model) depends on (N aside).

    One model's settings, not the experiment's: Snakemake re-runs exactly the jobs whose settings
    changed (one model's learning rates, say), not the whole experiment.
    """
    exp = cfg.flipflop.experiments[experiment]
    return FlipflopTrainSettings(
        **_run(cfg), experiment=experiment, task=exp.task, model=model, epochs=exp.epochs, seeds=exp.seeds,
        lr=exp.lr[model], weight_decay=exp.weight_decay, batch_size=exp.batch_size,
        checkpoint_every=exp.checkpoint_every, integration=exp.integration, initial_state=exp.initial_state,
        select_every=exp.select_every, shuffle=exp.shuffle, flow=exp.flow if model in CONTINUOUS_KINDS else None,
    )


def realworld_train_settings(cfg: Config, task: str, model: str) -> RealworldTrainSettings:
    """Everything the training of one (task, model) depends on, with the hidden size that meets the budget."""
    t = cfg.realworld.tasks[task]
    spec = rw.matched_size(t, model, *rw.task_shape(t.dataset))
    keys = ("budget", "seeds", "epochs", "batch_size", "weight_decay", "schedule", "min_lr_factor", "grad_clip",
            "patience", "checkpoint_every")
    return RealworldTrainSettings(**_run(cfg), task=task, dataset=t.dataset, model=model, spec=spec, lr=t.lr[model],
                                  **{k: getattr(t, k) for k in keys})


def trainability_train_settings(cfg: Config, model: str, depth: int, activation: str) -> TrainabilityTrainSettings:
    """Everything one trainability job depends on (the claims are not in it)."""
    t = cfg.trainability
    keys = ("task", "n", "width", "inits", "seeds", "tau", "dt", "substeps", "epochs", "lr", "weight_decay",
            "batch_size", "diagnostic_trials", "initial_state", "checkpoint_every")
    return TrainabilityTrainSettings(**_run(cfg), model=model, depth=depth, activation=activation,
                                     **{k: getattr(t, k) for k in keys})


def flipflop_analysis_settings(cfg: Config, experiment: str) -> FlipflopAnalysisSettings:
    """Everything the attractor analysis of one experiment depends on."""
    exp, data = cfg.flipflop.experiments[experiment], cfg.flipflop.data
    return FlipflopAnalysisSettings(seed=cfg.seed, device=cfg.device, experiment=experiment, task=exp.task,
                                    n_bins=data.n_bins, pulse_width=data.pulse_width, analysis=cfg.flipflop.analysis)


def expressivity_fit_settings(
    cfg: Config, flow: int | None = None, gated: bool | None = None
) -> ExpressivityFitSettings:
    """The sweep restricted to one flow field (index into ``flows``) and gating; None: all of them."""
    sweep = expressivity_sweep(cfg)
    if flow is not None:
        sweep = sweep.model_copy(update={"flows": [sweep.flows[flow]]})
    if gated is not None:
        sweep = sweep.model_copy(update={"gated": [bool(gated)]})
    return ExpressivityFitSettings(**_run(cfg), sweep=sweep)


def run_settings(cfg: Config) -> RunSettings:
    """Device and dtype of the jobs that only run a model."""
    return RunSettings(device=cfg.device, dtype=cfg.dtype)


def figure_settings(cfg: Config) -> FigureSettings:
    return cfg.figures


def flipflop_claims_settings(cfg: Config) -> FlipflopClaimsSettings:
    """The experiments (in the order of the claims job's input lists), their tasks and the thresholds."""
    experiments = cfg.flipflop.experiments
    return FlipflopClaimsSettings(experiments=list(experiments), tasks={n: e.task for n, e in experiments.items()},
                                  thresholds=cfg.flipflop.claims)


def expressivity_sweep(cfg: Config) -> ExpressivitySweep:
    """The sweep without its claims thresholds: the fits and scores do not depend on them."""
    return ExpressivitySweep(**{k: getattr(cfg.expressivity, k) for k in ExpressivitySweep.model_fields})


def trainability_summary_settings(cfg: Config) -> TrainabilitySummarySettings:
    return TrainabilitySummarySettings(epochs=cfg.trainability.epochs, claims=cfg.trainability.claims)


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
    return {"settings": _dump(ffd.data_settings(cfg, task))}


@_plans
def train_flipflop(cfg: Config, experiment: str, model: str) -> dict:
    # N is not a setting: the job takes it as its own argument (one settings dict per model)
    return {"settings": _dump(flipflop_train_settings(cfg, experiment, model))}


@_plans
def evaluate_flipflop(cfg: Config) -> dict:
    return {"run": _dump(run_settings(cfg))}


@_plans
def plot_flipflop(cfg: Config) -> dict:
    return {"figures": _dump(figure_settings(cfg))}


@_plans
def analyse_flipflop_attractors(cfg: Config, experiment: str) -> dict:
    return {"settings": flipflop_analysis_settings(cfg, experiment).model_dump(mode="json")}


@_plans
def plot_flipflop_attractors(cfg: Config) -> dict:
    return {"figures": _dump(figure_settings(cfg))}


@_plans
def plot_flipflop_overview(cfg: Config) -> dict:
    return {"figures": _dump(figure_settings(cfg))}


@_plans
def claims_flipflop(cfg: Config) -> dict:
    return {"settings": _dump(flipflop_claims_settings(cfg))}


# --- expressivity study ---------------------------------------------------------------------


@_plans
def fit_expressivity(cfg: Config, flow: int, gated: int) -> dict:
    return {"settings": _dump(expressivity_fit_settings(cfg, flow, bool(gated)))}


@_plans
def score_expressivity(cfg: Config) -> dict:
    return {"sweep": _dump(expressivity_sweep(cfg)), "thresholds": _dump(cfg.expressivity.claims)}


@_plans
def examples_expressivity(cfg: Config) -> dict:
    return {"settings": _dump(expressivity_fit_settings(cfg))}


@_plans
def plot_expressivity(cfg: Config) -> dict:
    return {"threshold": cfg.expressivity.threshold}


# --- real-world benchmarks ------------------------------------------------------------------


@_plans
def prepare_realworld_data(cfg: Config, task: str) -> dict:
    return {"settings": _dump(rw.data_settings(cfg, task))}


@_plans
def train_realworld(cfg: Config, task: str, model: str) -> dict:
    return {"settings": _dump(realworld_train_settings(cfg, task, model))}


@_plans
def summarise_realworld(cfg: Config) -> dict:
    return {"thresholds": _dump(cfg.realworld.claims)}


@_plans
def plot_realworld(cfg: Config) -> dict:
    return {"figures": _dump(figure_settings(cfg))}


# --- trainability study ---------------------------------------------------------------------


@_plans
def train_trainability(cfg: Config, model: str, depth: int, activation: str) -> dict:
    return {"settings": _dump(trainability_train_settings(cfg, model, depth, activation))}


@_plans
def summarise_trainability(cfg: Config) -> dict:
    return {"settings": _dump(trainability_summary_settings(cfg))}


@_plans
def plot_trainability(cfg: Config) -> dict:
    return {"figures": _dump(figure_settings(cfg)), "compare_epoch": cfg.trainability.claims.compare_epoch}
