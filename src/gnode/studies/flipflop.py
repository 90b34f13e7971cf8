"""The flip-flop study, one function per workflow step: train, evaluate, summarise (data: flipflop_data).

Tables (all Parquet, schemas below):
- data: one row per (trial, bin, channel) with input and target, and the split;
- history: one row per (member, epoch) with train and test loss;
- evaluation: one row per trained member (grid point and seed) with its best test loss;
- examples: a test trial's targets and each model's output (best member);
- summary: one row per (experiment, model, N).
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from gnode import io
from gnode.config import FlipflopTrainSettings, FlowSettings, IntegrationSettings, RunSettings
from gnode.models import CONTINUOUS_KINDS, ModelSpec, RecurrentEnsemble, input_means, load_model, save_model
from gnode.runtime import DTYPES, derive_seed, resolve_device, stable_id
from gnode.studies.flipflop_data import DATA_SCHEMA, arrays  # noqa: F401 (DATA_SCHEMA: re-exported)
from gnode.training import FitResult, FitSettings, evaluate_loss, fit

logger = logging.getLogger(__name__)

HISTORY_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("model", pa.string()),
        ("n", pa.int32()),
        ("member", pa.int32()),
        ("epoch", pa.int32()),
        ("train_loss", pa.float64()),
        ("test_loss", pa.float64()),
        ("elapsed_s", pa.float64()),
    ]
)
EVAL_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("task", pa.string()),
        ("model", pa.string()),
        ("n", pa.int32()),
        ("member", pa.int32()),
        ("seed", pa.int32()),
        ("lr", pa.float64()),
        ("weight_decay", pa.float64()),
        ("batch_size", pa.int32()),
        ("status", pa.string()),
        ("diverged_epoch", pa.int32()),
        ("best_epoch", pa.int32()),
        ("test_loss", pa.float64()),
        ("train_loss", pa.float64()),
        ("n_params", pa.int64()),
        ("train_time_s", pa.float64()),
    ]
)
EXAMPLE_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("model", pa.string()),
        ("n", pa.int32()),
        ("member", pa.int32()),
        ("trial", pa.int32()),
        ("bin", pa.int32()),
        ("t", pa.float32()),
        ("channel", pa.int8()),
        ("input", pa.float32()),
        ("target", pa.float32()),
        ("output", pa.float32()),
    ]
)
SUMMARY_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("task", pa.string()),
        ("model", pa.string()),
        ("n", pa.int32()),
        ("n_members", pa.int32()),
        ("n_diverged", pa.int32()),
        ("best_test_loss", pa.float64()),
        ("median_test_loss", pa.float64()),
        ("best_lr", pa.float64()),
        ("best_weight_decay", pa.float64()),
        ("best_batch_size", pa.int32()),
        ("n_params", pa.int64()),
    ]
)


# ------------------------------------------------------------------------- training
def model_spec(
    model: str, n: int, channels: int, *, flow: FlowSettings | None, integration: IntegrationSettings,
    initial_state: str,
) -> ModelSpec:
    """The architecture of one (model, N) of an experiment with ``channels`` inputs and outputs.

    ``flow`` is F of node/gnode; rnn, gru and mgru ignore it (their jobs' settings carry none, and
    their spec records the config's default flow, as their model files always have).
    """
    f, g = flow if flow is not None else FlowSettings(), integration
    continuous = model in CONTINUOUS_KINDS
    return ModelSpec(
        kind=model,
        n_input=channels,
        n_hidden=n,
        n_output=channels,
        depth=f.depth,
        width=f.width,
        activation=f.activation,
        tau=g.tau,
        dt=g.dt,
        substeps=g.substeps,
        solver=g.solver if continuous else "native",
        adjoint=g.adjoint if continuous else False,
        rtol=g.rtol,
        atol=g.atol,
        init=g.init,
        initial_state=initial_state,
    )


def member_grid(settings: FlipflopTrainSettings) -> pd.DataFrame:
    """The members one job trains: lr x weight decay x batch size x seed, numbered 0.."""
    s = settings
    rows = [
        {"lr": lr, "weight_decay": wd, "batch_size": bs, "seed": seed}
        for bs, lr, wd, seed in itertools.product(s.batch_size, s.lr, s.weight_decay, s.seeds)
    ]
    grid = pd.DataFrame(rows)
    grid.insert(0, "member", np.arange(len(grid)))
    return grid


def train_job(
    settings: FlipflopTrainSettings,
    n: int,
    data_path: str | Path,
    out_model: str | Path,
    out_history: str | Path,
    checkpoint_dir: str | Path | None = None,
    code: str = "",
) -> None:
    """Train every member of one (experiment, model, N) and save the best parameters of each.

    Members with the same batch size train together as one ensemble; each group checkpoints to
    ``checkpoint_dir`` and resumes from there after a kill.
    """
    s = settings
    experiment, model, base_seed = s.experiment, s.model, s.seed
    device, dtype = resolve_device(s.device), DTYPES[s.dtype]
    df = io.read_table(data_path)
    (xtr, ytr), (xte, yte) = arrays(df, "train"), arrays(df, "test")
    to = lambda a: torch.as_tensor(a, device=device, dtype=dtype)  # noqa: E731
    train, test = (to(xtr), to(ytr)), (to(xte), to(yte))
    spec = model_spec(model, n, xtr.shape[-1], flow=s.flow, integration=s.integration, initial_state=s.initial_state)
    # where init='critical' evaluates the Jacobian: the training inputs' mean (all trials and
    # bins) and the mean first bin (the mean h0 of learned_affine), as the authors' train.jl
    mean_input, mean_first_input = input_means(torch.as_tensor(xtr, dtype=torch.float64))
    grid = member_grid(s)
    label = f"[{experiment} {model} N={n}] "
    # ``code``: the rule's code hash; the settings as the rule's params (plain data)
    fingerprint = io.job_fingerprint(s.model_dump(mode="json"), data_path, code, n=n)
    logger.info("%s%d members on %s (%s), %d epochs", label, len(grid), device, s.dtype, s.epochs)

    groups = []
    for bs, grp in grid.groupby("batch_size", sort=False):
        init_seeds = [derive_seed(base_seed, seed, stable_id(f"{experiment}/{model}/{n}")) for seed in grp["seed"]]
        ens = RecurrentEnsemble(spec, init_seeds, device=device, dtype=dtype, mean_input=mean_input,
                                mean_first_input=mean_first_input)
        ckpt = Path(checkpoint_dir) / f"batch{int(bs)}.pt" if checkpoint_dir else None
        res = fit(ens, train, test, _fit_settings(s, int(bs), grp), checkpoint=ckpt, fingerprint=fingerprint,
                  label=label)
        ens.load_state_dict(res.best_state)
        groups.append(_Group(grp["member"].tolist(), init_seeds, ens, res))
    _save_job(groups, grid, s, n, out_model, out_history, device)


def _fit_settings(settings: FlipflopTrainSettings, batch_size: int, grp: pd.DataFrame) -> FitSettings:
    """The fit settings of one batch-size group of :func:`member_grid` (one row per member)."""
    s = settings
    return FitSettings(
        epochs=s.epochs,
        batch_size=batch_size,
        lr=grp["lr"].tolist(),
        weight_decay=grp["weight_decay"].tolist(),
        seeds=[derive_seed(s.seed, seed, 1) for seed in grp["seed"]],
        checkpoint_every=s.checkpoint_every,
        select_every=s.select_every,
        shuffle=s.shuffle,
    )


@dataclass
class _Group:
    """One trained batch-size group: its members (grid numbers), init seeds, the ensemble at
    its best parameters and the fit result."""

    members: list[int]
    init_seeds: list[int]
    ensemble: RecurrentEnsemble
    result: FitResult

    def member_results(self) -> dict[int, dict]:
        """Per grid member: what the saved model's ``extra["results"]`` records."""
        res = self.result
        return {
            m: {
                "seed_init": self.init_seeds[i],
                "status": res.status[i],
                "diverged_epoch": res.diverged_epoch[i],
                "best_epoch": res.best_epoch[i],
                "best_iteration": res.best_iteration[i],
                "train_time_s": res.elapsed_s,
            }
            for i, m in enumerate(self.members)
        }

    def history_rows(self) -> list[dict]:
        """The fit's history rows, members renumbered to the grid's."""
        return [{**row, "member": self.members[row["member"]]} for row in self.result.history]


def _save_job(
    groups: list[_Group],
    grid: pd.DataFrame,
    settings: FlipflopTrainSettings,
    n: int,
    out_model: str | Path,
    out_history: str | Path,
    device: torch.device,
) -> None:
    """Save the groups as one model, members in grid order, and the history table."""
    experiment, model = settings.experiment, settings.model
    merged = concat_ensembles([g.ensemble for g in groups])
    order = np.argsort(np.concatenate([np.asarray(g.members) for g in groups]))
    merged = merged.select(order.tolist())
    results = {m: r for g in groups for m, r in g.member_results().items()}
    extra = {
        "experiment": experiment,
        "task": settings.task,
        "model": model,
        "n": n,
        "grid": grid.to_dict(orient="list"),
        "results": [results[m] for m in range(len(grid))],
    }
    save_model(merged, out_model, extra=extra)
    hist = pd.DataFrame([row for g in groups for row in g.history_rows()])
    hist.insert(0, "experiment", experiment)
    hist.insert(1, "model", model)
    hist.insert(2, "n", n)
    prov = io.provenance(settings.model_dump(mode="json"), device=device)
    io.write_table(hist.sort_values(["member", "epoch"]), out_history, HISTORY_SCHEMA, prov)


def concat_ensembles(parts: list[RecurrentEnsemble]) -> RecurrentEnsemble:
    """One ensemble holding the members of several of the same spec, in order."""
    first = parts[0]
    seeds = [s for p in parts for s in p.seeds]
    out = RecurrentEnsemble(first.spec, seeds, device=first.W_o.device, dtype=first.W_o.dtype, initialise=False)
    with torch.no_grad():
        for name, p in [*out.named_parameters(), *out.named_buffers()]:  # buffers: a fixed h0
            p.copy_(torch.cat([getattr(q, name) for q in parts]))
    return out


# ------------------------------------------------------------------------ evaluation
def evaluate_job(
    run: RunSettings, model_path: str | Path, data_path: str | Path, out_eval: str | Path, out_examples: str | Path
) -> None:
    """Test loss of every member (best parameters) and one test trial's outputs of the best member."""
    device, dtype = resolve_device(run.device), DTYPES[run.dtype]
    model, extra = load_model(model_path, device=device, dtype=dtype)
    df = io.read_table(data_path)
    (xtr, ytr), (xte, yte) = arrays(df, "train"), arrays(df, "test")
    to = lambda a: torch.as_tensor(a, device=device, dtype=dtype)  # noqa: E731
    test_loss = evaluate_loss(model, to(xte), to(yte)).cpu().numpy()
    train_loss = evaluate_loss(model, to(xtr), to(ytr)).cpu().numpy()
    grid = pd.DataFrame(extra["grid"])
    res = pd.DataFrame(extra["results"])
    ev = pd.DataFrame(
        {
            "experiment": extra["experiment"],
            "task": extra["task"],
            "model": extra["model"],
            "n": extra["n"],
            "member": grid["member"],
            "seed": grid["seed"],
            "lr": grid["lr"],
            "weight_decay": grid["weight_decay"],
            "batch_size": grid["batch_size"],
            "status": res["status"],
            "diverged_epoch": res["diverged_epoch"],
            "best_epoch": res["best_epoch"],
            "test_loss": np.where(res["status"] == "ok", test_loss, np.nan),
            "train_loss": np.where(res["status"] == "ok", train_loss, np.nan),
            "n_params": model.member_parameter_count(),
            "train_time_s": res["train_time_s"],
        }
    )
    prov = io.provenance(run.model_dump(mode="json") | {"model_file": str(model_path)}, device=device)
    io.write_table(ev, out_eval, EVAL_SCHEMA, prov)

    ok = ev[ev["status"] == "ok"]
    best = int(ok.loc[ok["test_loss"].idxmin(), "member"]) if len(ok) else 0
    trial = 0
    with torch.no_grad():
        y, _ = model.select([best])(to(xte[trial : trial + 1]))
    out = y[0, 0].cpu().numpy()
    t, c = out.shape
    b, ch = np.meshgrid(np.arange(t), np.arange(c), indexing="ij")
    ex = pd.DataFrame(
        {
            "experiment": extra["experiment"],
            "model": extra["model"],
            "n": extra["n"],
            "member": best,
            "trial": trial,
            "bin": b.ravel(),
            "t": ((b.ravel() + 1) / t).astype(np.float32),
            "channel": ch.ravel(),
            "input": xte[trial].ravel(),
            "target": yte[trial].ravel(),
            "output": out.ravel(),
        }
    )
    io.write_table(ex, out_examples, EXAMPLE_SCHEMA, prov)


def summarise(evaluations: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, model, N): best and median test loss over members, best grid point."""
    rows = []
    for (exp, task, model, n), g in evaluations.groupby(["experiment", "task", "model", "n"], sort=True):
        ok = g[g["status"] == "ok"]
        best = ok.loc[ok["test_loss"].idxmin()] if len(ok) else None
        rows.append(
            {
                "experiment": exp,
                "task": task,
                "model": model,
                "n": n,
                "n_members": len(g),
                "n_diverged": int((g["status"] == "diverged").sum()),
                "best_test_loss": best["test_loss"] if best is not None else math.nan,
                "median_test_loss": ok["test_loss"].median() if len(ok) else math.nan,
                "best_lr": best["lr"] if best is not None else math.nan,
                "best_weight_decay": best["weight_decay"] if best is not None else math.nan,
                "best_batch_size": int(best["batch_size"]) if best is not None else -1,
                "n_params": int(g["n_params"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


def summarise_job(eval_paths: list[str], out_summary: str | Path, out_html: str | Path | None = None):
    """Gather the evaluation tables into the summary table (Parquet, and HTML for reading)."""
    ev = pd.concat([io.read_table(p) for p in eval_paths], ignore_index=True)
    summary = summarise(ev)
    io.write_table(summary, out_summary, SUMMARY_SCHEMA, io.provenance({"inputs": sorted(map(str, eval_paths))}))
    if out_html:
        with io.atomic_path(out_html) as tmp:
            tmp.write_text(summary.to_html(index=False, float_format=lambda v: f"{v:.3g}"))
    return summary
