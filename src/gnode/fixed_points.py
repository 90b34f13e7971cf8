"""Fixed- and slow-point finder for continuous-time vector fields.

Method of Sussillo & Barak (2013), as packaged in FixedPointFinder (Golub & Sussillo
2018): minimise the "kinetic energy"

    q(h) = 0.5 * ||f(h)||^2

from many initial states (typically sampled from trajectories of a trained model),
keep the minima with small q (q == 0: fixed points; small q > 0: slow points),
deduplicate them, and linearise f around each one.

Conventions
-----------
* ``f`` is a *batched, autonomous, continuous-time* vector field: a callable mapping
  states ``h`` of shape (B, N) to ``dh/dt`` of shape (B, N). Any constant input is
  baked in by the caller. Rows must be independent (row i of the output depends only
  on row i of the input), which is what makes the batched optimisation and the
  Jacobian below valid.
* ``q`` has units of (state units / time unit)^2; eigenvalues of df/dh are rates
  (1 / time unit). Stability uses the continuous-time convention: a point is stable
  when every eigenvalue has real part < -stability_tol.
* All computation happens on the device and in the dtype of ``initial_states``.
  Randomness only comes from the ``torch.Generator`` passed in (when none is passed,
  torch's default generator is used, so results are then not reproducible by seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

__all__ = [
    "FixedPoints",
    "find_fixed_points",
    "jacobian",
    "sample_initial_states",
]

VectorField = Callable[[torch.Tensor], torch.Tensor]

# Adam, with beta2 = 0.99 rather than the usual 0.999 and a learning rate that is
# constant for the first half of the run (search) then decays exponentially to
# lr * 1e-3 (polish). Choice from trials on random tanh RNNs (N=100, g=1.5, 300 initial
# states from trajectories, 2000 steps, 2 networks) and on the ring attractor:
# * beta2=0.999, constant rate: as many *distinct* fixed points with q < 1e-8 (11, 13),
#   but only ~1/3 of the states got there; the long memory of v keeps the steps tiny
#   near a minimum (ring: 1500 steps to q < 1e-10 everywhere).
# * beta2=0.99, constant rate: fast approach (ring: 600 steps) but points hover at
#   q ~ 1e-6 at the rate's scale and none reached 1e-8 on the RNNs.
# * beta2=0.99 plus this decay: about the same distinct points (13, 10), ~60% of the
#   states below q < 1e-8; ring still 600 steps.
# * per-point halving of the rate (on every increase of q, as FixedPointFinder's adaptive
#   rate; or on plateaus of 50-400 steps) converged many states but onto fewer distinct
#   points (down to 4 vs 10-13): it slows down points that are still travelling.
# A point is frozen once its q < q_stop (no more steps; Adam state zeroed so nothing
# shrinks into subnormal floats, which are very slow on CPUs).
_BETA1 = 0.9
_BETA2 = 0.99
_ADAM_EPS = 1e-12  # small: near a fixed point gradients are tiny, eps must not dominate
_DECAY_START = 0.5  # fraction of n_iter run at the full rate
_FINAL_LR_FACTOR = 1e-3  # rate at n_iter, relative to lr
_CHECK_EVERY = 50  # steps between checks for "all frozen" (avoids a sync every step)
_STOP_FACTOR = 1e-2  # frozen once q is below this fraction of min(q_tol, fixed_tol)
_JAC_CHUNK_ELEMS = 2**22  # max P*N*N input elements per chunk of the Jacobian


@dataclass
class FixedPoints:
    """Unique fixed/slow points of a vector field and their linearisation.

    Points are ordered by increasing ``speed`` (q). P is the number of unique points,
    N the state dimension.

    Attributes:
        points: (P, N) states h* with q(h*) < q_tol.
        speed: (P,) q(h*) = 0.5 * ||f(h*)||^2, in (state units / time unit)^2.
        jacobians: (P, N, N) df/dh at each point, ``jacobians[p, i, j] = d f_i / d h_j``.
        eigenvalues: (P, N) complex eigenvalues of each Jacobian (rates, 1 / time
            unit), sorted by decreasing real part (ties: decreasing imaginary part).
        stable: (P,) bool, all Re(eig) < -stability_tol.
        n_initial: number of initial states optimised.
        n_converged: number of initial states that reached q < q_tol (before
            deduplication).
        fixed_tol: points with q < fixed_tol count as fixed, the others as slow.
        stability_tol: tolerance used for ``stable`` and ``n_unstable``.
    """

    points: torch.Tensor
    speed: torch.Tensor
    jacobians: torch.Tensor
    eigenvalues: torch.Tensor
    stable: torch.Tensor
    n_initial: int
    n_converged: int
    fixed_tol: float = float("inf")
    stability_tol: float = 1e-6

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def is_fixed(self) -> torch.Tensor:
        """(P,) bool: q < fixed_tol (fixed point) rather than only a slow point."""
        return self.speed < self.fixed_tol

    @property
    def n_unstable(self) -> torch.Tensor:
        """(P,) int64: number of eigenvalues with real part > stability_tol."""
        return (self.eigenvalues.real > self.stability_tol).sum(dim=-1)

    @property
    def max_real_eig(self) -> torch.Tensor:
        """(P,) largest real part of the eigenvalues (-inf when N == 0)."""
        if self.eigenvalues.shape[-1] == 0:
            return torch.full_like(self.speed, float("-inf"))
        return self.eigenvalues.real.amax(dim=-1)

    def to_frame(self, **labels) -> pd.DataFrame:
        """One row per point, as a tidy table.

        Columns, in order: the ``labels`` (constant columns, e.g. model=..., seed=...),
        ``point_id`` (0..P-1, by increasing q), ``h_0`` .. ``h_{N-1}`` (the state),
        ``q``, ``max_real_eig``, ``n_unstable``, ``stable``, ``is_fixed``, ``eig_real``
        and ``eig_imag`` (lists of N floats, sorted as ``eigenvalues``).
        """
        n_points, n_dim = self.points.shape
        pts = self.points.detach().cpu().double().numpy()
        eig = self.eigenvalues.detach().cpu().to(torch.complex128).numpy()
        data: dict[str, object] = {}
        for key, value in labels.items():
            data[key] = [value] * n_points
        data["point_id"] = list(range(n_points))
        for j in range(n_dim):
            data[f"h_{j}"] = pts[:, j]
        data["q"] = self.speed.detach().cpu().double().numpy()
        data["max_real_eig"] = self.max_real_eig.detach().cpu().double().numpy()
        data["n_unstable"] = self.n_unstable.detach().cpu().numpy().astype("int64")
        data["stable"] = self.stable.detach().cpu().numpy().astype(bool)
        data["is_fixed"] = self.is_fixed.detach().cpu().numpy().astype(bool)
        data["eig_real"] = [row.real.tolist() for row in eig]
        data["eig_imag"] = [row.imag.tolist() for row in eig]
        frame = pd.DataFrame(data)
        frame["point_id"] = frame["point_id"].astype("int64")
        return frame


def _randn(shape, *, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped ``shape`` on like's device/dtype, drawn from generator.

    Drawn on the generator's own device (a CPU generator cannot fill a CUDA tensor),
    then moved, so the same seed gives the same numbers whatever the data device.
    """
    device = generator.device if generator is not None else like.device
    noise = torch.randn(shape, generator=generator, device=device, dtype=like.dtype)
    return noise.to(like.device)


def sample_initial_states(
    trajectories: torch.Tensor,
    n: int,
    *,
    noise_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random states from trajectories, to seed the fixed-point search.

    Args:
        trajectories: (..., N) states visited by the model (e.g. (batch, time, N)).
        n: number of states to return.
        noise_std: std of isotropic gaussian noise added to each state (state units).
        generator: source of randomness (rows and noise).

    Returns:
        (n, N) tensor on the device/dtype of ``trajectories``: rows drawn without
        replacement when n <= number of available states, with replacement otherwise.
    """
    if trajectories.dim() < 1:
        raise ValueError("trajectories must have shape (..., N)")
    states = trajectories.detach().reshape(-1, trajectories.shape[-1])
    n_avail = states.shape[0]
    if n_avail == 0:
        raise ValueError("trajectories contain no states")
    if n < 0:
        raise ValueError("n must be non-negative")
    idx_device = generator.device if generator is not None else torch.device("cpu")
    if n <= n_avail:
        idx = torch.randperm(n_avail, generator=generator, device=idx_device)[:n]
    else:
        idx = torch.randint(n_avail, (n,), generator=generator, device=idx_device)
    out = states[idx.to(states.device)].clone()
    if noise_std > 0:
        out = out + noise_std * _randn(out.shape, like=out, generator=generator)
    return out


def _speed(f: VectorField, h: torch.Tensor) -> torch.Tensor:
    """(B, N) -> (B,) q(h) = 0.5 * ||f(h)||^2, without building a graph."""
    with torch.no_grad():
        return 0.5 * f(h).pow(2).sum(dim=-1)


def jacobian(f: VectorField, h: torch.Tensor) -> torch.Tensor:
    """Batched Jacobian of a batched vector field.

    Args:
        f: vector field, (B, N) -> (B, N), rows independent.
        h: (P, N) states.

    Returns:
        (P, N, N) tensor, ``J[p, i, j] = d f_i / d h_j`` at ``h[p]`` (1 / time unit),
        detached, on h's device/dtype. Parameters' ``.grad`` of f are not touched.
    """
    if h.dim() != 2:
        raise ValueError(f"h must have shape (P, N), got {tuple(h.shape)}")
    h = h.detach()
    n_points, n_dim = h.shape
    if n_points == 0 or n_dim == 0:
        return h.new_zeros((n_points, n_dim, n_dim))
    # Vectorised reverse mode without torch.func: each point is repeated N times and
    # copy i of point p back-propagates only output i, so one backward pass through a
    # (P*N, N) batch gives all P Jacobians (exact because rows of f are independent).
    # Same work as vmap(jacrev), but works for any f that autograd handles (Python
    # control flow, in-place ops...) and avoids torch.func's first-call import of
    # torch._dynamo (2-5 s per process). Chunked over points to bound memory.
    eye = torch.eye(n_dim, dtype=h.dtype, device=h.device)
    chunk = max(1, _JAC_CHUNK_ELEMS // (n_dim * n_dim))
    blocks = []
    for start in range(0, n_points, chunk):
        hc = h[start : start + chunk]
        rep = hc.repeat_interleave(n_dim, dim=0).requires_grad_(True)
        with torch.enable_grad():
            out = f(rep)
            selected = (out * eye.repeat(hc.shape[0], 1)).sum()
            (grad,) = torch.autograd.grad(selected, rep)
        blocks.append(grad.reshape(hc.shape[0], n_dim, n_dim))
    return torch.cat(blocks, dim=0).detach()


def _sorted_eigenvalues(jac: torch.Tensor) -> torch.Tensor:
    """(P, N, N) -> (P, N) complex eigenvalues, by decreasing real then imaginary part."""
    if jac.shape[0] == 0 or jac.shape[-1] == 0:
        ctype = torch.complex128 if jac.dtype == torch.float64 else torch.complex64
        return torch.zeros(jac.shape[:-1], dtype=ctype, device=jac.device)
    eig = torch.linalg.eigvals(jac)
    # two stable sorts = lexicographic order; conjugate pairs (LAPACK gives them equal
    # real parts) come out as (+imag, -imag)
    order = torch.sort(eig.imag, dim=-1, descending=True, stable=True).indices
    eig = torch.gather(eig, -1, order)
    order = torch.sort(eig.real, dim=-1, descending=True, stable=True).indices
    return torch.gather(eig, -1, order)


def _deduplicate(points: torch.Tensor, speed: torch.Tensor, tol: float) -> torch.Tensor:
    """Indices of unique points: greedy by increasing q, dropping any point closer than
    ``tol`` (Euclidean) to an already kept one. Returns indices sorted by increasing q."""
    order = torch.argsort(speed, stable=True)
    if points.shape[0] <= 1 or tol <= 0:
        return order
    pts = points[order]
    # direct differences, not the |a|^2+|b|^2-2ab matrix trick: that loses the
    # precision needed to compare distances of ~1e-3 between states of norm ~1
    close = torch.cdist(pts, pts, compute_mode="donot_use_mm_for_euclid_dist") < tol
    close = close.cpu()  # the greedy pass is sequential: do it off-device, no syncs
    n = close.shape[0]
    removed = torch.zeros(n, dtype=torch.bool)
    keep = []
    for i in range(n):
        if removed[i]:
            continue
        keep.append(i)
        removed |= close[i]
    return order[torch.tensor(keep, dtype=torch.long).to(order.device)]


def _learning_rate(step: int, n_iter: int, lr: float) -> float:
    """Rate at ``step`` (1-based): lr for the first half, then exponential decay."""
    start = _DECAY_START * n_iter
    if step <= start:
        return lr
    frac = (step - start) / max(n_iter - start, 1.0)
    return lr * _FINAL_LR_FACTOR**frac


def _minimise_speed(
    f: VectorField, h0: torch.Tensor, *, n_iter: int, lr: float, q_stop: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched Adam on q, independently per row. Returns the best (h, q) seen per row.

    Rows are frozen once q < q_stop; the loop ends after n_iter steps or once every row
    is frozen (or has blown up to inf/nan).
    """
    h = h0.detach().clone()
    n_points = h.shape[0]
    m = torch.zeros_like(h)
    v = torch.zeros_like(h)
    best_h = h.clone()
    best_q = torch.full((n_points,), float("inf"), dtype=h.dtype, device=h.device)
    for step in range(1, n_iter + 1):
        h.requires_grad_(True)
        with torch.enable_grad():
            q = 0.5 * f(h).pow(2).sum(dim=-1)
            # rows are independent, so the gradient of the sum is the per-row gradient;
            # autograd.grad (not backward) leaves parameters' .grad of f untouched
            (grad,) = torch.autograd.grad(q.sum(), h)
        h = h.detach()
        q = q.detach()
        ok = torch.isfinite(q) & torch.isfinite(grad).all(dim=-1)
        improved = ok & (q < best_q)
        best_q = torch.where(improved, q, best_q)
        best_h = torch.where(improved.unsqueeze(-1), h, best_h)
        # a row stops once converged; one that blew up stops too (its best is kept)
        active = ok & (best_q >= q_stop)
        if step % _CHECK_EVERY == 0 and not bool(active.any()):
            break

        # where (not a 0/1 product) so that inf/nan gradients cannot leak into m, v
        keep = active.unsqueeze(-1)
        zero = torch.zeros_like(h)
        grad = torch.where(keep, grad, zero)
        m = torch.where(keep, _BETA1 * m + (1 - _BETA1) * grad, zero)
        v = torch.where(keep, _BETA2 * v + (1 - _BETA2) * grad * grad, zero)
        m_hat = m / (1 - _BETA1**step)
        v_hat = v / (1 - _BETA2**step)
        h = h - _learning_rate(step, n_iter, lr) * m_hat / (v_hat.sqrt() + _ADAM_EPS)

    # the last update has not been evaluated yet
    q = _speed(f, h)
    improved = torch.isfinite(q) & (q < best_q)
    best_q = torch.where(improved, q, best_q)
    best_h = torch.where(improved.unsqueeze(-1), h, best_h)
    return best_h, best_q


def find_fixed_points(
    f: VectorField,
    initial_states: torch.Tensor,
    *,
    n_iter: int = 2000,
    lr: float = 1e-2,
    q_tol: float = 1e-8,
    fixed_tol: float | None = None,
    dedup_tol: float = 1e-3,
    stability_tol: float = 1e-6,
    noise_std: float = 0.0,
    generator: torch.Generator | None = None,
    max_points: int | None = None,
) -> FixedPoints:
    """Find fixed and slow points of ``dh/dt = f(h)`` by minimising q = 0.5 ||f(h)||^2.

    All initial states are optimised at once with Adam (each row an independent
    problem; a row stops moving once its q < min(q_tol, fixed_tol) / 100), for at most
    ``n_iter`` steps (fewer once every row has stopped). The learning rate is ``lr`` for
    the first half of the steps, then decays exponentially to ``lr * 1e-3``.

    Args:
        f: batched vector field, (B, N) -> (B, N) (dh/dt, constant input baked in).
        initial_states: (B, N) starting states; sets the device and dtype of everything.
        n_iter: maximum number of Adam steps.
        lr: initial Adam learning rate, roughly the step length in state units.
        q_tol: keep minima with q < q_tol ("converged": fixed or slow points).
        fixed_tol: stricter q threshold separating fixed points (q < fixed_tol) from
            slow points; None means every kept point counts as fixed (= q_tol).
        dedup_tol: points closer than this (Euclidean, state units) are merged,
            keeping the one with the lowest q; 0 disables deduplication.
        stability_tol: stable means all Re(eig) < -stability_tol (1 / time unit).
        noise_std: std of gaussian noise added to the initial states (state units).
        generator: source of the noise (the only randomness).
        max_points: keep at most this many unique points, those with the lowest q.

    Returns:
        FixedPoints with P unique points sorted by increasing q.
    """
    if initial_states.dim() != 2:
        raise ValueError(
            f"initial_states must have shape (B, N), got {tuple(initial_states.shape)}"
        )
    if fixed_tol is None:
        fixed_tol = q_tol
    h0 = initial_states.detach().clone()
    if noise_std > 0:
        h0 = h0 + noise_std * _randn(h0.shape, like=h0, generator=generator)
    best_h, best_q = _minimise_speed(
        f, h0, n_iter=n_iter, lr=lr, q_stop=_STOP_FACTOR * min(q_tol, fixed_tol)
    )
    points, speed, n_converged = _unique_minima(
        best_h, best_q, q_tol=q_tol, dedup_tol=dedup_tol, max_points=max_points
    )
    return _linearise(
        f,
        points,
        speed,
        n_initial=int(initial_states.shape[0]),
        n_converged=n_converged,
        fixed_tol=float(fixed_tol),
        stability_tol=float(stability_tol),
    )


def _unique_minima(
    best_h: torch.Tensor,
    best_q: torch.Tensor,
    *,
    q_tol: float,
    dedup_tol: float,
    max_points: int | None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The minima (B, N) / (B,) with q < q_tol, deduplicated, at most ``max_points``.

    Returns (points (P, N), q (P,)) by increasing q and the number of converged rows
    (before deduplication).
    """
    converged = best_q < q_tol
    cand_h = best_h[converged]
    cand_q = best_q[converged]
    keep = _deduplicate(cand_h, cand_q, dedup_tol)
    if max_points is not None:
        keep = keep[:max_points]
    return cand_h[keep], cand_q[keep], int(converged.sum())


def _linearise(
    f: VectorField,
    points: torch.Tensor,
    speed: torch.Tensor,
    *,
    n_initial: int,
    n_converged: int,
    fixed_tol: float,
    stability_tol: float,
) -> FixedPoints:
    """Jacobians, sorted eigenvalues and stability at ``points`` (P, N) with q ``speed`` (P,)."""
    jac = jacobian(f, points)
    eig = _sorted_eigenvalues(jac)
    stable = (eig.real < -stability_tol).all(dim=-1)
    return FixedPoints(
        points=points,
        speed=speed,
        jacobians=jac,
        eigenvalues=eig,
        stable=stable,
        n_initial=n_initial,
        n_converged=n_converged,
        fixed_tol=fixed_tol,
        stability_tol=stability_tol,
    )
