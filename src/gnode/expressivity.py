"""Expressivity: how complex a trajectory can an autonomous (g)nODE generate?

This is the project's own measure (the paper's definition is not available to us); the design,
its analytic checks and its limits are documented in ``docs/expressivity.md``.

In short: for a model class (phase-space dimension N, flow field F of depth L and width M with
a given activation, gated or not) we fit autonomous models ``h_{k+1} = h_k + alpha z (F(h_k) - h_k)``
(``z = 1`` without gate) from a learned initial state, with a linear readout, to random targets
made of K sinusoids, for K = 1 .. K_max, and record the best R^2 of each fit. The class's
**capacity** K* is the largest K up to which the median R^2 over targets stays above a threshold,
and its **AUC** is the mean over K of the median R^2 (clipped to [0, 1]).

Pieces (all pure functions; devices, dtypes and seeds are arguments):

- :func:`frequency_band`, :func:`sinusoid_target`, :func:`make_targets` - the targets;
- :func:`fit_model_class` - all (K, target, restart) fits of one model class (or of several
  N with one flow field, padded into one ensemble) in one batched training loop;
- :func:`score` - K*, AUC and parameter count per model class (the claims drawn from them:
  :func:`gnode.studies.expressivity_scores.expressivity_claims`, apart so that editing them re-runs
  no fit);
- :func:`run_sweep` - the whole sweep from its settings (:class:`gnode.config.ExpressivitySettings`, the
  config's ``expressivity``: the one place of their defaults);
- :func:`example_fits` - target and fitted trajectories for a few classes (figures).

Shapes: targets (R, T, O) with R fits, T time steps, O output channels; ensembles hold
E = (number of N) x R x restarts members.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import Tensor

from gnode.config import ExpressivitySettings, ExpressivitySweep
from gnode.models import ModelSpec, RecurrentEnsemble
from gnode.models import parameter_count as models_parameter_count
from gnode.scan import euler_scan
from gnode.training import StackedAdamW

logger = logging.getLogger(__name__)

ACTIVATION_CODES = {"linear": 0, "relu": 1, "tanh": 2}

FIT_COLUMNS = [
    "n", "depth", "width", "activation", "gated", "flow", "k", "target", "target_seed", "freqs",
    "r2", "r2_final", "r2_restart_min", "restart", "restarts", "best_step", "steps", "lr",
    "lr_schedule", "alpha", "t_steps", "output_dim", "n_params", "init", "seed", "status", "clamp_hits",
    "skipped_steps", "fit_seconds",
]  # fmt: skip

SCORE_COLUMNS = [
    "n", "depth", "width", "activation", "gated", "flow", "flow_rank", "n_params", "k_max",
    "k_star", "k_star_any", "auc", "n_targets", "n_fits_failed", "steps", "restarts",
]  # fmt: skip

EXAMPLE_COLUMNS = ["n", "depth", "width", "activation", "gated", "flow", "k", "channel", "t", "target", "output", "r2"]

_STRING_COLUMNS = {"activation", "flow", "freqs", "lr_schedule", "init", "status"}
_FLOAT_COLUMNS = {"r2", "r2_final", "r2_restart_min", "lr", "alpha", "fit_seconds", "auc", "t", "target", "output"}


def _schema(columns: Sequence[str]) -> pa.Schema:
    def kind(c):
        if c == "gated":
            return pa.bool_()
        if c in _STRING_COLUMNS:
            return pa.string()
        return pa.float64() if c in _FLOAT_COLUMNS else pa.int64()

    return pa.schema([(c, kind(c)) for c in columns])


#: Parquet schemas of the fits, scores and example tables (for ``gnode.io.write_table``).
FIT_SCHEMA = _schema(FIT_COLUMNS)
SCORE_SCHEMA = _schema(SCORE_COLUMNS)
EXAMPLE_SCHEMA = _schema(EXAMPLE_COLUMNS)

# --------------------------------------------------------------------------- targets
def frequency_band(k: int, *, f_min: float, min_gap: float, slack: float) -> tuple[float, float]:
    """The band [lo, hi] (cycles per window) from which the K frequencies are drawn.

    It widens with K so that K frequencies at least ``min_gap`` apart always fit with the same
    freedom ``slack``: ``[f_min, f_min + min_gap (K - 1) + slack]``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return f_min, f_min + min_gap * (k - 1) + slack


def _target_seed(seed: int, k: int, index: int) -> int:
    """Seed of target (k, index): independent of how many targets or K values are drawn."""
    return int(np.random.SeedSequence([int(seed), 0x7A26E7, int(k), int(index)]).generate_state(1)[0])


def sinusoid_target(
    k: int,
    *,
    t_steps: int,
    output_dim: int,
    seed: int,
    f_min: float,
    min_gap: float,
    slack: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One target: a sum of ``k`` equal-amplitude sinusoids with random phases, z-scored.

    Frequencies (cycles per window) are uniform over the configurations in
    :func:`frequency_band` whose sorted gaps are all >= ``min_gap``. The output channels share
    the frequencies and have independent phases. Time points are ``t_j = j / t_steps``,
    j = 1 .. t_steps (the states after each Euler step).

    Returns:
        y (t_steps, output_dim) with mean 0 and variance 1 per channel (float64);
        freqs (k,) sorted; phases (k, output_dim) in [0, 2 pi).
    """
    if output_dim < 1 or t_steps < 2:
        raise ValueError("output_dim must be >= 1 and t_steps >= 2")
    rng = np.random.default_rng(seed)
    lo, hi = frequency_band(k, f_min=f_min, min_gap=min_gap, slack=slack)
    # spacing trick: k sorted uniforms on the band minus the mandatory gaps, then add the gaps
    free = np.sort(rng.uniform(0.0, hi - lo - min_gap * (k - 1), size=k))
    freqs = lo + free + min_gap * np.arange(k)
    phases = rng.uniform(0.0, 2 * np.pi, size=(k, output_dim))
    t = np.arange(1, t_steps + 1) / t_steps
    s = np.cos(2 * np.pi * freqs[None, :, None] * t[:, None, None] + phases[None]).sum(1)  # (T, O)
    y = (s - s.mean(0)) / s.std(0)
    return y, freqs, phases


@dataclass(frozen=True)
class Targets:
    """A bank of targets: ``y`` (R, T, O) float64 and ``meta`` with one row per target
    (columns k, target, target_seed, freqs, f_lo, f_hi)."""

    y: np.ndarray
    meta: pd.DataFrame

    def __post_init__(self):
        if self.y.ndim != 3 or len(self.meta) != self.y.shape[0]:
            raise ValueError(f"targets must be (R, T, O) with R meta rows, got {self.y.shape} and {len(self.meta)}")

    def scaled(self, factor: float, offset: float = 0.0) -> Targets:
        """The same targets, multiplied by ``factor`` and shifted by ``offset``."""
        return Targets(self.y * factor + offset, self.meta.copy())


def make_targets(
    k_values: Sequence[int],
    targets_per_k: int,
    *,
    t_steps: int,
    output_dim: int,
    seed: int,
    f_min: float,
    min_gap: float,
    slack: float,
) -> Targets:
    """``targets_per_k`` targets of :func:`sinusoid_target` for every K in ``k_values``.

    Target (K, j) depends only on (seed, K, j): adding targets or K values leaves the others
    unchanged.
    """
    ys, rows = [], []
    for k in k_values:
        lo, hi = frequency_band(k, f_min=f_min, min_gap=min_gap, slack=slack)
        for j in range(targets_per_k):
            ts = _target_seed(seed, k, j)
            y, freqs, _ = sinusoid_target(
                k, t_steps=t_steps, output_dim=output_dim, seed=ts, f_min=f_min, min_gap=min_gap, slack=slack
            )
            ys.append(y)
            rows.append(
                {"k": int(k), "target": j, "target_seed": ts, "freqs": ";".join(f"{f:.4f}" for f in freqs),
                 "f_lo": lo, "f_hi": hi}
            )  # fmt: skip
    return Targets(np.stack(ys), pd.DataFrame(rows))


def max_phase_per_step(k_max: int, t_steps: int, *, f_min: float, min_gap: float, slack: float) -> float:
    """Largest phase advance per time step (radians) of any target up to ``k_max``; keep <= 0.3."""
    return 2 * np.pi * frequency_band(k_max, f_min=f_min, min_gap=min_gap, slack=slack)[1] / t_steps


# --------------------------------------------------------------------------- model classes
def flow_label(flow: Mapping) -> str:
    """Short name of a flow field: 'linear', 'tanh 1-layer', 'relu L1xM32', ..."""
    depth, act = int(flow["depth"]), flow["activation"]
    if depth == 0:
        return "linear" if act == "linear" else f"{act} 1-layer"
    return f"{act} L{depth}xM{int(flow['width'])}"


def model_spec(n: int, flow: Mapping, gated: bool, *, alpha: float, output_dim: int) -> ModelSpec:
    """The autonomous model of a class: no input, learned initial state, tau = 1, dt = alpha."""
    depth = int(flow["depth"])
    return ModelSpec(
        kind="gnode" if gated else "node",
        n_input=0,
        n_hidden=int(n),
        n_output=int(output_dim),
        depth=depth,
        width=int(flow.get("width", 0)) if depth >= 1 else 1,
        activation=flow["activation"],
        tau=1.0,
        dt=float(alpha),
        substeps=1,
        initial_state="learned",
    )


def parameter_count(n: int, flow: Mapping, gated: bool, *, output_dim: int) -> int:
    """Trainable parameters of one model of the class (F, gate, readout and initial state)."""
    # alpha (the Euler factor) sets no parameter: any value gives the count
    return models_parameter_count(model_spec(n, flow, gated, alpha=1.0, output_dim=output_dim))


def member_seed(seed: int, n: int, flow: Mapping, gated: bool, k: int, target: int, restart: int) -> int:
    """Initialisation seed of one fit: independent of how the fits are batched."""
    key = [int(seed), int(n), int(flow["depth"]), int(flow.get("width", 0)), ACTIVATION_CODES[flow["activation"]],
           int(bool(gated)), int(k), int(target), int(restart)]  # fmt: skip
    return int(np.random.SeedSequence(key).generate_state(1)[0] & 0x7FFFFFFF)


def _rotation_flow(n: int, alpha_eff: float, freqs: np.ndarray, t_steps: int) -> np.ndarray:
    """W (n, n) such that the Euler map h <- h (1 - a) + a h W is a block rotation.

    Pair j rotates by 2 pi freqs[j] / t_steps per step; an odd last unit gets eigenvalue 1.
    Row-vector convention, as in :class:`~gnode.models.RecurrentEnsemble` (h @ W).
    """
    a = np.eye(n)
    for j, f in enumerate(freqs):
        th = 2 * np.pi * f / t_steps
        c, s = np.cos(th), np.sin(th)
        a[2 * j : 2 * j + 2, 2 * j : 2 * j + 2] = [[c, s], [-s, c]]
    return (a - (1 - alpha_eff) * np.eye(n)) / alpha_eff


# --------------------------------------------------------------------------- fitting
def _r2(pred: Tensor, target: Tensor) -> Tensor:
    """R^2 per member, pooled over time and channels: (E, T, O) x (E, T, O) -> (E,)."""
    sse = (pred - target).pow(2).flatten(1).sum(1)
    sst = (target - target.mean(1, keepdim=True)).pow(2).flatten(1).sum(1)
    return 1 - sse / sst


def _rollout(model: RecurrentEnsemble, t_steps: int, clamp: float) -> Tensor:
    """States (E, T, N) of the autonomous Euler rollout from the learned h0, clamped to
    [-clamp, clamp] after every step: the models' own Euler scan (:func:`gnode.scan.euler_scan`,
    with its hand-written backward) with no input.

    Members with a smaller N than the ensemble's are padded with units whose weights, bias, h0
    and readout rows are all 0: such a unit's flow is 0 and it stays at exactly 0, its
    gradients are exactly 0 and AdamW leaves it at 0, so each member is the unpadded model of
    its own N (``test_padded_batching_equals_separate_fits``).
    """
    x = model.h0.new_zeros(model.n_members, 1, int(t_steps), 0)
    return euler_scan(model, x, model.h0, model.spec.alpha, clamp=clamp)[:, 0]


def _readout(model: RecurrentEnsemble, states: Tensor) -> Tensor:
    """(E, T, N) -> (E, T, O)."""
    return torch.baddbmm(model.b_o, states, model.W_o)


def _group_members(
    ns: Sequence[int], flow: Mapping, gated: bool, targets: Targets, restarts: int, seed: int
) -> pd.DataFrame:
    rows = []
    for n in ns:
        for r_idx, (k, j, ts, fr) in enumerate(targets.meta[["k", "target", "target_seed", "freqs"]].itertuples(index=False)):
            for rs in range(restarts):
                rows.append({"n": int(n), "row": r_idx, "k": int(k), "target": int(j), "target_seed": int(ts),
                             "freqs": fr, "restart": rs, "seed": member_seed(seed, n, flow, gated, k, j, rs)})  # fmt: skip
    return pd.DataFrame(rows)


def init_kind(n: int, flow: Mapping, init: str) -> str:
    """How a model of the class is initialised (see :func:`_oscillator_init`).

    'rotation' (linear single-layer F), 'embedded-rotation' (ReLU MLP with width >= 2N, or a
    linear MLP with width >= N), or 'xavier' (the models' default init: any other flow, or
    ``init='xavier'``).
    """
    if init not in ("oscillator", "xavier"):
        raise ValueError(f"init must be 'oscillator' or 'xavier', got {init!r}")
    depth, act, width = int(flow["depth"]), flow["activation"], int(flow.get("width", 0))
    if init == "xavier":
        return "xavier"
    if depth == 0:
        return "rotation" if act == "linear" else "xavier"
    if (act == "relu" and width >= 2 * n) or (act == "linear" and width >= n):
        return "embedded-rotation"
    return "xavier"


@torch.no_grad()
def _oscillator_init(model: RecurrentEnsemble, e: int, kind: str, rotation: Tensor) -> None:
    """Make member ``e``'s flow F(h) exactly the linear map ``h @ rotation`` (N x N).

    'rotation': W_1 = rotation (linear single layer). 'embedded-rotation': the first layer
    copies h (ReLU: the pair relu(h), relu(-h), since relu(h) - relu(-h) = h), hidden layers
    pass those units through unchanged, and the output layer applies the rotation; the other
    hidden units keep their random weights but are not read out yet (their output weights
    start at 0). A gated model's gate starts constant (W_z = 0, z = sigmoid(b_z) ~ 1/2).
    """
    spec = model.spec
    n = rotation.shape[0]
    rot = rotation.to(model.W_1)
    if spec.gated:
        model.W_z[e].zero_()
    if kind == "rotation":
        model.W_1[e].copy_(rot)
        model.b_1[e].zero_()
        return
    eye = torch.eye(n, dtype=rot.dtype, device=rot.device)
    lift = [eye, -eye] if spec.activation == "relu" else [eye]
    width = n * len(lift)
    model.W_1[e][:, :width] = torch.cat(lift, dim=1)
    model.b_1[e][:, :width] = 0
    for k in range(2, spec.depth + 1):
        w, b = getattr(model, f"W_{k}")[e], getattr(model, f"b_{k}")[e]
        w[:, :width] = 0
        w[:width, :width] = torch.eye(width, dtype=rot.dtype, device=rot.device)
        b[:, :width] = 0
    model.W_out[e].zero_()
    model.W_out[e][:width] = torch.cat([rot, -rot][: len(lift)], dim=0)
    model.b_out[e].zero_()


def _build_ensemble(
    members: pd.DataFrame, flow: Mapping, gated: bool, targets: Targets, *, alpha: float, output_dim: int,
    init: str, device, dtype,
) -> tuple[RecurrentEnsemble, dict[int, int], dict[int, str]]:
    """One ensemble for all members, padded to the largest N.

    Each member is first initialised exactly as an unpadded model of its own N with its own
    seed (Xavier weights, h0 ~ N(0, 1)); with ``init='oscillator'`` its flow is then set to the
    block rotation of :func:`_rotation_flow` whose frequencies are spread over the band of its
    target's K (:func:`_oscillator_init`). Returns (model, parameter count per N, init kind per
    N); the padding of smaller members is all zeros (see :func:`_rollout`).
    """
    ns = sorted(members["n"].unique())
    n_max = int(ns[-1])
    big = RecurrentEnsemble(model_spec(n_max, flow, gated, alpha=alpha, output_dim=output_dim),
                            members["seed"].tolist(), device=device, dtype=dtype)  # fmt: skip
    n_params, kinds = {}, {}
    t_steps = targets.y.shape[1]
    alpha_eff = alpha * (0.5 if gated else 1.0)  # a gnODE starts with its gate at ~ 1/2
    with torch.no_grad():
        for p in big.parameters():
            p.zero_()
        for n in ns:
            idx = np.flatnonzero(members["n"].to_numpy() == n)
            sub = members.iloc[idx]
            small = RecurrentEnsemble(model_spec(n, flow, gated, alpha=alpha, output_dim=output_dim),
                                      sub["seed"].tolist(), dtype=torch.float64)  # fmt: skip
            n_params[int(n)] = small.member_parameter_count()
            kinds[int(n)] = kind = init_kind(n, flow, init)
            gens = [torch.Generator().manual_seed(int(s) + 1) for s in sub["seed"]]
            small.h0.copy_(torch.stack([torch.randn(1, n, generator=g, dtype=torch.float64) for g in gens]))
            if kind != "xavier":
                for e, row in enumerate(sub["row"]):
                    lo, hi = targets.meta.iloc[row][["f_lo", "f_hi"]]
                    pairs = n // 2
                    freqs = lo + (hi - lo) * (np.arange(pairs) + 0.5) / max(pairs, 1)
                    _oscillator_init(small, e, kind, torch.from_numpy(_rotation_flow(n, alpha_eff, freqs, t_steps)))
            tidx = torch.as_tensor(idx, dtype=torch.long, device=big.W_o.device)
            for name, p_small in small.named_parameters():
                p_big = getattr(big, name)
                block = p_big[tidx]
                block[(slice(None),) + tuple(slice(0, s) for s in p_small.shape[1:])] = p_small.to(block)
                p_big[tidx] = block
    return big, n_params, kinds


def _train(
    model: RecurrentEnsemble, y: Tensor, *, steps: int, lr: float, lr_schedule: str,
    weight_decay: float, grad_clip: float | None, clamp: float, log=None, label: str = "",
) -> dict[str, Any]:
    """Full-batch Adam(W) on each member's own target ``y`` (E, T, O); keeps the best R^2 seen.

    Returns per-member arrays: best_r2, final_r2, best_step, clamp_hits (training steps whose
    rollout touched the clamp), skipped (steps whose loss or gradient was not finite) and the
    best outputs (E, T, O).
    """
    log = log or logger
    e, t_steps, _ = y.shape
    dev, dt = y.device, y.dtype
    params = list(model.parameters())
    base_lr = torch.full((e,), lr, device=dev, dtype=dt)
    opt = StackedAdamW(params, base_lr.clone(), torch.full((e,), weight_decay, device=dev, dtype=dt))
    best_r2 = torch.full((e,), -math.inf, device=dev, dtype=torch.float64)
    best_step = torch.zeros(e, dtype=torch.long, device=dev)
    best_out = torch.zeros_like(y)
    clamp_hits = torch.zeros(e, dtype=torch.long, device=dev)
    skipped = torch.zeros(e, dtype=torch.long, device=dev)
    report = {max(1, round(steps * q)) for q in (0.25, 0.5, 0.75)} if steps >= 8 else set()
    t0 = time.perf_counter()
    r2 = best_r2
    for step in range(steps + 1):  # the last pass only evaluates the final parameters
        last = step == steps
        with torch.set_grad_enabled(not last):
            states = _rollout(model, t_steps, clamp)
            out = _readout(model, states)
            r2 = _r2(out, y)
        with torch.no_grad():
            clamp_hits += (states.abs() >= clamp).flatten(1).any(1)
            finite = torch.isfinite(r2)
            better = finite & (r2.double() > best_r2)
            best_r2 = torch.where(better, r2.double(), best_r2)
            best_step = torch.where(better, torch.full_like(best_step, step), best_step)
            best_out = torch.where(better.view(-1, 1, 1), out.detach(), best_out)
        if last:
            break
        for p in params:
            p.grad = None
        loss = (1 - r2).masked_fill(~finite, 0.0).sum()  # 1 - R^2 = MSE / Var(y)
        loss.backward()
        with torch.no_grad():
            grads = [p.grad for p in params if p.grad is not None]
            # per-member norm in float64: exploding but finite BPTT gradients (1e21 happens for
            # expanding 1-D maps) must be clipped, not mistaken for non-finite ones
            norms = torch.stack([g.double().pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()
            ok = finite & torch.isfinite(norms)
            skipped += ~ok
            scale = ok.double()  # 0 zeroes a skipped member's gradient
            if grad_clip:
                scale = scale * (grad_clip / (norms.nan_to_num(0.0) + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0).mul_(scale.to(g.dtype).view((-1,) + (1,) * (g.dim() - 1)))
            if lr_schedule == "cosine":
                opt.lr.copy_(base_lr * 0.5 * (1 + math.cos(math.pi * step / steps)))
            elif lr_schedule != "constant":
                raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
        opt.step(ok)
        if step + 1 in report:
            log.info("%s  step %d/%d  median best R2 %.3f  (%.0f s)", label, step + 1, steps,
                     float(best_r2.median()), time.perf_counter() - t0)  # fmt: skip
    return {
        "best_r2": best_r2.cpu().numpy(),
        "final_r2": r2.detach().double().cpu().numpy(),
        "best_step": best_step.cpu().numpy(),
        "clamp_hits": clamp_hits.cpu().numpy(),
        "skipped": skipped.cpu().numpy(),
        "best_out": best_out.double().cpu().numpy(),
        "seconds": time.perf_counter() - t0,
    }


def _standardise(y: np.ndarray) -> np.ndarray:
    """Per target and channel: mean 0, variance 1 (R^2 is unchanged by this affine map)."""
    y = np.asarray(y, dtype=np.float64)
    std = y.std(1, keepdims=True)
    if np.any(std == 0):
        raise ValueError("a target channel is constant: R^2 is undefined")
    return (y - y.mean(1, keepdims=True)) / std


def _fit_group(
    n: int | Sequence[int], flow: Mapping, gated: bool, targets: Targets, *, restarts: int, steps: int, lr: float,
    lr_schedule: str, weight_decay: float, grad_clip: float | None, alpha: float, clamp: float, init: str,
    device, dtype, seed: int, log, keep_outputs: bool,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    ns = [int(n)] if np.isscalar(n) else [int(v) for v in n]
    if not ns or min(ns) < 1 or restarts < 1 or steps < 0:
        raise ValueError("need N >= 1, restarts >= 1 and steps >= 0")
    log = log or logger
    y_std = _standardise(targets.y)
    output_dim = y_std.shape[2]
    members = _group_members(ns, flow, gated, targets, restarts, seed)
    model, n_params, kinds = _build_ensemble(members, flow, gated, targets, alpha=alpha, output_dim=output_dim,
                                                   init=init, device=device, dtype=dtype)  # fmt: skip
    y = torch.as_tensor(y_std[members["row"].to_numpy()], device=model.W_o.device, dtype=dtype)
    label = f"expressivity {flow_label(flow)} {'gated' if gated else 'non-gated'} N={ns} ({len(members)} fits)"
    res = _train(model, y, steps=steps, lr=lr, lr_schedule=lr_schedule, weight_decay=weight_decay,
                 grad_clip=grad_clip, clamp=clamp, log=log, label=label)  # fmt: skip
    members = members.assign(
        r2=res["best_r2"], r2_final=res["final_r2"], best_step=res["best_step"],
        clamp_hits=res["clamp_hits"], skipped_steps=res["skipped"], member=np.arange(len(members)),
    )  # fmt: skip
    rows = []
    for (nn, _row), grp in members.groupby(["n", "row"], sort=True):
        r2s = grp["r2"].to_numpy()
        best = grp.iloc[int(np.nanargmax(np.where(np.isfinite(r2s), r2s, -np.inf))) if np.isfinite(r2s).any() else 0]
        rows.append({
            "n": int(nn), "depth": int(flow["depth"]), "width": int(flow.get("width", 0)) if int(flow["depth"]) else 0,
            "activation": flow["activation"], "gated": bool(gated), "flow": flow_label(flow),
            "k": int(best["k"]), "target": int(best["target"]), "target_seed": int(best["target_seed"]),
            "freqs": best["freqs"], "r2": float(best["r2"]), "r2_final": float(best["r2_final"]),
            "r2_restart_min": float(np.nanmin(r2s)) if np.isfinite(r2s).any() else math.nan,
            "restart": int(best["restart"]), "restarts": int(restarts), "best_step": int(best["best_step"]),
            "steps": int(steps), "lr": float(lr), "lr_schedule": lr_schedule, "alpha": float(alpha),
            "t_steps": int(y_std.shape[1]), "output_dim": int(output_dim), "n_params": int(n_params[int(nn)]),
            "init": kinds[int(nn)],
            "seed": int(best["seed"]), "status": "ok" if np.isfinite(best["r2"]) else "failed",
            "clamp_hits": int(grp["clamp_hits"].sum()), "skipped_steps": int(grp["skipped_steps"].sum()),
            "fit_seconds": res["seconds"] / len(members) * len(grp), "_member": int(best["member"]),
        })  # fmt: skip
    df = pd.DataFrame(rows)
    outputs = res["best_out"][df["_member"].to_numpy()] if keep_outputs else None
    df = df.drop(columns="_member")[FIT_COLUMNS]
    log.info("%s: median R2 %.3f, %.1f s", label, float(df["r2"].median()), res["seconds"])
    return df, outputs


def fit_model_class(
    n: int | Sequence[int],
    flow: Mapping,
    gated: bool,
    targets: Targets,
    *,
    restarts: int,
    steps: int,
    lr: float,
    lr_schedule: str,
    weight_decay: float,
    grad_clip: float | None,
    alpha: float,
    clamp: float,
    init: str,
    device,
    dtype: torch.dtype,
    seed: int,
    log: logging.Logger | None = None,
) -> pd.DataFrame:
    """Fit every target of ``targets`` with ``restarts`` fresh models of the class, all at once.

    Every setting is given (the sweep passes those of :class:`gnode.config.ExpressivitySettings`,
    whose defaults are the only ones).

    Args:
        n: phase-space dimension N, or a list of them: several N with the same flow field are
            padded into one ensemble (padded units stay exactly 0, so each member is the
            unpadded model of its own N; batching is what makes the sweep affordable).
        flow: ``{"depth": L, "width": M, "activation": "linear"|"relu"|"tanh"}``; depth 0 is the
            single layer ``F = act(W h + b)`` with N units (``linear`` = the linear case).
        gated: gnODE (True) or nODE (False).
        targets: the bank (R, T, O) of :func:`make_targets` (any scale: each target channel
            is standardised before fitting, which leaves R^2 unchanged).
        restarts: independent initialisations per target; the best R^2 is kept.
        steps, lr, lr_schedule ('constant' | 'cosine' decay to 0), weight_decay, grad_clip
            (max gradient norm per fit): the budget, identical for every fit.
        alpha: Euler factor dt / tau of the autonomous model.
        clamp: states are clipped to [-clamp, clamp] after every step (hits are counted).
        init: 'oscillator' starts every model whose flow can represent it (linear F; ReLU MLP
            with width >= 2N; linear MLP) from the same linear oscillator: F(h) = h W with the
            Euler map a block rotation, frequencies spread over the band of the target's K
            (see :func:`init_kind`); 'xavier' keeps the models' default init everywhere.
        device, dtype, seed: where and how to compute; seed of the initialisations.

    Returns:
        one row per (N, K, target) with the best restart: columns :data:`FIT_COLUMNS`
        (``r2`` the best R^2 seen during training, ``r2_final`` at the end, ``n_params`` per
        model, ``clamp_hits`` and ``skipped_steps`` summed over the restarts).
    """
    df, _ = _fit_group(n, flow, gated, targets, restarts=restarts, steps=steps, lr=lr, lr_schedule=lr_schedule,
                       weight_decay=weight_decay, grad_clip=grad_clip, alpha=alpha, clamp=clamp,
                       init=init, device=device, dtype=dtype, seed=seed, log=log,
                       keep_outputs=False)  # fmt: skip
    return df


# --------------------------------------------------------------------------- scores
def threshold_for(k: int | np.ndarray, threshold: float | str = "adaptive"):
    """R^2 a class must reach at complexity K.

    ``'adaptive'``: 1 - 1 / (2K), halfway between a perfect fit and (K-1)/K, the R^2 of a model
    that reproduces K-1 of the K equal-amplitude components exactly and misses the last one.
    A number: the same threshold for every K.
    """
    if isinstance(threshold, str):
        if threshold != "adaptive":
            raise ValueError(f"threshold must be 'adaptive' or a number, got {threshold!r}")
        return 1 - 0.5 / np.asarray(k, dtype=float)
    return np.full(np.shape(k), float(threshold)) if np.ndim(k) else float(threshold)


CLASS_KEYS = ["n", "depth", "width", "activation", "gated"]


def score(fits: pd.DataFrame, threshold: float | str = "adaptive", flow_order: Sequence[str] | None = None) -> pd.DataFrame:
    """Scores per model class (N, depth, width, activation, gated).

    - ``k_star``: the largest K such that the median R^2 over targets reaches
      :func:`threshold_for` at K and at every smaller K (0 if K = 1 fails);
    - ``k_star_any``: the largest K whose median passes, ignoring smaller K;
    - ``auc``: mean over K = 1..k_max of the median R^2, clipped to [0, 1];
    - ``n_params``, ``flow_rank`` (position of the flow in ``flow_order``, default the order of
      first appearance in ``fits``: list flows from simplest to richest).

    Returns one row per class with :data:`SCORE_COLUMNS`.
    """
    if fits.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    order = list(flow_order) if flow_order is not None else list(dict.fromkeys(fits["flow"]))
    rows = []
    for key, grp in fits.groupby(CLASS_KEYS, sort=True):
        med = grp.groupby("k")["r2"].median().sort_index()
        ks = med.index.to_numpy()
        passed = med.to_numpy() >= threshold_for(ks, threshold)
        k_star = 0
        for k, ok in zip(ks, passed):
            if not ok or k != k_star + 1:
                break
            k_star = int(k)
        rows.append({
            **dict(zip(CLASS_KEYS, key)), "flow": grp["flow"].iloc[0],
            "flow_rank": order.index(grp["flow"].iloc[0]) if grp["flow"].iloc[0] in order else -1,
            "n_params": int(grp["n_params"].iloc[0]), "k_max": int(ks.max()), "k_star": k_star,
            "k_star_any": int(ks[passed].max()) if passed.any() else 0,
            "auc": float(np.clip(med.to_numpy(), 0, 1).mean()),
            "n_targets": int(grp.groupby("k").size().min()), "n_fits_failed": int((grp["status"] != "ok").sum()),
            "steps": int(grp["steps"].iloc[0]), "restarts": int(grp["restarts"].iloc[0]),
        })  # fmt: skip
    out = pd.DataFrame(rows)[SCORE_COLUMNS]
    out["gated"] = out["gated"].astype(bool)
    return out.sort_values(["gated", "flow_rank", "n"]).reset_index(drop=True)


def n_needed(scores: pd.DataFrame, k: int) -> pd.DataFrame:
    """Smallest N whose capacity K* reaches ``k``, per (gated, flow): columns gated, flow,
    flow_rank, n_needed (NaN when no N of the sweep reaches it)."""
    rows = []
    for (gated, rank, flow), grp in scores.groupby(["gated", "flow_rank", "flow"], sort=True):
        ok = grp.loc[grp["k_star"] >= k, "n"]
        rows.append({"gated": bool(gated), "flow": flow, "flow_rank": int(rank), "k": int(k),
                     "n_needed": float(ok.min()) if len(ok) else math.nan})  # fmt: skip
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- sweep
def sweep_settings(settings: ExpressivitySweep | Mapping) -> ExpressivitySweep:
    """The sweep's settings: an :class:`ExpressivitySweep` (or the config's
    :class:`ExpressivitySettings`, which adds the claims) as it is, a mapping validated into one
    (the config's own model: its checks; an unknown or bad key is a ValueError naming it)."""
    if isinstance(settings, ExpressivitySweep):
        return settings
    return ExpressivitySettings.model_validate(dict(settings))


def resolve_settings(settings: ExpressivitySweep | Mapping) -> dict[str, Any]:
    """:func:`sweep_settings` as plain data (flows as dicts)."""
    return sweep_settings(settings).model_dump(mode="json")


def _n_groups(ns: Sequence[int], per_n: int, max_members: int) -> list[list[int]]:
    """Split the N values into groups of at most ``max_members`` members (>= one N each)."""
    groups, cur = [], []
    for n in sorted(ns):
        if cur and (len(cur) + 1) * per_n > max_members:
            groups.append(cur)
            cur = []
        cur.append(int(n))
    return groups + ([cur] if cur else [])


def _targets_from(s: ExpressivitySweep, seed: int, k_values=None, per_k=None) -> Targets:
    return make_targets(
        k_values if k_values is not None else range(1, s.k_max + 1),
        per_k if per_k is not None else s.targets_per_k,
        t_steps=s.t_steps, output_dim=s.output_dim, seed=seed, f_min=s.f_min, min_gap=s.min_gap, slack=s.band_slack,
    )  # fmt: skip


def _fit_kwargs(s: ExpressivitySweep) -> dict[str, Any]:
    """The fitting budget of :func:`fit_model_class`, from the sweep's settings."""
    return {key: getattr(s, key) for key in ("restarts", "steps", "lr", "lr_schedule", "weight_decay", "grad_clip",
                                             "alpha", "clamp", "init")}  # fmt: skip


def run_sweep(
    settings: ExpressivitySweep | Mapping, *, device, dtype: torch.dtype, seed: int, log: logging.Logger | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit and score every model class of ``settings`` (:func:`sweep_settings`; docs/expressivity.md).

    Classes sharing a flow field and gating are batched over N (in groups of at most
    ``max_members`` fits). Returns (fits, scores): :func:`fit_model_class` rows for all classes
    and :func:`score` rows.
    """
    log = log or logger
    s = sweep_settings(settings)
    flows = [f.model_dump() for f in s.flows]  # {depth, width, activation}
    targets = _targets_from(s, seed)
    phase = max_phase_per_step(s.k_max, s.t_steps, f_min=s.f_min, min_gap=s.min_gap, slack=s.band_slack)
    if phase > 0.35:
        log.warning("expressivity: the fastest target advances %.2f rad per step; raise t_steps (<= 0.3 advised)", phase)
    per_n = len(targets.meta) * s.restarts
    jobs = [(flow, bool(g), grp) for flow in flows for g in s.gated
            for grp in _n_groups(s.n, per_n, s.max_members)]  # fmt: skip
    log.info("expressivity sweep: %d classes in %d batched ensembles, %d targets x %d restarts per class, %d steps",
             len(s.n) * len(flows) * len(s.gated), len(jobs), len(targets.meta), s.restarts, s.steps)
    frames, t0 = [], time.perf_counter()
    for i, (flow, gated, ns) in enumerate(jobs, 1):
        df = fit_model_class(ns, flow, gated, targets, device=device, dtype=dtype, seed=seed, log=log, **_fit_kwargs(s))
        frames.append(df)
        for n, g in df.groupby("n"):
            med = g.groupby("k")["r2"].median()
            log.info("expressivity [%d/%d] %s %s N=%d: median R2 by K %s  (%.0f s elapsed)", i, len(jobs),
                     flow_label(flow), "gated" if gated else "non-gated", n,
                     " ".join(f"{v:.3f}" for v in med.to_numpy()), time.perf_counter() - t0)  # fmt: skip
    fits = pd.concat(frames, ignore_index=True)
    scores = score(fits, s.threshold, flow_order=[flow_label(f) for f in flows])
    return fits, scores


def example_fits(
    classes: Sequence[Mapping],
    k_values: Sequence[int],
    settings: ExpressivitySweep | Mapping,
    *,
    device,
    dtype: torch.dtype,
    seed: int,
    log: logging.Logger | None = None,
) -> pd.DataFrame:
    """Target and best fitted trajectory of target 0 at each K for a few classes.

    Args:
        classes: dicts ``{"n": N, "depth": L, "width": M, "activation": ..., "gated": bool}``.
        k_values: the complexities to show.
        settings: as for :func:`run_sweep` (budget, targets, alpha...).

    Returns:
        long table with columns n, depth, width, activation, gated, flow, k, channel, t (in
        windows, (0, 1]), target, output (both in the standardised units of the fit), r2.
    """
    s = sweep_settings(settings)
    targets = _targets_from(s, seed, k_values=list(k_values), per_k=1)
    y = _standardise(targets.y)
    tt = np.arange(1, y.shape[1] + 1) / y.shape[1]
    groups: dict[tuple, list[int]] = {}
    for c in classes:  # classes sharing a flow field and gating are fitted as one ensemble
        key = (int(c["depth"]), int(c.get("width", 0)), c["activation"], bool(c["gated"]))
        groups.setdefault(key, []).append(int(c["n"]))
    frames = []
    for (depth, width, act, gated), ns in groups.items():
        flow = {"depth": depth, "width": width, "activation": act}
        df, out = _fit_group(sorted(set(ns)), flow, gated, targets, device=device, dtype=dtype, seed=seed, log=log,
                             keep_outputs=True, **_fit_kwargs(s))  # fmt: skip
        for i, row in enumerate(df.itertuples(index=False)):
            r = int(np.flatnonzero((targets.meta["k"] == row.k).to_numpy() & (targets.meta["target"] == row.target).to_numpy())[0])
            for ch in range(y.shape[2]):
                frames.append(pd.DataFrame({
                    "n": row.n, "depth": row.depth, "width": row.width, "activation": row.activation,
                    "gated": row.gated, "flow": row.flow, "k": row.k, "channel": ch, "t": tt,
                    "target": y[r, :, ch], "output": out[i, :, ch], "r2": row.r2,
                }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)[EXAMPLE_COLUMNS]
