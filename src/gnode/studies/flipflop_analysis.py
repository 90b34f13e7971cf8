"""Attractor analysis of one flip-flop experiment's trained models (one workflow job).

For every (model, N) of the experiment: the fixed and slow points of the best member (by test
loss) at zero input, its states on test trials, the speed of the flow on a grid of the plane
(N = 2), the gates along trajectories and at the slow points (gated models), and the memory
test of every member. Tables (Parquet, schemas below), all keyed by experiment, model, N:

- fixed_points: one row per unique fixed/slow point of the best member;
- trajectories: one row per (test trial, bin) of the best member;
- speed_grid: one row per grid point of the phase plane (models with N = 2 only);
- gates: one row per (source, trial, bin or point) of a gated model, z of every unit as a list;
- memory: one row per member, the memory-test statistics (error against the stored value and
  drift after settling);
- memory_curve: one row per (member, time sample), drift and error over the free run.

Plot coordinates (``coord_0..2``) are the state for N <= 3, else the first principal components
of the best member's test-trial states (``basis`` says which).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from gnode import attractors as att
from gnode import io
from gnode.config import FlipflopAnalysisSettings
from gnode.fixed_points import FixedPoints
from gnode.models import RecurrentEnsemble, load_model
from gnode.runtime import derive_seed, resolve_device, stable_id
from gnode.studies.flipflop_data import arrays

logger = logging.getLogger(__name__)

_KEY = [("experiment", pa.string()), ("task", pa.string()), ("model", pa.string()), ("n", pa.int32()),
        ("member", pa.int32())]
_COORDS = [("basis", pa.string()), ("coord_0", pa.float64()), ("coord_1", pa.float64()), ("coord_2", pa.float64())]
FLOATS = pa.list_(pa.float64())

FIXED_POINTS_SCHEMA = pa.schema(
    _KEY
    + [
        ("point_id", pa.int32()),
        ("speed", pa.float64()),  # ||dh/dt|| at zero input, state units per trial time unit
        ("q", pa.float64()),  # 0.5 ||dh/dt||^2
        ("is_fixed", pa.bool_()),  # speed < fixed_speed (else only slow)
        ("stable", pa.bool_()),  # the model's own convention (flow: continuous; map: discrete)
        ("stable_flow", pa.bool_()),  # all Re(eig) < 0
        ("stable_map", pa.bool_()),  # all |eig of the one-bin map| < 1
        ("n_unstable", pa.int32()),  # eigenvalues with Re > 0
        ("max_real_eig", pa.float64()),
        ("max_abs_map_eig", pa.float64()),
        ("gate_mean", pa.float64()),  # mean z over units at zero input (NaN: ungated model)
        ("h", FLOATS),
        ("readout", FLOATS),
        ("eig_real", FLOATS),
        ("eig_imag", FLOATS),
    ]
    + _COORDS
)
TRAJECTORY_SCHEMA = pa.schema(
    _KEY
    + [
        ("trial", pa.int32()),
        ("bin", pa.int32()),
        ("t", pa.float32()),
        ("input_on", pa.bool_()),  # a pulse is present in this bin
        ("speed", pa.float64()),  # ||dh/dt|| at zero input at this state
        ("h", FLOATS),
        ("readout", FLOATS),
        ("target", FLOATS),
    ]
    + _COORDS
    + [(f"explained_{i}", pa.float64()) for i in range(3)]  # variance fraction along each PC (NaN: state axes)
)
SPEED_GRID_SCHEMA = pa.schema(
    _KEY + [("h_0", pa.float64()), ("h_1", pa.float64()), ("u", pa.float64()), ("v", pa.float64()),
            ("speed", pa.float64())]
)
GATES_SCHEMA = pa.schema(
    _KEY
    + [
        ("source", pa.string()),  # "trajectory" (gate used in that bin) | "fixed_point" (zero input)
        ("trial", pa.int32()),  # -1 for fixed points
        ("bin", pa.int32()),  # -1 for fixed points
        ("point_id", pa.int32()),  # -1 for trajectories
        ("input_on", pa.bool_()),
        ("z", FLOATS),  # gate of every unit
        ("z_mean", pa.float64()),
        ("tau_eff_median", pa.float64()),  # median over units of tau / z (gnODE) or dt / z, trial units
    ]
)
MEMORY_SCHEMA = pa.schema(
    _KEY
    + [
        ("is_best", pa.bool_()),
        ("status", pa.string()),
        ("test_loss", pa.float64()),
        ("n_probes", pa.int32()),
        ("duration", pa.float64()),  # trial time units from settle to the end
        ("stored_norm", pa.float64()),  # mean ||stored value||
        ("error_settle", pa.float64()),  # mean ||y - value|| after settling
        ("error_1x", pa.float64()),  # ... one trial length later
        ("error_end", pa.float64()),  # ... at the end (memory_horizons trial lengths after settling)
        ("relative_error_settle", pa.float64()),  # error_settle / stored_norm (a constant readout: >= ~1)
        ("relative_error_1x", pa.float64()),  # error_1x / stored_norm
        ("relative_error_end", pa.float64()),  # error_end / stored_norm
        ("drift", pa.float64()),  # mean ||y(end) - y(settle)||
        ("relative_drift", pa.float64()),  # drift / stored_norm (a model that forgets at once has ~0)
        ("drift_rate", pa.float64()),  # drift per trial time unit
        ("late_drift_rate", pa.float64()),  # ||y(end) - y(settle + 1 trial)|| per trial time unit
    ]
)
MEMORY_CURVE_SCHEMA = pa.schema(
    _KEY + [("is_best", pa.bool_()), ("t", pa.float64()), ("drift", pa.float64()), ("error", pa.float64())]
)
SCHEMAS = {
    "fixed_points": FIXED_POINTS_SCHEMA,
    "trajectories": TRAJECTORY_SCHEMA,
    "speed_grid": SPEED_GRID_SCHEMA,
    "gates": GATES_SCHEMA,
    "memory": MEMORY_SCHEMA,
    "memory_curve": MEMORY_CURVE_SCHEMA,
}


def _best_member(ev: pd.DataFrame) -> int:
    ok = ev[(ev["status"] == "ok") & np.isfinite(ev["test_loss"])]
    return int(ok.loc[ok["test_loss"].idxmin(), "member"]) if len(ok) else int(ev["member"].min())


def _lists(a: np.ndarray) -> list[list[float]]:
    return [list(map(float, row)) for row in np.asarray(a, dtype=np.float64)]


def memory_tables(
    mem: att.MemoryResult, key: dict, evaluation: pd.DataFrame, best: int, n_probes: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The memory and memory_curve tables of one (model, N) from its memory test.

    ``evaluation``: one row per member, sorted by member (status, test_loss); ``best``: the
    best member. Errors are also given relative to the mean norm of the stored values, so that a
    readout that forgets (holds any constant) scores about 1 or more and a perfect memory 0.
    """
    members = np.arange(len(mem.drift))
    memory = pd.DataFrame(
        {
            **key,
            "member": members,
            "is_best": members == best,
            "status": evaluation["status"].to_numpy(),
            "test_loss": evaluation["test_loss"].to_numpy(),
            "n_probes": n_probes,
            "duration": mem.duration,
            "stored_norm": mem.stored_norm,
            "error_settle": mem.error_settle,
            "error_1x": mem.error_1x,
            "error_end": mem.error_end,
            "relative_error_settle": mem.error_settle / mem.stored_norm,
            "relative_error_1x": mem.error_1x / mem.stored_norm,
            "relative_error_end": mem.error_end / mem.stored_norm,
            "drift": mem.drift,
            "relative_drift": mem.drift / mem.stored_norm,
            "drift_rate": mem.drift_rate,
            "late_drift_rate": mem.late_drift_rate,
        }
    )
    s = len(mem.t)
    curve = pd.DataFrame(
        {
            **key,
            "member": np.repeat(members, s),
            "is_best": np.repeat(members == best, s),
            "t": np.tile(mem.t, len(members)),
            "drift": mem.drift_curve.ravel(),
            "error": mem.error_curve.ravel(),
        }
    )
    return memory, curve


def analyse_model(
    model_path: str | Path, evaluation: pd.DataFrame, test: tuple[np.ndarray, np.ndarray],
    settings: FlipflopAnalysisSettings,
) -> dict[str, pd.DataFrame]:
    """All analysis tables of one trained (model, N) (see the module docstring)."""
    a = settings.analysis
    device = resolve_device(settings.device)
    model, extra = load_model(model_path, device=device)
    key = {"experiment": settings.experiment, "task": settings.task, "model": extra["model"], "n": extra["n"]}
    label = f"[{key['experiment']} {key['model']} N={key['n']}] "
    seed = derive_seed(settings.seed, a.seed, stable_id(f"{key['experiment']}/{key['model']}/{key['n']}"))
    ev = evaluation.sort_values("member").reset_index(drop=True)
    best = _best_member(ev)
    out: dict[str, pd.DataFrame] = {}
    out["memory"], out["memory_curve"] = _memory(model, key, ev, best, settings, label)

    # the best member, in float64, on test trials
    run = _BestRun.on_test(model_path, best, test, a.trajectory_trials, device)
    keyed = {**key, "member": best}
    fp, ex = att.find_attractor(run.model, run.h, att.AttractorSearch.from_settings(a.model_dump()),
                                generator=torch.Generator().manual_seed(seed))
    logger.info("%s%d initial states -> %d converged -> %d unique points (%d fixed, %d stable)", label,
                fp.n_initial, fp.n_converged, len(fp), int(fp.is_fixed.sum()), int(ex["stable"].sum()))
    z_pts = _gates_at(run.model, fp)
    out["fixed_points"] = _fixed_point_table(run, fp, ex, z_pts, keyed)
    out["trajectories"] = _trajectory_table(run, keyed)
    out["speed_grid"] = _speed_grid_table(run, fp, keyed, a.grid_points)
    out["gates"] = _gates_table(run, fp, z_pts, keyed)
    return out


def _memory(
    model: RecurrentEnsemble, key: dict, ev: pd.DataFrame, best: int, settings: FlipflopAnalysisSettings, label: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Memory test of every member (trained dtype): the memory and memory_curve tables."""
    a = settings.analysis
    mem = att.memory_test(
        model, settings.task, n_bins=settings.n_bins, pulse_width=settings.pulse_width,
        n_probes=a.memory_probes, horizons=a.memory_horizons, settle_bins=a.memory_settle_bins,
        samples=a.memory_samples, seed=derive_seed(settings.seed, a.seed, 2),
    )
    logger.info("%smemory test, best member: relative error %.3g at settling, %.3g at the end; relative drift "
                "%.3g over %.0f trial lengths", label, mem.error_settle[best] / mem.stored_norm,
                mem.error_end[best] / mem.stored_norm, mem.drift[best] / mem.stored_norm, mem.duration)
    return memory_tables(mem, key, ev, best, a.memory_probes)


@dataclass
class _BestRun:
    """The best member (a one-member float64 model) run on the first B test trials."""

    model: RecurrentEnsemble
    x: torch.Tensor  # (B, T, I) inputs on the device
    inputs: np.ndarray  # (B, T, I) the same, as read
    targets: np.ndarray  # (B, T, O)
    y: torch.Tensor  # (1, B, T, O) readout
    states: torch.Tensor  # (1, B, T, N) hidden states
    basis: att.Basis  # plot coordinates, from these states

    @classmethod
    def on_test(cls, model_path, best: int, test: tuple[np.ndarray, np.ndarray], trials: int, device) -> _BestRun:
        one = load_model(model_path, device=device, dtype=torch.float64)[0].select([best])
        xte, yte = test
        k = min(trials, len(xte))
        x = torch.tensor(np.array(xte[:k]), device=device, dtype=torch.float64)
        with torch.no_grad():
            y, states = one(x)
        return cls(one, x, xte[:k], yte[:k], y, states, att.plot_basis(states[0].cpu().numpy()))

    @property
    def h(self) -> torch.Tensor:
        """(B, T, N) hidden states."""
        return self.states[0]

    @property
    def h_np(self) -> np.ndarray:
        return self.h.cpu().numpy()

    def trial_bin(self) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) trial and bin index of every state."""
        b, t, _ = self.h.shape
        return np.meshgrid(np.arange(b), np.arange(t), indexing="ij")

    def input_on(self) -> np.ndarray:
        """(B, T) bool: a pulse is present in the bin."""
        return np.abs(self.inputs).sum(-1) > 0


def _gates_at(model: RecurrentEnsemble, fp: FixedPoints) -> np.ndarray | None:
    """(P, N) gates z at the points at zero input (None: ungated model, or no point)."""
    zf = att.gate_field(model)
    if zf is None or not len(fp):
        return None
    with torch.no_grad():
        return zf(fp.points).cpu().numpy()


def _fixed_point_table(run: _BestRun, fp: FixedPoints, ex: dict, z_pts: np.ndarray | None, keyed: dict) -> pd.DataFrame:
    """One row per unique fixed/slow point of the best member (:data:`FIXED_POINTS_SCHEMA`)."""
    pts = fp.points.cpu().numpy()
    gate_mean = z_pts.mean(-1) if z_pts is not None else np.full(len(fp), math.nan)
    eig = fp.eigenvalues.cpu().to(torch.complex128).numpy()
    c = run.basis.project(pts) if len(fp) else np.zeros((0, 3))
    return pd.DataFrame(
        {
            **keyed,
            "point_id": np.arange(len(fp)),
            "speed": ex["speed"],
            "q": fp.speed.cpu().double().numpy(),
            "is_fixed": fp.is_fixed.cpu().numpy(),
            "stable": ex["stable"],
            "stable_flow": ex["stable_flow"],
            "stable_map": ex["stable_map"],
            "n_unstable": fp.n_unstable.cpu().numpy(),
            "max_real_eig": fp.max_real_eig.cpu().double().numpy(),
            "max_abs_map_eig": ex["max_abs_map_eig"],
            "gate_mean": gate_mean,
            "h": _lists(pts),
            "readout": _lists(ex["readout"]),
            "eig_real": _lists(eig.real),
            "eig_imag": _lists(eig.imag),
            "basis": run.basis.kind,
            "coord_0": c[:, 0],
            "coord_1": c[:, 1],
            "coord_2": c[:, 2],
        },
        index=pd.RangeIndex(len(fp)),
    )


def _trajectory_table(run: _BestRun, keyed: dict) -> pd.DataFrame:
    """One row per (test trial, bin) of the best member (:data:`TRAJECTORY_SCHEMA`)."""
    h_np = run.h_np
    b, t, n = h_np.shape
    f = att.velocity_field(run.model)
    with torch.no_grad():
        speed = f(run.h.reshape(-1, n)).norm(dim=-1).reshape(b, t)
    trial, bins = run.trial_bin()
    ct = run.basis.project(h_np.reshape(-1, n))
    return pd.DataFrame(
        {
            **keyed,
            "trial": trial.ravel(),
            "bin": bins.ravel(),
            "t": ((bins.ravel() + 1) / t).astype(np.float32),
            "input_on": run.input_on().ravel(),
            "speed": speed.cpu().numpy().ravel(),
            "h": _lists(h_np.reshape(-1, n)),
            "readout": _lists(run.y[0].cpu().numpy().reshape(b * t, -1)),
            "target": _lists(run.targets.reshape(b * t, -1)),
            "basis": run.basis.kind,
            "coord_0": ct[:, 0],
            "coord_1": ct[:, 1],
            "coord_2": ct[:, 2],
            **{f"explained_{i}": (run.basis.explained + [math.nan] * 3)[i] for i in range(3)},
        }
    )


def _speed_grid_table(run: _BestRun, fp: FixedPoints, keyed: dict, grid_points: int) -> pd.DataFrame:
    """Flow speed on a grid over the states and points, padded by 15% (N = 2 only; else empty)."""
    h_np = run.h_np
    if h_np.shape[-1] != 2:
        return pd.DataFrame(columns=SPEED_GRID_SCHEMA.names)
    both = np.concatenate([h_np.reshape(-1, 2), fp.points.cpu().numpy().reshape(-1, 2)])
    lo, hi = both.min(0), both.max(0)
    pad = 0.15 * np.maximum(hi - lo, 1e-3)
    g = att.speed_grid(run.model, ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])), grid_points)
    return pd.DataFrame({**keyed, "h_0": g["h0"], "h_1": g["h1"], "u": g["u"], "v": g["v"], "speed": g["speed"]})


def _gates_table(run: _BestRun, fp: FixedPoints, z_pts: np.ndarray | None, keyed: dict) -> pd.DataFrame:
    """Gates along the trajectories, then at the points (:data:`GATES_SCHEMA`; ungated: empty)."""
    z_traj = att.trajectory_gates(run.model, run.x, run.states)
    if z_traj is None:
        return pd.DataFrame(columns=GATES_SCHEMA.names)
    unit = att.gate_time_unit(run.model)
    b, t, n = run.h.shape
    trial, bins = run.trial_bin()
    zt = z_traj[0].cpu().numpy().reshape(b * t, n)
    rows = {
        "source": ["trajectory"] * (b * t),
        "trial": trial.ravel(),
        "bin": bins.ravel(),
        "point_id": -1,
        "input_on": run.input_on().ravel(),
        "z": _lists(zt),
        "z_mean": zt.mean(-1),
        "tau_eff_median": np.median(unit / zt, axis=-1),
    }
    parts = [pd.DataFrame({**keyed, **rows})]
    if z_pts is not None:
        parts.append(
            pd.DataFrame(
                {
                    **keyed,
                    "source": "fixed_point",
                    "trial": -1,
                    "bin": -1,
                    "point_id": np.arange(len(fp)),
                    "input_on": False,
                    "z": _lists(z_pts),
                    "z_mean": z_pts.mean(-1),
                    "tau_eff_median": np.median(unit / z_pts, axis=-1),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def analyse_job(
    settings: FlipflopAnalysisSettings,
    model_paths: list[str],
    evaluation_paths: list[str],
    data_path: str | Path,
    outputs: dict[str, str | Path],
) -> dict[str, pd.DataFrame]:
    """Analyse every trained (model, N) of one experiment; write one table per kind.

    ``model_paths`` and ``evaluation_paths`` are parallel lists (one per (model, N));
    ``outputs`` maps each name of :data:`SCHEMAS` to a path.
    """
    if len(model_paths) != len(evaluation_paths):
        raise ValueError("model_paths and evaluation_paths must be parallel lists")
    test = arrays(io.read_table(data_path), "test")
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in SCHEMAS}
    for mp, ep in zip(model_paths, evaluation_paths):
        tables = analyse_model(mp, io.read_table(ep), test, settings)
        for name, df in tables.items():
            if len(df):
                parts[name].append(df)
    prov = io.provenance(settings.model_dump(mode="json"), device=resolve_device(settings.device))  # as the params
    result = {}
    for name, schema in SCHEMAS.items():
        df = pd.concat(parts[name], ignore_index=True) if parts[name] else pd.DataFrame(columns=schema.names)
        io.write_table(df, outputs[name], schema, prov)
        result[name] = df
    return result


__all__ = ["SCHEMAS", "analyse_model", "analyse_job", "memory_tables"]
