"""Attractor analysis of trained recurrent models at zero input.

A flip-flop model holds its memory while no pulse arrives, so the dynamics that matter are
those at input x = 0. This module reads them off a trained member:

- the **velocity field** at zero input, in state units per trial time unit: ``dh/dt = f(h, 0)``
  for the continuous models (nODE, gnODE); for the discrete ones (RNN, GRU, mGRU) the update
  of one bin read as a velocity, ``(g(h, 0) - h) / dt``, so that speeds of all models share
  one unit;
- its **fixed and slow points** (:mod:`gnode.fixed_points`: minima of q = ½‖dh/dt‖² from states
  visited on test trials), with the Jacobian's eigenvalues ``lam`` (rates) and stability: for
  a continuous model all Re(lam) < 0, for a discrete model every eigenvalue of the one-bin map
  ``mu = 1 + dt * lam`` inside the unit circle (both are reported for every model; for a
  continuous model integrated by Euler, ``mu = (1 + dt/s * lam)^s`` with ``s`` sub-steps);
- a **memory test**: present a value by pulses, then no input for many trial lengths, and
  measure how far the readout drifts from where it settled;
- the **gates** z of the gated models (gnODE, mGRU, GRU update gate) along trajectories and at
  the slow points: each unit's adaptive time constant is ``tau / z`` (gnODE) or ``dt / z``
  (one bin over z, discrete models).

All functions take a :class:`~gnode.models.RecurrentEnsemble`; the fixed-point functions need a
one-member ensemble (``model.select([m])``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gnode.fixed_points import FixedPoints, find_fixed_points, sample_initial_states
from gnode.models import RecurrentEnsemble
from gnode.tasks import flipflop

VectorField = Callable[[Tensor], Tensor]


# ------------------------------------------------------------------------ fields
def _one_member(model: RecurrentEnsemble) -> None:
    if model.n_members != 1:
        raise ValueError(f"need a one-member ensemble (model.select([m])), got {model.n_members} members")


def zero_input_projection(model: RecurrentEnsemble) -> dict[str, Tensor]:
    """The input projections ``U x + b`` at x = 0 (the biases): name -> (E, 1, out)."""
    ref = model.W_o
    x = torch.zeros(model.n_members, 1, 1, model.spec.n_input, device=ref.device, dtype=ref.dtype)
    return {k: v[:, :, 0] for k, v in model.project_inputs(x).items()}


def velocity_field(model: RecurrentEnsemble) -> VectorField:
    """dh/dt at zero input of a one-member model, batched: (B, N) -> (B, N), per trial time unit.

    Discrete models: ``(g(h, 0) - h) / dt``, the one-bin update as a velocity.
    """
    _one_member(model)
    xp0 = zero_input_projection(model)
    continuous = model.spec.continuous
    dt = model.spec.dt

    def f(h: Tensor) -> Tensor:
        xp = {k: v.expand(1, h.shape[0], -1) for k, v in xp0.items()}
        hh = h.unsqueeze(0)
        if continuous:
            return model.vector_field(hh, xp)[0]
        return (model.discrete_step(hh, xp)[0] - h) / dt

    return f


def gate_field(model: RecurrentEnsemble) -> VectorField | None:
    """The gate z at zero input of a one-member gated model, (B, N) -> (B, N); None if ungated."""
    _one_member(model)
    if not model.spec.gated:
        return None
    xp0 = zero_input_projection(model)

    def z(h: Tensor) -> Tensor:
        return model.gate(h.unsqueeze(0), {"U_z": xp0["U_z"].expand(1, h.shape[0], -1)})[0]

    return z


def gate_time_unit(model: RecurrentEnsemble) -> float:
    """The unit of a gated model's time constants: tau for a continuous model (gnODE: tau / z),
    one bin dt for a discrete one (GRU, mGRU: dt / z). ValueError for an ungated model."""
    if not model.spec.gated:
        raise ValueError(f"{model.spec.kind} has no gate")
    return model.spec.tau if model.spec.continuous else model.spec.dt


def readout(model: RecurrentEnsemble, h: Tensor) -> Tensor:
    """The linear readout of a one-member model: (..., N) -> (..., O)."""
    _one_member(model)
    return h @ model.W_o[0] + model.b_o[0, 0]


def map_eigenvalues(model: RecurrentEnsemble, eigenvalues: Tensor) -> Tensor:
    """Eigenvalues of the one-bin map from those of the velocity field's Jacobian.

    Discrete models: ``1 + dt * lam`` (exact: J_map = I + dt J). Continuous models integrated by
    Euler with ``s`` sub-steps of ``dt / s``: ``(1 + dt/s * lam)^s`` (exact for Euler; the
    linearised map of other solvers differs at large ``dt * lam``).
    """
    spec = model.spec
    s = spec.substeps if spec.continuous else 1
    return (1 + (spec.dt / s) * eigenvalues) ** s


# ------------------------------------------------------------------------ PCA
@dataclass
class Basis:
    """Plot coordinates: the state itself (N <= 3) or its first principal components."""

    kind: str  # "state" | "pca"
    mean: np.ndarray  # (N,)
    axes: np.ndarray  # (N, k), orthonormal columns
    explained: list[float]  # fraction of the variance along each axis (NaN for "state")

    def project(self, h: np.ndarray) -> np.ndarray:
        """(..., N) -> (..., 3), padded with NaN when fewer than 3 axes."""
        c = (np.asarray(h, dtype=np.float64) - self.mean) @ self.axes
        pad = 3 - c.shape[-1]
        if pad > 0:
            c = np.concatenate([c, np.full(c.shape[:-1] + (pad,), np.nan)], axis=-1)
        return c


def plot_basis(states: np.ndarray, k: int = 3) -> Basis:
    """The state axes for N <= 3, else the first ``k`` principal components of ``states`` (M, N)."""
    states = np.asarray(states, dtype=np.float64).reshape(-1, states.shape[-1])
    n = states.shape[-1]
    if n <= 3:
        return Basis("state", np.zeros(n), np.eye(n), [math.nan] * n)
    mean = states.mean(0)
    _, s, vt = np.linalg.svd(states - mean, full_matrices=False)
    var = s**2
    frac = (var / var.sum()).tolist() if var.sum() > 0 else [math.nan] * len(var)
    # a sign convention, so that the same model always gives the same picture
    axes = vt[:k].T * np.where(vt[:k].sum(1) < 0, -1.0, 1.0)
    return Basis("pca", mean, axes, frac[:k])


# ----------------------------------------------------------------- fixed points
@dataclass
class AttractorSearch:
    """Settings of the zero-input fixed/slow-point search (speeds per trial time unit)."""

    n_initial: int = 256
    n_iter: int = 1500
    lr: float = 0.01
    noise_std: float = 0.01
    slow_speed: float = 0.05
    fixed_speed: float = 1e-3
    dedup_tol: float = 1e-3
    max_points: int = 500
    stability_tol: float = 1e-6

    @classmethod
    def from_settings(cls, settings: dict) -> AttractorSearch:
        return cls(**{k: settings[k] for k in cls.__dataclass_fields__ if k in settings})


def find_attractor(
    model: RecurrentEnsemble, states: Tensor, search: AttractorSearch, *, generator: torch.Generator | None = None
) -> tuple[FixedPoints, dict[str, np.ndarray]]:
    """Fixed and slow points of a one-member model at zero input, seeded from visited ``states``.

    Args:
        model: one member (float64 recommended: the search resolves speeds of ~1e-3 / tau).
        states: (..., N) states visited by the model, e.g. (B, T, N) along test trials.
        search: the search settings; a point is kept when ||dh/dt|| < slow_speed and counts as
            fixed when ||dh/dt|| < fixed_speed.

    Returns:
        the :class:`~gnode.fixed_points.FixedPoints` and per-point extras (numpy): ``speed``
        (||dh/dt||), ``readout`` (P, O), ``map_eig`` (P, N complex), ``max_abs_map_eig``,
        ``stable_flow``, ``stable_map`` and ``stable`` (the model's own convention: flow for
        continuous models, map for discrete ones).
    """
    f = velocity_field(model)
    states = states.to(model.W_o.dtype)
    init = sample_initial_states(states, search.n_initial, generator=generator)
    fp = find_fixed_points(
        f,
        init,
        n_iter=search.n_iter,
        lr=search.lr,
        q_tol=0.5 * search.slow_speed**2,
        fixed_tol=0.5 * search.fixed_speed**2,
        dedup_tol=search.dedup_tol,
        stability_tol=search.stability_tol,
        noise_std=search.noise_std,
        generator=generator,
        max_points=search.max_points,
    )
    with torch.no_grad():
        y = readout(model, fp.points)
    mu = map_eigenvalues(model, fp.eigenvalues.to(torch.complex128))
    max_abs_mu = mu.abs().amax(-1) if mu.shape[-1] else torch.zeros(len(fp))
    stable_map = max_abs_mu < 1 - search.stability_tol
    stable_flow = fp.stable
    continuous = model.spec.continuous
    extras = {
        "speed": torch.sqrt(2 * fp.speed).cpu().numpy(),
        "readout": y.cpu().double().numpy(),
        "map_eig": mu.cpu().numpy(),
        "max_abs_map_eig": max_abs_mu.cpu().double().numpy(),
        "stable_flow": stable_flow.cpu().numpy(),
        "stable_map": stable_map.cpu().numpy(),
        "stable": (stable_flow if continuous else stable_map).cpu().numpy(),
    }
    return fp, extras


def speed_grid(model: RecurrentEnsemble, lims: tuple[tuple[float, float], tuple[float, float]], n: int) -> dict:
    """Velocity at zero input on an ``n`` x ``n`` grid of a 2-D state plane (N = 2 only).

    Returns numpy arrays (n*n,): ``h0``, ``h1``, ``u``, ``v`` (dh/dt) and ``speed``.
    """
    if model.spec.n_hidden != 2:
        raise ValueError(f"a phase plane needs N = 2, got N = {model.spec.n_hidden}")
    f = velocity_field(model)
    ref = model.W_o
    a = torch.linspace(lims[0][0], lims[0][1], n, dtype=ref.dtype, device=ref.device)
    b = torch.linspace(lims[1][0], lims[1][1], n, dtype=ref.dtype, device=ref.device)
    g0, g1 = torch.meshgrid(a, b, indexing="xy")
    h = torch.stack([g0.reshape(-1), g1.reshape(-1)], dim=-1)
    with torch.no_grad():
        d = f(h)
    out = {"h0": h[:, 0], "h1": h[:, 1], "u": d[:, 0], "v": d[:, 1], "speed": d.norm(dim=-1)}
    return {k: t.cpu().double().numpy() for k, t in out.items()}


def trajectory_gates(model: RecurrentEnsemble, x: Tensor, states: Tensor, h0: Tensor | None = None) -> Tensor | None:
    """Gate z used in each bin of a run: (E, B, T, N), or None for an ungated model.

    Bin t's update uses the state before it (h0 for the first bin) and the bin's input, as in
    the forward pass. ``x`` (B, T, I) or (E, B, T, I); ``states`` (E, B, T, N) from the forward.
    """
    if not model.spec.gated:
        return None
    x = model._expand_input(x)
    e, b, t, _ = x.shape
    h0 = model.initial_state(x) if h0 is None else h0
    prev = torch.cat([h0.unsqueeze(2), states[:, :, :-1]], dim=2)
    xp = model.project_inputs(x)["U_z"].reshape(e, b * t, -1)
    with torch.no_grad():
        z = model.gate(prev.reshape(e, b * t, -1), {"U_z": xp})
    return z.reshape(e, b, t, -1)


# ------------------------------------------------------------------ memory test
def memory_probes(task: str, n: int, pulse_width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inputs that store a value, and the value, for the memory test of a flip-flop task.

    Tasks whose pulses set one channel (3-bit, 2-bit fixed, square, rectangle): one pulse per
    channel, back to back, each from that channel's amplitude law, so that every channel holds a
    value. Tasks whose pulses set a point (disk, ring): one pulse carrying a point of the task.
    Every probe law is symmetric about 0, so a constant readout has a mean error >= the mean norm
    of the stored values (in expectation).

    Returns inputs (n, P, C) float32 (P bins of pulses) and stored values (n, C) float32.
    """
    c = flipflop.n_channels(task)
    vals = flipflop.stored_values(task, n, rng)
    if flipflop.one_channel(task):
        x = np.zeros((n, c * pulse_width, c))
        for ch in range(c):
            x[:, ch * pulse_width : (ch + 1) * pulse_width, ch] = vals[:, ch : ch + 1]
    else:
        x = np.repeat(vals[:, None, :], pulse_width, axis=1)
    return x.astype(np.float32), vals.astype(np.float32)


@dataclass
class MemoryResult:
    """Per-member statistics (arrays (E,)) and curves (E, S) of the memory test.

    ``error_*``: mean over probes of ||y - stored value|| at the settle time, one trial length
    later and at the end; ``drift``: mean ||y(end) - y(settle)||; ``drift_rate``: drift per
    trial time unit; ``late_drift_rate``: mean ||y(end) - y(settle + one trial length)|| per
    trial time unit, the slow drift once the transients after the pulses are over; ``t``: (S,)
    time since the settle time (trial units; log-spaced) of the curves ``drift_curve`` and
    ``error_curve`` (means over probes).
    """

    stored_norm: float
    error_settle: np.ndarray
    error_1x: np.ndarray
    error_end: np.ndarray
    drift: np.ndarray
    drift_rate: np.ndarray
    late_drift_rate: np.ndarray
    t: np.ndarray
    drift_curve: np.ndarray
    error_curve: np.ndarray
    duration: float


def memory_test(
    model: RecurrentEnsemble,
    task: str,
    *,
    n_bins: int,
    pulse_width: int,
    n_probes: int = 32,
    horizons: float = 10.0,
    settle_bins: int = 5,
    samples: int = 100,
    seed: int = 0,
    max_elements: int = 2**25,
) -> MemoryResult:
    """Store values by pulses, then run without input for ``horizons`` trial lengths.

    Every member sees the same probes. The drift is measured from ``settle_bins`` bins after the
    last pulse (the readout has reached the stored value) to the end, ``horizons * n_bins`` bins
    later. A model that holds its state perfectly has zero drift. Members are run in chunks so
    that the states held at once stay below ``max_elements`` numbers.
    """
    rng = np.random.default_rng(seed)
    pulses, stored = memory_probes(task, n_probes, pulse_width, rng)
    n_free = settle_bins + int(round(horizons * n_bins))
    ref = model.W_o
    x = torch.zeros(n_probes, pulses.shape[1] + n_free, pulses.shape[2], device=ref.device, dtype=ref.dtype)
    x[:, : pulses.shape[1]] = torch.as_tensor(pulses, device=ref.device, dtype=ref.dtype)
    v = torch.as_tensor(stored, device=ref.device, dtype=ref.dtype)
    t_total = x.shape[1]
    settle = pulses.shape[1] - 1 + settle_bins
    one = min(settle + n_bins, t_total - 1)
    # log-spaced sample times: the fast relaxation after the pulses and the slow drift both show
    idx = settle + np.unique(np.geomspace(1, t_total - settle, samples - 1).round().astype(int) - 1)
    idx = np.unique(np.concatenate([[settle], idx, [t_total - 1]]))
    per_member = max(1, max_elements // max(1, n_probes * t_total * model.spec.n_hidden))
    outs = []
    with torch.no_grad():
        for start in range(0, model.n_members, per_member):
            sub = model.select(range(start, min(start + per_member, model.n_members)))
            y, _ = sub(x)  # (e, B, T, O)
            outs.append(y.double())  # readouts are small: (e, B, T, O)
    y = torch.cat(outs)  # (E, B, T, O)
    err = (y - v.double()[:, None, :]).norm(dim=-1)  # (E, B, T)
    drift = (y - y[:, :, settle : settle + 1]).norm(dim=-1)
    duration = (t_total - 1 - settle) * model.spec.dt
    mean = lambda a: a.mean(1).cpu().numpy()  # noqa: E731 (over probes)
    return MemoryResult(
        stored_norm=float(np.linalg.norm(stored, axis=-1).mean()),
        error_settle=mean(err[:, :, settle]),
        error_1x=mean(err[:, :, one]),
        error_end=mean(err[:, :, -1]),
        drift=mean(drift[:, :, -1]),
        drift_rate=mean(drift[:, :, -1]) / duration,
        late_drift_rate=mean((y[:, :, -1] - y[:, :, one]).norm(dim=-1)) / max((t_total - 1 - one) * model.spec.dt, 1e-12),
        t=(idx - settle) * model.spec.dt,
        drift_curve=drift[:, :, idx].mean(1).cpu().numpy(),
        error_curve=err[:, :, idx].mean(1).cpu().numpy(),
        duration=duration,
    )
