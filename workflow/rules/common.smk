# The only place that reads the configuration: validate it before any job is planned, and
# derive the job lists and per-rule settings from the typed result.
from pathlib import Path

import torch

from gnode.config import ConfigError, validate_config
from gnode.models import MODEL_KINDS
from gnode.codegraph import script_hashes
from gnode.studies import expressivity as ex_study
from gnode.studies import flipflop as ff
from gnode.studies import flipflop_analysis as ffa
from gnode.studies import flipflop_data as ffd
from gnode.studies import realworld as rw
from gnode.studies import trainability as tr


try:
    CFG = validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

EXPERIMENTS = CFG.flipflop.experiments
REALWORLD = CFG.realworld.tasks
FIG_FORMATS = list(CFG.figures.formats)
EXTRA_FORMATS = [f for f in FIG_FORMATS if f != "png"]
RUN = {"device": CFG.device, "dtype": CFG.dtype}
# a job asks for the GPU resource only when it will use one, so that CPU runs are not serialised
USES_GPU = int(CFG.device == "cuda" or (CFG.device == "auto" and torch.cuda.is_available()))

# Snakemake does not see changes inside the imported package: each rule carries the hash of
# every gnode module its script can import (read from the import graph, gnode.codegraph), so
# editing a module re-runs exactly the jobs that run it. Keyed by the script's name.
CODE = script_hashes(Path(workflow.basedir) / "workflow" / "scripts")
# memory (MB) of the real-world jobs per dataset: Speech Commands holds ~35k clips x 161 x 20
REALWORLD_DATA_MEM = {"walker2d": 2000, "character_trajectories": 2000, "speech_commands": 8000}
REALWORLD_TRAIN_MEM = {"walker2d": 4000, "character_trajectories": 4000, "speech_commands": 16000}

# claims files of the study parts; each study's rule file appends its own
CLAIMS_FILES = []


wildcard_constraints:
    experiment=r"[A-Za-z0-9][A-Za-z0-9_]*",
    task=r"[0-9a-z_]+",
    model="|".join(MODEL_KINDS),
    n=r"\d+",


def flipflop_jobs(experiment=None):
    """(experiment, model, n) of every flip-flop training job."""
    return [
        (name, m, n)
        for name, exp in EXPERIMENTS.items()
        if experiment in (None, name)
        for m in exp.models
        for n in exp.sizes_of(m)
    ]


def flipflop_files(kind, experiment=None):
    """Paths of one kind of per-job file (model.pt, evaluation.parquet, ...) of the flip-flop study."""
    return [f"results/flipflop/{e}/{m}_N{n}/{kind}" for e, m, n in flipflop_jobs(experiment)]


FLIPFLOP_ANALYSIS_TABLES = list(ffa.SCHEMAS)  # fixed_points, trajectories, speed_grid, gates, memory, memory_curve
FLIPFLOP_ANALYSIS_FIGURES = ["attractors", "memory", "gates"]


def flipflop_analysis(table, experiments=None):
    """Paths of one analysis table (fixed_points.parquet, ...) of the given (default: all) experiments."""
    return [f"results/flipflop/{e}/attractors/{table}.parquet" for e in (experiments or EXPERIMENTS)]


def flipflop_figures():
    names = ["test_loss", "example", "learning_curves", *FLIPFLOP_ANALYSIS_FIGURES]
    return [f"results/figures/flipflop/{e}_{name}.png" for e in EXPERIMENTS for name in names] + [
        "results/figures/flipflop/test_loss_all_tasks.png"
    ]


def realworld_files(kind, task=None):
    """Paths of one kind of per-job file (evaluation.parquet, ...) of the real-world benchmarks."""
    return [
        f"results/realworld/{t}/{m}/{kind}"
        for t, spec in REALWORLD.items()
        if task in (None, t)
        for m in spec.models
    ]


def realworld_outputs():
    if not REALWORLD:
        return []
    figures = [f"results/figures/realworld/{t}.png" for t in REALWORLD]
    return [
        "results/realworld/summary.parquet",
        "results/realworld/claims.parquet",
        "results/realworld/summary.html",
        *figures,
    ]


def trainability_outputs():
    if CFG.trainability is None:
        return []
    tables = ["members", "history", "propagation", "spectrum", "summary", "claims"]
    return [f"results/trainability/{t}.parquet" for t in tables] + ["results/trainability/summary.html"] + [
        f"results/figures/trainability/{name}.png" for name in ["learning_curves", "init", "final_loss"]
    ]


def final_outputs():
    return [
        "results/flipflop/summary.parquet",
        "results/flipflop/summary.html",
        "results/flipflop/claims.parquet",
        "results/flipflop/claims.html",
        *flipflop_figures(),
        *realworld_outputs(),
        *trainability_outputs(),
        *[f"results/figures/expressivity/{name}.png" for name in ["heatmaps", "iso", "params", "r2", "examples"]],
        "results/claims.parquet",
        "results/claims.html",
    ]
