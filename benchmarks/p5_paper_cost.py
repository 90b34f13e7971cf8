"""P5: the projected wall time of a profile's training on this machine.

Every training job of a profile (flip-flop, trainability, real-world, expressivity) is listed
with its shape; each distinct shape is timed briefly with the real training code on random data
(``gnode.training.fit`` for one epoch of 1 and of 6 iterations, the least of two runs each: the
difference is the cost of an iteration, the rest the cost of an epoch's overhead; expressivity:
``run_sweep`` for 10 steps, scaled to its steps). A job's seconds are then

    sum over its batch-size groups of  epochs x (iterations per epoch x s/iteration + s/epoch)

plus :data:`STARTUP_S` for its process. The wall time on ``--cores`` cores is that of a
longest-job-first schedule of the jobs over the cores (what Snakemake does with one thread per
job, roughly). Jobs that early stopping may end sooner (real-world) count every epoch: an upper
bound. Jobs other than training (data, fixed-point analysis, figures, report) are not counted:
in the default run they are ~2 of its ~6 minutes.

    python benchmarks/p5_paper_cost.py                              # default, converged, paper
    python benchmarks/p5_paper_cost.py --profile paper=config/paper.yaml --cores 2 --top 15
    python benchmarks/p5_paper_cost.py --device cuda --cores 1      # on a GPU box

Timings are of one thread (``--threads``) with the machine as it is: on a busy machine the
projection is pessimistic by the load.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from gnode import plan, resources  # noqa: E402
from gnode.config import load_config_files  # noqa: E402
from gnode.model_kinds import MODELS  # noqa: E402
from gnode.models import ModelSpec, RecurrentEnsemble  # noqa: E402
from gnode.training import FitSettings, SequenceData, fit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "config" / "config.yaml"
PROFILES = {"default": [], "converged": ["config/converged.yaml"], "paper": ["config/paper.yaml"]}
EVAL_TIMED = 1000  # the most selection-set sequences evaluated while timing a shape
STARTUP_S = 5.0  # Python, torch and pandas import, data load, writing the outputs (measured: 4-6 s per job)
#: (train, val, test) sequences of the full real-world datasets: walker2d counted on
#: ../shared/data/walker2d (9684 / 1272 / 1937 windows of 64); the others: their published sizes
#: split 70 / 15 / 15 (Kidger et al. 2020)
FULL_SPLITS = {
    "walker2d": (9684, 1272, 1937),
    "character_trajectories": (2000, 429, 429),
    "speech_commands": (24500, 5250, 5250),
}


@dataclass(frozen=True)
class Shape:
    """What the cost of one training iteration depends on."""

    spec: ModelSpec
    members: int
    batch: int
    steps: int  # bins per sequence
    n_eval: int  # sequences evaluated for selection (test, or validation)
    select_every: str
    task: str = "regression"
    irregular: bool = False  # SequenceData carries dt (continuous real-world models)


@dataclass
class Group:
    shape: Shape
    epochs: int
    iterations: int  # per epoch


@dataclass
class Job:
    study: str
    label: str
    groups: list[Group] = field(default_factory=list)
    sweep: dict | None = None  # expressivity: the run_sweep settings
    seconds: float = 0.0


# ------------------------------------------------------------------ the jobs of a profile
def flipflop_jobs(cfg) -> list[Job]:
    d, jobs = cfg.flipflop.data, []
    for name, model, n in plan.flipflop_jobs(cfg):
        exp = cfg.flipflop.experiments[name]
        spec, members = resources.flipflop_job_shape(cfg, name, model, n)
        groups = [Group(Shape(spec, members, min(bs, d.n_train), d.n_bins, d.n_trials - d.n_train, exp.select_every),
                        exp.epochs, math.ceil(d.n_train / bs)) for bs in exp.batch_size]
        jobs.append(Job("flipflop", f"{name} {model} N={n}", groups))
    return jobs


def trainability_jobs(cfg) -> list[Job]:
    from gnode.studies import trainability as tr

    if cfg.trainability is None:
        return []
    jobs = []
    for model, depth, act in tr.cells(cfg):
        spec, members, bs, d = resources.trainability_job_shape(cfg, model, depth, act)
        g = Group(Shape(spec, members, bs, d.n_bins, d.n_trials - d.n_train, "epoch"), cfg.trainability.epochs,
                  math.ceil(d.n_train / bs))
        jobs.append(Job("trainability", f"{model} L={depth} {act}", [g]))
    return jobs


def realworld_jobs(cfg) -> list[Job]:
    from gnode.datasets.registry import get_spec

    jobs = []
    for task, t in cfg.realworld.tasks.items():
        full = FULL_SPLITS[t.dataset]
        n_train, n_val, _ = (min(f, lim) if lim is not None else f
                             for f, lim in zip(full, (t.limit.train, t.limit.val, t.limit.test)))
        kind = get_spec(t.dataset).kind
        for model in t.models:
            spec = plan.realworld_train_settings(cfg, task, model).spec
            spec = ModelSpec(**{**spec.to_dict(), "dt": 1.0})  # the timing's data carries no time column
            bs = min(t.batch_size, n_train)
            shape = Shape(spec, len(t.seeds), bs, resources.DATASET_SHAPES[t.dataset][0], n_val, "epoch", kind,
                          MODELS[model].continuous)
            g = Group(shape, t.epochs, math.ceil(n_train / bs))
            jobs.append(Job("realworld", f"{task} {model} N={spec.n_hidden}", [g]))
    return jobs


def expressivity_jobs(cfg) -> list[Job]:
    from gnode.expressivity import flow_label

    s = cfg.expressivity
    return [Job("expressivity", f"{flow_label(f.model_dump())} {'gated' if g else 'non-gated'}",
                sweep=plan.expressivity_fit_settings(cfg, i, g).sweep.model_dump(mode="json"))
            for i, f in enumerate(s.flows) for g in s.gated]


STUDIES = {"flipflop": flipflop_jobs, "trainability": trainability_jobs, "realworld": realworld_jobs,
           "expressivity": expressivity_jobs}


# ------------------------------------------------------------------ timing
def _data(shape: Shape, n: int, steps: int, device, gen) -> SequenceData:
    s = shape.spec
    x = torch.randn(n, steps, s.n_input, generator=gen).to(device)
    if shape.task == "classification":
        y = torch.randint(0, s.n_output, (n,), generator=gen).to(device)
    else:
        y = torch.randn(n, steps, s.n_output, generator=gen).to(device)
    dt = torch.ones(n, steps, device=device) if shape.irregular else None
    return SequenceData(x, y, dt=dt)


def time_shape(shape: Shape, device) -> tuple[float, float]:
    """(seconds per iteration, seconds of per-epoch overhead) of ``shape`` on ``device``."""
    gen = torch.Generator().manual_seed(0)
    T = shape.steps
    # a large selection set checked once per epoch (Speech Commands: 5,250 sequences) is timed at
    # EVAL_TIMED sequences and the epoch's overhead scaled up linearly: evaluation is linear in them
    n_eval = min(shape.n_eval, EVAL_TIMED) if shape.select_every == "epoch" else shape.n_eval
    ev = _data(shape, n_eval, T, device, gen)

    def one(k: int) -> float:
        model = RecurrentEnsemble(shape.spec, list(range(shape.members)), device=device)
        tr = _data(shape, k * shape.batch, T, device, gen)
        fs = FitSettings(epochs=1, batch_size=shape.batch, lr=[1e-3] * shape.members,
                         weight_decay=[0.01] * shape.members, seeds=list(range(shape.members)),
                         select_every=shape.select_every)
        t0 = time.perf_counter()
        fit(model, tr, ev, fs, task=shape.task)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    one(1)  # warm-up: allocator, kernels
    # the least of two runs of each: a busy neighbour only ever adds time
    t1, t6 = min(one(1), one(1)), min(one(6), one(6))
    per_it = max((t6 - t1) / 5, 1e-6)
    return per_it, max(t1 - per_it, 0.0) * shape.n_eval / n_eval


def time_sweep(sweep: dict, device, steps: int = 10) -> float:
    """Seconds of one expressivity job at its configured steps, from a run of ``steps`` steps.

    Scaled linearly: the fixed costs (targets, initialisation, scoring) are a few percent of a
    ten-step run, so the projection leans high.
    """
    from gnode.expressivity import run_sweep

    t0 = time.perf_counter()
    run_sweep({**sweep, "steps": steps}, device=device, dtype=torch.float32, seed=0, log=logging.getLogger("p5"))
    return (time.perf_counter() - t0) * sweep["steps"] / steps


def flops(job: Job) -> tuple[float, float]:
    """(training, selection) flops of ``job``: 2 P per member, sequence and Euler step forward, x 3
    with the backward; selection evaluates its set once per epoch or once per iteration."""
    from gnode.models import parameter_count

    train = select = 0.0
    for g in job.groups:
        s = g.shape
        per = 2 * parameter_count(s.spec) * s.steps * s.spec.substeps * s.members * g.epochs
        train += per * 3 * s.batch * g.iterations
        select += per * s.n_eval * (g.iterations if s.select_every == "iteration" else 1)
    return train, select


def shape_key(shape: Shape) -> str:
    """A stable text key of ``shape`` for the timings file."""
    return json.dumps({**shape.__dict__, "spec": shape.spec.to_dict()}, sort_keys=True)


def schedule(seconds: list[float], cores: int) -> float:
    """Makespan of the longest-first greedy schedule of ``seconds`` on ``cores``."""
    free = [0.0] * cores
    for s in sorted(seconds, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free) if seconds else 0.0


def hours(s: float) -> str:
    return f"{s / 3600:.2f} h" if s >= 3600 else f"{s / 60:.1f} min"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", action="append", default=None,
                    help="NAME=overlay1.yaml,overlay2.yaml (repeatable; default: default, converged, paper)")
    ap.add_argument("--studies", default=",".join(STUDIES), help="comma-separated subset of " + ",".join(STUDIES))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--top", type=int, default=10, help="list the longest jobs of each profile")
    ap.add_argument("--timings", type=Path, default=None,
                    help="a JSON file of timings: read (shapes timed there are not timed again) and written "
                         "after each shape, so that a long projection can be stopped and resumed")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.profile:
        profiles = {p.split("=")[0]: [x for x in p.split("=", 1)[1].split(",") if x] if "=" in p else PROFILES[p]
                    for p in args.profile}
    else:
        profiles = {k: v for k, v in PROFILES.items() if all((ROOT / f).exists() for f in v)}
    studies = args.studies.split(",")
    print(machine(), f"device {device}, projecting on {args.cores} cores")

    cache: dict = json.loads(args.timings.read_text()) if args.timings and args.timings.exists() else {}

    def remember(key, value):
        cache[key] = value
        if args.timings:
            tmp = args.timings.with_suffix(".tmp")
            tmp.write_text(json.dumps(cache, indent=0))
            tmp.replace(args.timings)
    for name, overlays in profiles.items():
        cfg = load_config_files([BASE, *[ROOT / f for f in overlays]])
        jobs = [j for st in studies for j in STUDIES[st](cfg)]
        t_start = time.perf_counter()
        for job in jobs:
            if job.sweep is not None:
                key = "sweep " + json.dumps(job.sweep, sort_keys=True)
                if key not in cache:
                    remember(key, time_sweep(job.sweep, device))
                    print(f"   timed {job.study} {job.label}: {cache[key]:.0f} s", file=sys.stderr, flush=True)
                job.seconds = STARTUP_S + cache[key]
                continue
            total = STARTUP_S
            for g in job.groups:
                key = shape_key(g.shape)
                if key not in cache:
                    remember(key, time_shape(g.shape, device))
                    print(f"   timed {job.study} {job.label}: {g.shape.members} members, batch {g.shape.batch}: "
                          f"{cache[key][0] * 1e3:.1f} ms/iteration + {cache[key][1] * 1e3:.0f} ms/epoch",
                          file=sys.stderr, flush=True)
                per_it, per_epoch = cache[key]
                total += g.epochs * (g.iterations * per_it + per_epoch)
            job.seconds = total
        by_study = {st: sum(j.seconds for j in jobs if j.study == st) for st in studies}
        cpu = sum(by_study.values())
        wall = schedule([j.seconds for j in jobs], args.cores)
        print(f"\n== {name} ({' + '.join(['config.yaml', *overlays])}): {len(jobs)} training jobs, "
              f"timed in {time.perf_counter() - t_start:.0f} s")
        for st, s in by_study.items():
            f = [flops(j) for j in jobs if j.study == st]
            fl = f"   {sum(a for a, _ in f) / 1e15:.2f} + {sum(b for _, b in f) / 1e15:.2f} PFLOP (training + selection)"
            print(f"   {st:13s} {hours(s):>10s} of one core" + (fl if st != "expressivity" else ""))
        print(f"   total         {hours(cpu):>10s} of one core -> {hours(wall)} wall on {args.cores} cores "
              f"(longest job {hours(max(j.seconds for j in jobs))})")
        for j in sorted(jobs, key=lambda j: -j.seconds)[: args.top]:
            its = sum(g.epochs * g.iterations for g in j.groups)
            print(f"     {hours(j.seconds):>9s}  {j.study:12s} {j.label}" + (f"  ({its} iterations)" if its else ""))


if __name__ == "__main__":
    main()
