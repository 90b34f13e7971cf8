"""The trainability study (docs/trainability.md): what critical initialisation and gating do to training.

Grid: model (nODE, gnODE) x depth L of F x nonlinearity of F x initialisation, seeds as ensemble
members, on one flip-flop task with one learning-rate setting. One job per (model, depth,
activation) trains all inits x seeds as one ensemble (the flip-flop study's data and
:func:`gnode.training.fit`), after measuring at initialisation (:mod:`gnode.diagnostics`): eta_max
and the spectrum of the Jacobian of -h + F at h0 with the mean input, the norm of the loss
gradient, and the decay of ||dL/dh_t|| back in time with the loss on the last bin.

Tables (Parquet, schemas below), per job under ``results/trainability/{model}_L{depth}_{activation}/``
and gathered under ``results/trainability/``:

- members: one row per member: its cell, seed, diagnostics at init, best test loss, status;
  gathered, with the epochs to the loss threshold and the test loss at the comparison epoch;
- history: test and train loss per member and epoch (epoch 0: at initialisation);
- propagation: ||dL/dh_t|| and its ratio to the last bin's, per member and bin;
- spectrum: the eigenvalues of the Jacobian of -h + F at init, per member;
- summary: one row per cell (model, depth, activation, init) over the seeds;
- claims: the study's claims rows (:data:`gnode.claims.CLAIMS_SCHEMA`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from gnode import diagnostics, io
from gnode.claims import CLAIMS_SCHEMA, claim, claims_frame
from gnode.config import Config
from gnode.models import ModelSpec, RecurrentEnsemble
from gnode.runtime import DTYPES, derive_seed, resolve_device, stable_id
from gnode.studies import flipflop as ff
from gnode.training import FitSettings, evaluate_loss, fit

logger = logging.getLogger(__name__)

STUDY = "trainability"
CELL = ["model", "depth", "activation", "init"]  # a cell of the grid; its members are the seeds
_KEYS = [("model", pa.string()), ("depth", pa.int32()), ("activation", pa.string()), ("init", pa.string()),
         ("seed", pa.int32()), ("member", pa.int32())]
RAW_MEMBERS_SCHEMA = pa.schema(
    _KEYS
    + [
        ("seed_init", pa.int64()),
        ("eta_max", pa.float64()),  # largest real part of eig(J(-h + F)) at h0, mean input
        ("grad_norm", pa.float64()),  # ||d loss / d parameters|| at init (MSE on every bin)
        ("grad_ratio_first", pa.float64()),  # ||dL/dh_0|| / ||dL/dh_{T-1}||, loss on the last bin
        ("initial_train_loss", pa.float64()),
        ("initial_test_loss", pa.float64()),
        ("zero_output_test_loss", pa.float64()),  # MSE of a silent readout (y = 0) on the test set
        ("status", pa.string()),
        ("diverged_epoch", pa.int32()),
        ("best_epoch", pa.int32()),
        ("best_test_loss", pa.float64()),
        ("n_params", pa.int64()),
        ("train_time_s", pa.float64()),
    ]
)
MEMBERS_SCHEMA = pa.schema(
    list(RAW_MEMBERS_SCHEMA)
    + [
        ("epochs_to_threshold", pa.float64()),  # NaN: never reached within the epochs
        ("compare_loss", pa.float64()),  # test loss at claims.compare_epoch (inf: diverged by then)
    ]
)
HISTORY_SCHEMA = pa.schema(
    _KEYS + [("epoch", pa.int32()), ("train_loss", pa.float64()), ("test_loss", pa.float64()), ("elapsed_s", pa.float64())]
)
PROPAGATION_SCHEMA = pa.schema(
    _KEYS + [("bin", pa.int32()), ("lag", pa.int32()), ("grad_norm", pa.float64()), ("ratio", pa.float64())]
)
SPECTRUM_SCHEMA = pa.schema(_KEYS + [("real", pa.float64()), ("imag", pa.float64())])
SUMMARY_SCHEMA = pa.schema(
    [(k, t) for k, t in _KEYS if k in CELL]
    + [
        ("n_members", pa.int32()),
        ("n_diverged", pa.int32()),
        ("eta_max_median", pa.float64()),
        ("grad_norm_median", pa.float64()),
        ("grad_ratio_first_median", pa.float64()),
        ("best_test_loss_median", pa.float64()),
        ("best_test_loss_min", pa.float64()),
        ("best_test_loss_max", pa.float64()),
        ("compare_loss_median", pa.float64()),
        ("epochs_to_threshold_median", pa.float64()),  # censored at epochs + 1
        ("n_reached", pa.int32()),
    ]
)
JOB_TABLES = {"members": RAW_MEMBERS_SCHEMA, "history": HISTORY_SCHEMA, "propagation": PROPAGATION_SCHEMA,
              "spectrum": SPECTRUM_SCHEMA}


# ------------------------------------------------------------------------- settings
def cells(cfg: Config) -> list[tuple[str, int, str]]:
    """(model, depth, activation) of every training job of the study (none when it is switched off)."""
    t = cfg.trainability
    if t is None:
        return []
    return [(m, d, a) for m in t.models for d in t.depths for a in t.activations]


def job_files(cfg: Config, table: str) -> list[str]:
    """The per-job files of one table (``members``, ``history``, ...) of every cell, in :func:`cells` order."""
    return [f"results/{STUDY}/{m}_L{d}_{a}/{table}.parquet" for m, d, a in cells(cfg)]


def job_settings(cfg: Config, model: str, depth: int, activation: str) -> dict:
    """Everything one job depends on, as plain data (the rule's params; the claims are not in it)."""
    t = cfg.trainability
    keys = ("task", "n", "width", "inits", "seeds", "tau", "dt", "substeps", "epochs", "lr", "weight_decay",
            "batch_size", "diagnostic_trials", "checkpoint_every")
    return {"seed": cfg.seed, "device": cfg.device, "dtype": cfg.dtype, "model": model, "depth": int(depth),
            "activation": activation, **{k: getattr(t, k) for k in keys}}


def model_spec(settings: dict, init: str, channels: int) -> ModelSpec:
    return ModelSpec(
        kind=settings["model"], n_input=channels, n_hidden=settings["n"], n_output=channels, depth=settings["depth"],
        width=settings["width"], activation=settings["activation"], tau=settings["tau"], dt=settings["dt"],
        substeps=settings["substeps"], init=init,
    )


def member_grid(settings: dict) -> pd.DataFrame:
    """The members of one job: init x seed, numbered 0.. (init-major)."""
    rows = [{"init": i, "seed": s} for i in settings["inits"] for s in settings["seeds"]]
    grid = pd.DataFrame(rows)
    grid.insert(0, "member", np.arange(len(grid)))
    return grid


def init_seed(settings: dict, init: str, seed: int) -> int:
    cell = f"{STUDY}/{settings['model']}/L{settings['depth']}/{settings['activation']}/{init}"
    return derive_seed(settings["seed"], seed, stable_id(cell))


def build_ensemble(settings: dict, channels: int, device, dtype) -> tuple[RecurrentEnsemble, pd.DataFrame]:
    """All members of one job in one ensemble: each init's members built by the model's own init rule.

    The ensemble's ``spec`` is that of the first init; the specs differ only in ``init``, which
    matters only when the parameters are drawn.
    """
    grid = member_grid(settings)
    parts = []
    for init, grp in grid.groupby("init", sort=False):
        spec = model_spec(settings, init, channels)
        parts.append(RecurrentEnsemble(spec, [init_seed(settings, init, s) for s in grp["seed"]], device=device,
                                       dtype=dtype))
    grid["seed_init"] = [s for p in parts for s in p.seeds]
    return ff.concat_ensembles(parts), grid


# ------------------------------------------------------------------------- training
def train_job(settings: dict, data_path: str | Path, out: dict[str, str | Path],
              checkpoint_dir: str | Path | None = None) -> None:
    """Diagnose at init, then train, every member of one (model, depth, activation); write ``out[table]``."""
    device, dtype = resolve_device(settings["device"]), DTYPES[settings["dtype"]]
    df = io.read_table(data_path)
    (xtr, ytr), (xte, yte) = ff.arrays(df, "train"), ff.arrays(df, "test")
    to = lambda a: torch.as_tensor(a, device=device, dtype=dtype)  # noqa: E731
    xtr, ytr, xte, yte = to(xtr), to(ytr), to(xte), to(yte)
    model, grid = build_ensemble(settings, xtr.shape[-1], device, dtype)
    e = model.n_members
    label = f"[trainability {settings['model']} L={settings['depth']} {settings['activation']}] "
    logger.info("%s%d members (%s x seeds) on %s, %d epochs", label, e, "/".join(settings["inits"]), device,
                settings["epochs"])

    # diagnostics at initialisation: the flow at h0 with the task's mean input, gradients on trials
    k = min(settings["diagnostic_trials"], xtr.shape[0])
    xd, yd = xtr[:k], ytr[:k]
    spec_all = diagnostics.spectrum(model, x=diagnostics.mean_input(xtr))  # (E, N)
    eta = spec_all.real.max(-1).values
    grad_norm = diagnostics.parameter_grad_norms(model, xd, yd)
    prop = diagnostics.state_gradient_norms(model, xd, yd, last_bin_only=True)  # (E, T)
    ratio = diagnostics.propagation_ratio(prop)
    init_train = evaluate_loss(model, xtr, ytr).cpu().numpy()
    init_test = evaluate_loss(model, xte, yte).cpu().numpy()
    logger.info("%sat init: eta_max %s", label, np.round(eta.cpu().numpy(), 4).tolist())

    fit_settings = FitSettings(
        epochs=settings["epochs"], batch_size=settings["batch_size"], lr=[settings["lr"]] * e,
        weight_decay=[settings["weight_decay"]] * e, seeds=[derive_seed(settings["seed"], s, 1) for s in grid["seed"]],
        checkpoint_every=settings["checkpoint_every"],
    )
    ckpt = Path(checkpoint_dir) / "ensemble.pt" if checkpoint_dir else None
    res = fit(model, (xtr, ytr), (xte, yte), fit_settings, checkpoint=ckpt, fingerprint=io.config_hash(settings),
              label=label)

    keys = grid[["init", "seed", "member"]].assign(model=settings["model"], depth=settings["depth"],
                                                    activation=settings["activation"])
    members = keys.assign(
        seed_init=grid["seed_init"], eta_max=eta.cpu().numpy(), grad_norm=grad_norm.cpu().numpy(),
        grad_ratio_first=ratio[:, 0].cpu().numpy(), initial_train_loss=init_train, initial_test_loss=init_test,
        zero_output_test_loss=yte.double().pow(2).mean().item(),
        status=res.status, diverged_epoch=res.diverged_epoch, best_epoch=res.best_epoch,
        best_test_loss=np.where(np.array(res.status) == "ok", res.best_test_loss, np.nan),
        n_params=model.member_parameter_count(), train_time_s=res.elapsed_s,
    )
    hist = pd.DataFrame(res.history)
    start = pd.DataFrame({"member": grid["member"], "epoch": 0, "train_loss": init_train, "test_loss": init_test,
                          "elapsed_s": 0.0})
    hist = pd.concat([start, hist], ignore_index=True).merge(keys, on="member")
    t = prop.shape[1]
    pr = pd.DataFrame({"member": np.repeat(grid["member"].to_numpy(), t), "bin": np.tile(np.arange(t), e),
                       "grad_norm": prop.cpu().numpy().ravel(), "ratio": ratio.cpu().numpy().ravel()})
    pr["lag"] = t - 1 - pr["bin"]
    pr = pr.merge(keys, on="member")
    n = spec_all.shape[1]
    sp = pd.DataFrame({"member": np.repeat(grid["member"].to_numpy(), n), "real": spec_all.real.cpu().numpy().ravel(),
                       "imag": spec_all.imag.cpu().numpy().ravel()}).merge(keys, on="member")
    prov = io.provenance(settings, device=device)
    for name, table in {"members": members, "history": hist, "propagation": pr, "spectrum": sp}.items():
        schema = JOB_TABLES[name]
        io.write_table(table.sort_values(["member"], kind="stable")[schema.names], out[name], schema, prov)


# -------------------------------------------------------------------------- analysis
def epochs_to_threshold(losses, fraction: float, cap: float = math.inf) -> float:
    """First epoch k >= 1 with ``losses[k] <= fraction * min(losses[0], cap)``; NaN if none.

    ``losses`` (epochs + 1,): the loss at initialisation, then after each epoch. ``cap`` bounds
    the reference loss: an initialisation whose outputs explode (initial loss far above that of a
    silent readout) must not reach the threshold by merely shrinking them. NaN losses (a
    diverged member) never reach the threshold.
    """
    losses = np.asarray(losses, dtype=float)
    if len(losses) < 2 or not np.isfinite(losses[0]):
        return math.nan
    hit = np.flatnonzero(losses[1:] <= fraction * min(losses[0], cap))
    return float(hit[0] + 1) if len(hit) else math.nan


def member_curves(history: pd.DataFrame) -> dict[tuple, np.ndarray]:
    """Test loss per epoch (epoch 0 first) of every member, keyed by (model, depth, activation, init, seed)."""
    out = {}
    for key, g in history.groupby(CELL + ["seed"], sort=False):
        out[key] = g.sort_values("epoch")["test_loss"].to_numpy(float)
    return out


def add_derived(members: pd.DataFrame, history: pd.DataFrame, fraction: float, compare_epoch: int) -> pd.DataFrame:
    """Members with ``epochs_to_threshold`` and ``compare_loss`` (inf when diverged by then).

    The threshold is ``fraction`` x the member's initial test loss, capped at the test loss of a
    silent readout (``zero_output_test_loss``).
    """
    curves = member_curves(history)
    keys = list(members[CELL + ["seed"]].itertuples(index=False, name=None))
    out = members.copy()
    out["epochs_to_threshold"] = [epochs_to_threshold(curves[k], fraction, cap)
                                  for k, cap in zip(keys, members["zero_output_test_loss"])]

    def at(curve):
        v = curve[compare_epoch] if len(curve) > compare_epoch else math.nan
        return v if np.isfinite(v) else math.inf  # no value at that epoch: diverged, counts as worst

    out["compare_loss"] = [at(curves[k]) for k in keys]
    return out


def summarise(members: pd.DataFrame, epochs: int) -> pd.DataFrame:
    """One row per cell over its seeds; epochs to the threshold censored at ``epochs + 1``."""
    rows = []
    for key, g in members.groupby(CELL, sort=True):
        ok = g[g["status"] == "ok"]
        rows.append(
            dict(zip(CELL, key))
            | {
                "n_members": len(g),
                "n_diverged": int((g["status"] != "ok").sum()),
                "eta_max_median": g["eta_max"].median(),
                "grad_norm_median": g["grad_norm"].median(),
                "grad_ratio_first_median": g["grad_ratio_first"].median(),
                "best_test_loss_median": ok["best_test_loss"].median() if len(ok) else math.nan,
                "best_test_loss_min": ok["best_test_loss"].min() if len(ok) else math.nan,
                "best_test_loss_max": ok["best_test_loss"].max() if len(ok) else math.nan,
                "compare_loss_median": float(np.median(g["compare_loss"])),
                "epochs_to_threshold_median": float(np.median(g["epochs_to_threshold"].fillna(epochs + 1))),
                "n_reached": int(g["epochs_to_threshold"].notna().sum()),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_SCHEMA.names)


def _ratio_of_medians(a: pd.Series, b: pd.Series) -> float:
    """median(a) / median(b), NaN when either is empty or both are infinite."""
    if not len(a) or not len(b):
        return math.nan
    ma, mb = float(np.median(a)), float(np.median(b))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(ma, mb))


def claims(members: pd.DataFrame, thresholds: dict, epochs: int) -> pd.DataFrame:
    """The study's claims rows from the members table (with :func:`add_derived` columns).

    ``thresholds``: config ``trainability.claims``. Rows: ``tr_eta_critical_{activation}``,
    ``tr_critical_node``, ``tr_gating_epochs_{init}`` (docs/trainability.md states each).
    """
    th = thresholds
    rows = []
    # 1. the critical rule brings eta_max to 0 (within a tolerance), per nonlinearity
    for act in sorted(members["activation"].unique()):
        crit = members[(members["init"] == "critical") & (members["activation"] == act)]
        value = float(crit["eta_max"].abs().max()) if len(crit) else math.nan
        per_depth = ", ".join(f"L={d}: {v:.2g}" for d, v in crit.groupby("depth")["eta_max"].apply(
            lambda s: s.abs().max()).items())
        xav = members[(members["init"] == "xavier") & (members["activation"] == act)]["eta_max"]
        note = (f"max |eta_max| per depth: {per_depth}; xavier median eta_max {xav.median():.3g}" if len(crit)
                else "no critical members")
        rows.append(claim(
            STUDY, f"tr_eta_critical_{act}", f"critical initialisation brings eta_max to 0 ({act} F)",
            "max |eta_max| over the critical members (nODE and gnODE, all depths, seeds), Jacobian of -h + F at h0 "
            "with the mean input", value, "<=", th["eta_tolerance"], note))
    # 2. critical init lowers the nODE's loss after compare_epoch epochs, for at least one nonlinearity
    node = members[members["model"] == "node"]
    per_act = {}
    for act, g in node.groupby("activation", sort=True):
        logs = []
        for _, gd in g.groupby("depth"):
            r = _ratio_of_medians(gd.loc[gd["init"] == "critical", "compare_loss"],
                                  gd.loc[gd["init"] == "xavier", "compare_loss"])
            logs.append(math.log(r) if r > 0 else (math.nan if math.isnan(r) or r == 0 else math.inf))
        logs = [v for v in logs if not math.isnan(v)]
        per_act[act] = math.exp(sum(logs) / len(logs)) if logs else math.nan
    finite = {a: v for a, v in per_act.items() if not math.isnan(v)}
    best = min(finite, key=finite.get) if finite else None
    value = finite[best] if best else math.nan
    note = "; ".join(f"{a}: {v:.3g}" for a, v in per_act.items()) or "no nODE members with both inits"
    if best:
        note += f"; lowest: {best}" + (" (lower loss with critical)" if value < th["critical_ratio"] else "")
    rows.append(claim(
        STUDY, "tr_critical_node",
        f"critical initialisation lowers the nODE's test loss after {th['compare_epoch']} epochs for at least one "
        "nonlinearity",
        "min over nonlinearities of the geometric mean over depths of median test loss at compare_epoch, "
        "critical / xavier (nODE; diverged members count as infinite loss)", value, "<", th["critical_ratio"], note))
    # 3. gating: gnODE reaches the loss threshold in fewer epochs than nODE, under the same init
    censored = members.assign(e=members["epochs_to_threshold"].fillna(epochs + 1))
    for init in sorted(members["init"].unique()):
        g = censored[censored["init"] == init]
        gn, nd = g[g["model"] == "gnode"], g[g["model"] == "node"]
        value = _ratio_of_medians(gn["e"], nd["e"])
        note = (f"median epochs gnODE {np.median(gn['e']) if len(gn) else math.nan:.3g} "
                f"({int(gn['epochs_to_threshold'].notna().sum())}/{len(gn)} reached), nODE "
                f"{np.median(nd['e']) if len(nd) else math.nan:.3g} "
                f"({int(nd['epochs_to_threshold'].notna().sum())}/{len(nd)} reached); never reached = {epochs + 1}")
        rows.append(claim(
            STUDY, f"tr_gating_epochs_{init}",
            f"gnODE reaches {th['loss_fraction']:g} x its initial test loss in fewer epochs than nODE ({init} init)",
            "median epochs to the threshold, gnODE / nODE (all depths, nonlinearities, seeds)", value, "<",
            th["gating_epochs_ratio"], note))
    return claims_frame(rows)


def summarise_job(cell_dirs: dict[str, list[str]], settings: dict, out: dict[str, str | Path]) -> None:
    """Gather the job tables, add the derived columns, write summary and claims (``settings``:
    ``epochs`` and ``claims``, the thresholds)."""
    tables = {name: pd.concat([io.read_table(p) for p in paths], ignore_index=True)
              for name, paths in cell_dirs.items()}
    th, epochs = settings["claims"], settings["epochs"]
    members = add_derived(tables["members"], tables["history"], th["loss_fraction"], th["compare_epoch"])
    prov = io.provenance(settings)
    io.write_table(members, out["members"], MEMBERS_SCHEMA, prov)
    for name in ("history", "propagation", "spectrum"):
        io.write_table(tables[name], out[name], JOB_TABLES[name], prov)
    summary = summarise(members, epochs)
    io.write_table(summary, out["summary"], SUMMARY_SCHEMA, prov)
    with io.atomic_path(out["html"]) as tmp:
        tmp.write_text(summary.to_html(index=False, float_format=lambda v: f"{v:.3g}"))
    io.write_table(claims(members, th, epochs), out["claims"], CLAIMS_SCHEMA, prov)
