"""One function per workflow rule: settings in, paths in, paths out.

Each workflow script calls one of these (``gnode.jobs.train_flipflop(...)``), and
``python -m gnode train-flipflop ...`` runs the same function by hand (:mod:`gnode.__main__`).
A job's arguments, by kind:

- before ``*``: its settings (the rule's ``params``, planned from the config by :mod:`gnode.plan`;
  ``settings``, ``run``, ``figures``, ...) and the wildcards it needs (``n``), in that order; a
  job validates each settings argument once (``validate_job_settings``), into its class in
  :mod:`gnode.config` (or :mod:`gnode.strict`, for the jobs that must not import the config; a
  plain value by its type), and hands the typed object to the study or plotting function;
- keyword ``out_<name>``: the output files (the rule's ``output.<name>``);
- other keyword arguments: the input files (``Paths``: a list of them); ``checkpoints`` (folder
  to resume from) and ``code`` (the code hash that a checkpoint must match) for the training jobs.

Every job imports its study module inside the function: :mod:`gnode.codegraph` follows this
module per function, so a job's code hash covers only what that job runs. Keep top-level code
here to definitions and registration.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PathLike = str | Path
Paths = list[PathLike]  # an input given as a list of files


@dataclass(frozen=True)
class Job:
    """A registered job: the rule it implements and its arguments by kind (read from the signature)."""

    name: str  # the rule and its script (train_flipflop); the command is train-flipflop
    run: Callable
    wildcards: dict[str, type]  # the rule's wildcards its settings are planned from (gnode.plan), and n
    params: tuple[str, ...]  # settings arguments, planned from the config
    takes: tuple[str, ...]  # wildcards passed to the function (after the settings)
    inputs: tuple[str, ...]
    lists: tuple[str, ...]  # inputs that are lists of files
    outputs: tuple[str, ...]  # without the out_ prefix
    resumable: bool  # takes checkpoints and code

    @property
    def command(self) -> str:
        return self.name.replace("_", "-")

    @property
    def summary(self) -> str:
        """The first paragraph of the job function's docstring, on one line."""
        return " ".join((self.run.__doc__ or self.name).strip().split("\n\n")[0].split())


#: rule name -> Job, in the order of the workflow
JOBS: dict[str, Job] = {}


def job(**wildcards: type):
    """Register a job function under its name; ``wildcards``: the rule's wildcards (with their
    types) that its settings are planned from or that it takes itself.

    Returns the function itself (registration only: a job runs exactly its function body)."""

    def register(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        positional = [p.name for p in sig.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        keyword = [p for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]
        inputs = [p.name for p in keyword if not p.name.startswith("out_") and p.name not in ("checkpoints", "code")]
        JOBS[fn.__name__] = Job(
            name=fn.__name__,
            run=fn,
            wildcards=dict(wildcards),
            params=tuple(n for n in positional if n not in wildcards),
            takes=tuple(n for n in positional if n in wildcards),
            inputs=tuple(inputs),
            lists=tuple(p.name for p in keyword if p.name in inputs and p.annotation == "Paths"),
            outputs=tuple(p.name.removeprefix("out_") for p in keyword if p.name.startswith("out_")),
            resumable="checkpoints" in sig.parameters,
        )
        return fn

    return register


def _concat(paths: Paths):
    """One DataFrame of the tables at ``paths`` (rows in order)."""
    import pandas as pd

    from gnode.io import read_table

    return pd.concat([read_table(p) for p in paths], ignore_index=True)


def _figure_options(figures: dict) -> dict:
    """The keyword arguments every figure function takes from the config's ``figures`` (validated
    here: gnode.strict, which the figure jobs import instead of gnode.config)."""
    from gnode.strict import FigureSettings, validate_job_settings

    typed = validate_job_settings(FigureSettings, figures)
    return {"formats": list(typed.formats), "dpi": typed.dpi}


# --- flip-flop study ------------------------------------------------------------------------


@job(task=str)
def prepare_flipflop_data(settings: dict, *, out_data: PathLike) -> None:
    """Generate one flip-flop task's trials (one row per trial x bin x channel)."""
    from gnode.strict import FlipflopDataSettings, validate_job_settings  # not gnode.config: see gnode.strict
    from gnode.studies import flipflop_data

    flipflop_data.prepare_data(validate_job_settings(FlipflopDataSettings, settings), out_data)


@job(experiment=str, model=str, n=int)
def train_flipflop(
    settings: dict,
    n: int,
    *,
    data: PathLike,
    out_model: PathLike,
    out_history: PathLike,
    checkpoints: PathLike | None = None,
    code: str = "",
) -> None:
    """Train one (experiment, model, N) as an ensemble over the grid and seeds (best parameters, history)."""
    from gnode.config import FlipflopTrainSettings, validate_job_settings
    from gnode.studies import flipflop

    typed = validate_job_settings(FlipflopTrainSettings, settings)
    flipflop.train_job(typed, n, data, out_model, out_history, checkpoint_dir=checkpoints, code=code)


@job()  # its settings do not depend on the wildcards (and --model names its model file)
def evaluate_flipflop(
    run: dict, *, model: PathLike, data: PathLike, out_evaluation: PathLike, out_examples: PathLike
) -> None:
    """Evaluate one trained flip-flop ensemble: test loss per member, one example trial."""
    from gnode.config import RunSettings, validate_job_settings
    from gnode.studies import flipflop

    flipflop.evaluate_job(validate_job_settings(RunSettings, run), model, data, out_evaluation, out_examples)


@job()
def summarise_flipflop(*, evaluations: Paths, out_summary: PathLike, out_html: PathLike) -> None:
    """Gather every flip-flop evaluation into the summary table."""
    from gnode.studies import flipflop

    flipflop.summarise_job(list(evaluations), out_summary, out_html)


@job()
def plot_flipflop(
    figures: dict,
    *,
    evaluations: Paths,
    examples: Paths,
    histories: Paths,
    out_test_loss: PathLike,
    out_example: PathLike,
    out_learning_curves: PathLike,
) -> None:
    """Draw the flip-flop figures of one experiment: test loss per model, an example trial, learning curves."""
    from gnode.plotting import flipflop as plots

    opts = _figure_options(figures)
    plots.test_loss_per_model(_concat(evaluations), out_test_loss, **opts)
    plots.example_trial(_concat(examples), out_example, **opts)
    plots.learning_curves(_concat(histories), out_learning_curves, **opts)


@job(experiment=str)
def analyse_flipflop_attractors(
    settings: dict,
    *,
    models: Paths,
    evaluations: Paths,
    data: PathLike,
    out_fixed_points: PathLike,
    out_trajectories: PathLike,
    out_speed_grid: PathLike,
    out_gates: PathLike,
    out_memory: PathLike,
    out_memory_curve: PathLike,
) -> None:
    """Attractor analysis of one experiment: fixed/slow points, memory test, gates (``models``
    and ``evaluations`` parallel, one per model x N)."""
    from gnode.config import FlipflopAnalysisSettings, validate_job_settings
    from gnode.studies import flipflop_analysis

    outputs = {
        "fixed_points": out_fixed_points, "trajectories": out_trajectories, "speed_grid": out_speed_grid,
        "gates": out_gates, "memory": out_memory, "memory_curve": out_memory_curve,
    }
    typed = validate_job_settings(FlipflopAnalysisSettings, settings)
    flipflop_analysis.analyse_job(typed, list(models), list(evaluations), data, outputs)


@job()
def plot_flipflop_attractors(
    figures: dict,
    *,
    fixed_points: PathLike,
    trajectories: PathLike,
    speed_grid: PathLike,
    gates: PathLike,
    memory: PathLike,
    memory_curve: PathLike,
    out_attractors: PathLike,
    out_memory: PathLike,
    out_gates: PathLike,
) -> None:
    """Draw the attractor figures of one experiment: phase portraits, memory test, gates."""
    from gnode.io import read_table
    from gnode.plotting import attractors as plots

    opts = _figure_options(figures)
    plots.attractor_figure(read_table(fixed_points), read_table(trajectories), read_table(speed_grid), out_attractors,
                           **opts)
    plots.memory_figure(read_table(memory), read_table(memory_curve), out_memory, **opts)
    plots.gates_figure(read_table(gates), out_gates, **opts)


@job()
def plot_flipflop_overview(figures: dict, *, evaluations: Paths, out_test_loss: PathLike) -> None:
    """Draw the test loss of every model on every flip-flop task (one panel per experiment)."""
    from gnode.plotting import flipflop as plots

    opts = _figure_options(figures)
    plots.test_loss_per_model(_concat(evaluations), out_test_loss, **opts)


@job()
def claims_flipflop(
    settings: dict,
    *,
    summary: PathLike,
    fixed_points: Paths,
    memory: Paths,
    data: Paths,
    out_claims: PathLike,
    out_html: PathLike,
) -> None:
    """Test the flip-flop findings: one claims row per finding and experiment (the lists
    parallel to the settings' ``experiments``)."""
    from gnode.config import FlipflopClaimsSettings, validate_job_settings
    from gnode.studies import flipflop_claims

    typed = validate_job_settings(FlipflopClaimsSettings, settings)
    flipflop_claims.claims_job(typed, summary, list(fixed_points), list(memory), list(data), out_claims, out_html)


# --- expressivity study ---------------------------------------------------------------------


@job(flow=int, gated=int)
def fit_expressivity(settings: dict, *, out_fits: PathLike) -> None:
    """Fit one flow field x gating of the expressivity sweep (all N batched)."""
    from gnode.config import ExpressivityFitSettings, validate_job_settings
    from gnode.studies import expressivity

    typed = validate_job_settings(ExpressivityFitSettings, settings)
    expressivity.fit_job(typed, out_fits)


@job()
def score_expressivity(
    sweep: dict, thresholds: dict, *, fits: Paths, out_scores: PathLike, out_claims: PathLike
) -> None:
    """Score the expressivity sweep: K* and AUC per class, and the claims rows."""
    from gnode.config import ExpressivityClaims, ExpressivitySweep, validate_job_settings
    from gnode.studies import expressivity_scores

    expressivity_scores.score_job(validate_job_settings(ExpressivitySweep, sweep),
                                  validate_job_settings(ExpressivityClaims, thresholds), list(fits), out_scores,
                                  out_claims)


@job()
def examples_expressivity(settings: dict, *, out_examples: PathLike) -> None:
    """Fit the example panel of the expressivity figures (a few classes, target 0 per K)."""
    from gnode.config import ExpressivityFitSettings, validate_job_settings
    from gnode.studies import expressivity

    typed = validate_job_settings(ExpressivityFitSettings, settings)
    expressivity.examples_job(typed, out_examples)


@job()
def plot_expressivity(
    threshold: float | str,
    *,
    fits: Paths,
    scores: PathLike,
    examples: PathLike,
    out_heatmaps: PathLike,
    out_iso: PathLike,
    out_params: PathLike,
    out_r2: PathLike,
    out_examples: PathLike,
) -> None:
    """Draw the expressivity figures: score heatmaps, iso-expressivity, score vs parameters, R2(K), examples."""
    from gnode.config import Threshold, validate_job_settings
    from gnode.plotting import expressivity

    out = {"heatmaps": out_heatmaps, "iso": out_iso, "params": out_params, "r2": out_r2, "examples": out_examples}
    expressivity.plot_job(list(fits), scores, examples, out, validate_job_settings(Threshold, threshold, "threshold"))


# --- real-world benchmarks ------------------------------------------------------------------


@job(task=str)
def prepare_realworld_data(settings: dict, *, out_data: PathLike) -> None:
    """Prepare one real-world task's data (local copy, else download) as one Parquet table."""
    from gnode.config import RealworldDataSettings, validate_job_settings
    from gnode.studies import realworld

    realworld.prepare_data(validate_job_settings(RealworldDataSettings, settings), out_data)


@job(task=str, model=str)
def train_realworld(
    settings: dict,
    *,
    data: PathLike,
    out_model: PathLike,
    out_history: PathLike,
    out_evaluation: PathLike,
    checkpoints: PathLike | None = None,
    code: str = "",
) -> None:
    """Train one (task, model) of the real-world benchmarks over all seeds; test at the best parameters."""
    from gnode.config import RealworldTrainSettings, validate_job_settings
    from gnode.studies import realworld

    typed = validate_job_settings(RealworldTrainSettings, settings)
    realworld.train_job(typed, data, out_model, out_history, out_evaluation, checkpoint_dir=checkpoints, code=code)


@job()
def summarise_realworld(
    thresholds: dict, *, evaluations: Paths, out_summary: PathLike, out_claims: PathLike, out_html: PathLike
) -> None:
    """Gather the real-world evaluations into the summary (mean and sd over seeds) and claims tables."""
    from gnode.config import RealWorldClaims, validate_job_settings
    from gnode.studies import realworld_summary

    typed = validate_job_settings(RealWorldClaims, thresholds)
    realworld_summary.summarise_job(typed, list(evaluations), out_summary, out_claims, out_html)


@job()
def plot_realworld(figures: dict, *, evaluations: Paths, histories: Paths, out_figure: PathLike) -> None:
    """Draw the figure of one real-world task: test metric per model over seeds, validation curves."""
    from gnode.plotting import realworld as plots

    opts = _figure_options(figures)
    plots.task_figure(_concat(evaluations), _concat(histories), out_figure, **opts)


# --- trainability study ---------------------------------------------------------------------


@job(model=str, depth=int, activation=str)
def train_trainability(
    settings: dict,
    *,
    data: PathLike,
    out_members: PathLike,
    out_history: PathLike,
    out_propagation: PathLike,
    out_spectrum: PathLike,
    checkpoints: PathLike | None = None,
    code: str = "",
) -> None:
    """Diagnose at initialisation, then train, every member (init x seed) of one (model, depth, activation)."""
    from gnode.config import TrainabilityTrainSettings, validate_job_settings
    from gnode.studies import trainability

    out = {"members": out_members, "history": out_history, "propagation": out_propagation, "spectrum": out_spectrum}
    typed = validate_job_settings(TrainabilityTrainSettings, settings)
    trainability.train_job(typed, data, out, checkpoint_dir=checkpoints, code=code)


@job()
def summarise_trainability(
    settings: dict,
    *,
    members: Paths,
    history: Paths,
    propagation: Paths,
    spectrum: Paths,
    out_members: PathLike,
    out_history: PathLike,
    out_propagation: PathLike,
    out_spectrum: PathLike,
    out_summary: PathLike,
    out_html: PathLike,
    out_claims: PathLike,
) -> None:
    """Gather the trainability jobs' tables (one file per job each); add epochs to the threshold;
    write the summary and the claims."""
    from gnode.config import TrainabilitySummarySettings, validate_job_settings
    from gnode.studies import trainability_summary

    inputs = {"members": list(members), "history": list(history), "propagation": list(propagation),
              "spectrum": list(spectrum)}
    out = {"members": out_members, "history": out_history, "propagation": out_propagation, "spectrum": out_spectrum,
           "summary": out_summary, "html": out_html, "claims": out_claims}
    typed = validate_job_settings(TrainabilitySummarySettings, settings)
    trainability_summary.summarise_job(inputs, typed, out)


@job()
def plot_trainability(
    figures: dict,
    compare_epoch: int,
    *,
    members: PathLike,
    history: PathLike,
    propagation: PathLike,
    out_learning_curves: PathLike,
    out_init: PathLike,
    out_final_loss: PathLike,
) -> None:
    """Draw the trainability figures: learning curves, diagnostics at init, final loss per cell."""
    from gnode.io import read_table
    from gnode.plotting import trainability as plots
    from gnode.strict import PosInt, validate_job_settings

    opts = _figure_options(figures)
    epoch = validate_job_settings(PosInt, compare_epoch, "compare_epoch")
    members_table = read_table(members)
    plots.learning_curves(read_table(history), out_learning_curves, compare_epoch=epoch, **opts)
    plots.init_diagnostics(members_table, read_table(propagation), out_init, **opts)
    plots.final_loss(members_table, out_final_loss, **opts)


# --- the whole study ------------------------------------------------------------------------


@job()
def gather_claims(*, claims: Paths, out_table: PathLike, out_html: PathLike) -> None:
    """Gather the claims rows of every study part (results/claims.parquet and its HTML view)."""
    from gnode.claims import gather_job

    gather_job(list(claims), out_table, out_html)
