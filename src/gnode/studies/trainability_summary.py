"""The trainability study's last step: gather the jobs' tables, derive each member's statistics
(epochs to the loss threshold, loss at the comparison epoch), summarise per cell, and the claims.

Apart from the training jobs (:mod:`gnode.studies.trainability`) so that editing the statistics
or the claims re-runs no training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gnode import io
from gnode.claims import CLAIMS_SCHEMA, claim, claims_frame
from gnode.studies.trainability import CELL, JOB_TABLES, MEMBERS_SCHEMA, STUDY, SUMMARY_SCHEMA

if TYPE_CHECKING:  # typing only: the job validates its settings (gnode.jobs); this module reads them
    from gnode.config import TrainabilitySummarySettings


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


def trainability_claims(members: pd.DataFrame, thresholds: Mapping, *, epochs: int) -> pd.DataFrame:
    """The trainability claims rows (:mod:`gnode.claims`) from the members table (with the
    :func:`add_derived` columns).

    ``thresholds``: config ``trainability.claims``; ``epochs``: training epochs (a member that
    never reaches the loss threshold counts as ``epochs + 1``). Rows:
    ``tr_eta_critical_{activation}``, ``tr_critical_node``, ``tr_gating_epochs_{init}``
    (docs/trainability.md states each).
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


def summarise_job(cell_dirs: dict[str, list[str]], settings: TrainabilitySummarySettings,
                  out: dict[str, str | Path]) -> None:
    """Gather the job tables, add the derived columns, write summary and claims."""
    tables = {name: pd.concat([io.read_table(p) for p in paths], ignore_index=True)
              for name, paths in cell_dirs.items()}
    th, epochs = settings.claims, settings.epochs
    members = add_derived(tables["members"], tables["history"], th.loss_fraction, th.compare_epoch)
    prov = io.provenance(settings.model_dump(mode="json"))
    io.write_table(members, out["members"], MEMBERS_SCHEMA, prov)
    for name in ("history", "propagation", "spectrum"):
        io.write_table(tables[name], out[name], JOB_TABLES[name], prov)
    summary = summarise(members, epochs)
    io.write_table(summary, out["summary"], SUMMARY_SCHEMA, prov)
    with io.atomic_path(out["html"]) as tmp:
        tmp.write_text(summary.to_html(index=False, float_format=lambda v: f"{v:.3g}"))
    io.write_table(trainability_claims(members, th.model_dump(), epochs=epochs), out["claims"], CLAIMS_SCHEMA, prov)
