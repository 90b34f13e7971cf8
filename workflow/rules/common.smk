# The only place that reads the configuration: validate it before any job is planned, and
# derive the job lists and per-rule settings from the typed result.
import os
from pathlib import Path

from snakemake.logging import logger

from gnode import plan
from gnode import resources as resources_est
from gnode.codegraph import script_hashes
from gnode.config import ConfigError, cli_overrides, load_config_file, merge_config, validate_config
from gnode.models import MODEL_KINDS
from gnode.runtime import check_device
from gnode.studies import flipflop_analysis as ffa
from gnode.studies import trainability as tr

# Snakemake has merged the files already; reading each again with the strict loader refuses
# what Snakemake lets through (a key given twice: the last would win) and names the file.
CONFIG_FILES = [os.path.relpath(p) for p in workflow.configfiles]
try:
    for _path in CONFIG_FILES:
        load_config_file(_path)
    _source = ", ".join(CONFIG_FILES) + (" and --config or profile values" if workflow.config_settings.config else "")
    # nested --config values arrive as text from Snakemake ("60"): give them their YAML types
    CFG = validate_config(merge_config(config, cli_overrides(workflow.config_settings.config)), _source or None)
    # cuda/mps asked for and absent: an error now, before any job; auto: the log says what it chose
    # (a cluster executor plans on a login node: each job checks again where it runs)
    DEVICE = check_device(CFG.device, log=logger.info, here=workflow.local_exec)
except (ConfigError, RuntimeError) as err:
    raise WorkflowError(str(err)) from None

EXPERIMENTS = CFG.flipflop.experiments
REALWORLD = CFG.realworld.tasks
FIG_FORMATS = list(CFG.figures.formats)
EXTRA_FORMATS = [f for f in FIG_FORMATS if f != "png"]
# a job asks for the GPU resource only when it will use one, so that CPU runs are not serialised
USES_GPU = int(DEVICE.type == "cuda")

# Snakemake does not see changes inside the imported package: each rule carries the hash of
# every gnode module its script can import (read from the import graph, gnode.codegraph), so
# editing a module re-runs exactly the jobs that run it. Keyed by the script's name.
CODE = script_hashes(Path(workflow.basedir) / "workflow" / "scripts")
# memory (MB) of the real-world data jobs per dataset (decoding the raw files, not modelled by
# gnode.resources): Speech Commands holds ~35k clips x 161 x 20
REALWORLD_DATA_MEM = {"walker2d": 2000, "character_trajectories": 2000, "speech_commands": 8000}

# Plan-time memory estimate of every training job (gnode.resources): a job that cannot fit this
# machine stops the workflow now, with the numbers; the others get it as their mem_mb.
try:
    _ESTIMATES = {
        **{
            ("flipflop", e, m, n): resources_est.flipflop_estimate(CFG, e, m, n)
            for e, exp in EXPERIMENTS.items()
            for m in exp.models
            for n in exp.sizes_of(m)
        },
        **{
            ("realworld", t, m): resources_est.realworld_estimate(CFG, t, m)
            for t, spec in REALWORLD.items()
            for m in spec.models
        },
        **{("trainability", *cell): resources_est.trainability_estimate(CFG, *cell) for cell in tr.cells(CFG)},
    }
    if workflow.local_exec:  # a cluster's nodes are not this machine: mem_mb asks them
        _labelled = {f"{k[0]} training " + " ".join(map(str, k[1:])): v for k, v in _ESTIMATES.items()}
        resources_est.check_fit(_labelled, DEVICE)
except (MemoryError, ValueError) as err:  # ValueError: no hidden size matches a real-world budget
    raise WorkflowError(str(err)) from None


def train_mem_mb(*key):
    """mem_mb of a training job: its estimate (4000 for a job outside the configuration)."""
    est = _ESTIMATES.get(key)
    return est.mem_mb(on_gpu=bool(USES_GPU)) if est is not None else 4000


def train_runtime_min(study, *key):
    """runtime (minutes) of a training job: every epoch at the measured CPU cost, x a margin."""
    try:
        return resources_est.TRAINING_JOBS[study][1](CFG, *key)
    except KeyError:  # a job outside the configuration
        return 240


# claims files of the study parts; each study's rule file appends its own
CLAIMS_FILES = []


wildcard_constraints:
    experiment=r"[A-Za-z0-9][A-Za-z0-9_]*",
    task=r"[0-9a-z_]+",
    model="|".join(MODEL_KINDS),
    n=r"\d+",


def planned(rule, param):
    """A rule's params value, planned by gnode.plan from the config and the job's wildcards
    (``python -m gnode <job> --config ...`` plans with the same function)."""
    return lambda w: plan.job_params(rule, CFG, w)[param]


def flipflop_files(kind, experiment=None):
    """Paths of one kind of per-job file (model.pt, evaluation.parquet, ...) of the flip-flop study."""
    return [f"results/flipflop/{e}/{m}_N{n}/{kind}" for e, m, n in plan.flipflop_jobs(CFG, experiment)]


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
    return [f"results/realworld/{t}/{m}/{kind}" for t, m in plan.realworld_jobs(CFG, task)]


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
    return (
        [f"results/trainability/{t}.parquet" for t in tables]
        + ["results/trainability/summary.html"]
        + [f"results/figures/trainability/{name}.png" for name in ["learning_curves", "init", "final_loss"]]
    )


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
