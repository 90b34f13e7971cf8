"""Tests of gnode.fixed_points against systems whose fixed points are known exactly."""

import math

import pandas as pd
import pytest
import torch

from gnode import fixed_points
from gnode.fixed_points import (
    FixedPoints,
    find_fixed_points,
    jacobian,
    sample_initial_states,
)

F64 = torch.float64


def cubic(h):
    """h' = h - h^3: fixed points -1, 0, 1 with f' = -2, 1, -2."""
    return h - h**3


def ring(h):
    """h' = h (1 - |h|^2): the unit circle is a ring of fixed points (and the origin)."""
    return h * (1 - (h**2).sum(dim=-1, keepdim=True))


def rotation(seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=F64))
    return q


def linear_field(a):
    return lambda h: h @ a.T


def cube_states(n, dim, half_width, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, dim, generator=g, dtype=F64) * 2 - 1) * half_width


# --------------------------------------------------------------------------- linear


def test_stable_linear_system_single_point_at_origin_with_eigenvalues_of_a():
    block = torch.tensor(
        [[-1.0, 0, 0, 0], [0, -2.0, 0, 0], [0, 0, -0.5, 1.0], [0, 0, -1.0, -0.5]],
        dtype=F64,
    )
    q = rotation(0)
    a = q @ block @ q.T  # eigenvalues -1, -2, -0.5 +- 1j, in a non-trivial basis
    fp = find_fixed_points(linear_field(a), cube_states(20, 4, 1.0, seed=1))

    assert isinstance(fp, FixedPoints)
    assert len(fp) == 1 and fp.points.shape == (1, 4)
    assert fp.n_initial == 20 and fp.n_converged == 20
    assert fp.points.norm() < 1e-4
    assert fp.speed.item() < 1e-8
    torch.testing.assert_close(fp.jacobians[0], a, rtol=0, atol=1e-10)
    expected = torch.tensor([-0.5 + 1j, -0.5 - 1j, -1.0, -2.0], dtype=torch.complex128)
    torch.testing.assert_close(fp.eigenvalues[0], expected, rtol=0, atol=1e-10)
    assert fp.stable.tolist() == [True]
    assert fp.n_unstable.tolist() == [0]
    assert fp.max_real_eig.item() == pytest.approx(-0.5, abs=1e-10)


def test_unstable_linear_system_is_flagged_unstable():
    q = rotation(1)
    a = q @ torch.diag(torch.tensor([0.7, -1.0, -1.5, 2.0], dtype=F64)) @ q.T
    with torch.no_grad():  # callers may be in no-grad mode: the search enables grad itself
        fp = find_fixed_points(linear_field(a), cube_states(10, 4, 1.0, seed=2))
    assert len(fp) == 1
    assert fp.points.norm() < 1e-4
    torch.testing.assert_close(
        fp.eigenvalues[0].real, torch.tensor([2.0, 0.7, -1.0, -1.5], dtype=F64)
    )
    assert fp.stable.tolist() == [False]
    assert fp.n_unstable.tolist() == [2]


# --------------------------------------------------------------------------- cubic


def test_cubic_three_points_with_known_stability():
    h0 = torch.linspace(-2, 2, 41, dtype=F64).unsqueeze(-1)
    fp = find_fixed_points(cubic, h0)

    assert fp.n_converged == 41
    order = torch.argsort(fp.points[:, 0])
    pts = fp.points[order, 0]
    torch.testing.assert_close(pts, torch.tensor([-1.0, 0.0, 1.0], dtype=F64), atol=1e-4, rtol=0)
    eig = fp.eigenvalues[order, 0]
    torch.testing.assert_close(
        eig.real, torch.tensor([-2.0, 1.0, -2.0], dtype=F64), atol=1e-3, rtol=0
    )
    assert torch.all(eig.imag == 0)
    assert fp.stable[order].tolist() == [True, False, True]
    assert fp.n_unstable[order].tolist() == [0, 1, 0]
    # sorted by increasing q
    assert torch.all(fp.speed[1:] >= fp.speed[:-1])


def test_float32_works_and_keeps_dtype():
    h0 = torch.linspace(-2, 2, 21, dtype=torch.float32).unsqueeze(-1)
    fp = find_fixed_points(cubic, h0, q_tol=1e-6)
    assert fp.points.dtype == torch.float32 and fp.jacobians.dtype == torch.float32
    assert fp.eigenvalues.dtype == torch.complex64
    pts = torch.sort(fp.points[:, 0]).values
    torch.testing.assert_close(pts, torch.tensor([-1.0, 0.0, 1.0]), atol=1e-3, rtol=0)


# --------------------------------------------------------------------------- ring


def test_ring_attractor_points_on_unit_circle_with_marginal_direction():
    h0 = cube_states(200, 2, 1.5, seed=3)
    fp = find_fixed_points(ring, h0, stability_tol=1e-3)

    radius = fp.points.norm(dim=-1)
    at_origin = radius < 1e-3
    on_ring = ~at_origin
    assert on_ring.sum() >= 50  # a continuum: dedup at 1e-3 leaves many points
    assert torch.all((radius[on_ring] - 1).abs() < 1e-3)

    angles = torch.atan2(fp.points[on_ring, 1], fp.points[on_ring, 0])
    bins = torch.floor((angles + math.pi) / (2 * math.pi / 12)).long().clamp(max=11)
    assert len(torch.unique(bins)) >= 10  # covers the circle, not one arc

    eig = fp.eigenvalues[on_ring]
    assert torch.all(eig.imag.abs() < 1e-9)
    assert torch.all(eig.real[:, 0].abs() < 1e-3)  # tangent: marginal
    assert torch.all((eig.real[:, 1] + 2).abs() < 1e-3)  # radial: -2
    # marginal is neither stable nor unstable at this tolerance
    assert not fp.stable[on_ring].any()
    assert torch.all(fp.n_unstable[on_ring] == 0)
    # the origin, if found, is a repeller with eigenvalues (1, 1)
    if at_origin.any():
        torch.testing.assert_close(
            fp.eigenvalues[at_origin].real,
            torch.ones(int(at_origin.sum()), 2, dtype=F64),
            atol=1e-3,
            rtol=0,
        )
        assert torch.all(fp.n_unstable[at_origin] == 2)


# --------------------------------------------------------------------------- slow points


def test_slow_point_kept_by_q_tol_but_not_fixed():
    # h' = h^2 + c, c > 0: no fixed point, but the ghost of a saddle-node bifurcation at
    # h = 0 is a slow point with q = c^2 / 2 and derivative 0.
    c = 1e-3
    fp = find_fixed_points(
        lambda h: h**2 + c,
        torch.tensor([[-0.3], [0.2], [0.5]], dtype=F64),
        q_tol=1e-6,
        fixed_tol=1e-8,
    )
    assert len(fp) == 1
    assert abs(fp.points.item()) < 0.01
    assert fp.speed.item() == pytest.approx(0.5 * c**2, rel=0.25)
    assert fp.is_fixed.tolist() == [False]
    assert abs(fp.eigenvalues.real.item()) < 0.02


def test_q_tol_filters_points_and_fixed_tol_defaults_to_q_tol():
    c = 1e-3
    fp = find_fixed_points(
        lambda h: h**2 + c, torch.tensor([[0.2]], dtype=F64), n_iter=200, q_tol=1e-8
    )
    assert len(fp) == 0 and fp.n_converged == 0
    assert fp.points.shape == (0, 1) and fp.eigenvalues.shape == (0, 1)
    h0 = torch.linspace(-2, 2, 9, dtype=F64).unsqueeze(-1)
    fp = find_fixed_points(cubic, h0)
    assert fp.fixed_tol == 1e-8 and fp.is_fixed.all()


def test_rows_that_blow_up_are_dropped():
    # exp overflows for the far-away state: its q is inf from the start
    h0 = torch.tensor([[-0.5], [0.3], [800.0]], dtype=F64)
    fp = find_fixed_points(lambda h: torch.exp(h) - 1, h0)
    assert fp.n_converged == 2
    assert len(fp) == 1 and abs(fp.points.item()) < 1e-4


# --------------------------------------------------------------------------- dedup


def test_dedup_merges_states_converging_to_the_same_point():
    g = torch.Generator().manual_seed(4)
    # all in the basin of 1 for descent on q (q has a local max at 1/sqrt(3) = 0.577)
    h0 = 0.7 + 0.8 * torch.rand(50, 1, generator=g, dtype=F64)
    fp = find_fixed_points(cubic, h0)
    assert fp.n_converged == 50
    assert len(fp) == 1
    assert fp.points.item() == pytest.approx(1.0, abs=1e-4)


def test_dedup_disabled_and_max_points():
    h0 = torch.linspace(-2, 2, 41, dtype=F64).unsqueeze(-1)
    fp_all = find_fixed_points(cubic, h0, dedup_tol=0.0)
    assert len(fp_all) == fp_all.n_converged == 41

    fp = find_fixed_points(cubic, h0, dedup_tol=10.0)  # everything within 10: one left
    assert len(fp) == 1
    assert fp.speed.item() == fp_all.speed.min().item()  # the one with the lowest q

    fp = find_fixed_points(cubic, h0, max_points=2)
    assert len(fp) == 2
    full = find_fixed_points(cubic, h0)
    torch.testing.assert_close(fp.speed, full.speed[:2])


# --------------------------------------------------------------------------- jacobian


def _tanh_field(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, n, generator=g, dtype=F64)
    b = torch.randn(n, generator=g, dtype=F64)

    def f(h):
        return -h + torch.tanh(h @ w.T + b)

    def analytic(h):
        s = 1 - torch.tanh(h @ w.T + b) ** 2  # (P, N)
        return s.unsqueeze(-1) * w - torch.eye(n, dtype=F64)

    return f, analytic


def test_jacobian_matches_analytic():
    f, analytic = _tanh_field()
    h = torch.randn(7, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
    jac = jacobian(f, h)
    assert jac.shape == (7, 5, 5)
    torch.testing.assert_close(jac, analytic(h), rtol=0, atol=1e-12)
    assert jacobian(f, h[:0]).shape == (0, 5, 5)


def test_jacobian_with_python_control_flow_and_chunks(monkeypatch):
    f, analytic = _tanh_field()

    def f_branchy(h):
        # data-dependent Python control flow (torch.func.vmap would refuse this)
        if h.abs().max() > 100:
            return h
        return f(h)

    h = torch.randn(6, 5, generator=torch.Generator().manual_seed(2), dtype=F64)
    torch.testing.assert_close(jacobian(f_branchy, h), analytic(h), rtol=0, atol=1e-12)
    # several chunks (4 points each) give the same result
    monkeypatch.setattr(fixed_points, "_JAC_CHUNK_ELEMS", 4 * 25)
    torch.testing.assert_close(jacobian(f, h), analytic(h), rtol=0, atol=1e-12)


def test_jacobian_and_search_leave_module_grads_alone():
    net = torch.nn.Linear(3, 3).double()

    def field(h):
        return -h + torch.tanh(net(h))

    h = torch.randn(4, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    jac = jacobian(field, h)
    assert not jac.requires_grad
    find_fixed_points(field, h, n_iter=20)
    assert all(p.grad is None for p in net.parameters())


# --------------------------------------------------------------------------- randomness


def test_reproducible_with_generator_float64():
    h0 = cube_states(30, 2, 1.5, seed=5)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return find_fixed_points(ring, h0, n_iter=300, noise_std=0.1, generator=g)

    a, b, c = run(7), run(7), run(8)
    assert a.points.dtype == F64
    assert torch.equal(a.points, b.points) and torch.equal(a.speed, b.speed)
    assert torch.equal(a.eigenvalues, b.eigenvalues)
    assert not (a.points.shape == c.points.shape and torch.equal(a.points, c.points))


def test_sample_initial_states():
    traj = torch.randn(4, 25, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    rows = traj.reshape(-1, 3)

    x = sample_initial_states(traj, 40, generator=torch.Generator().manual_seed(1))
    assert x.shape == (40, 3) and x.dtype == F64
    # each sample is a row of the trajectories, without replacement when n <= 100
    match = (x.unsqueeze(1) == rows.unsqueeze(0)).all(-1)
    assert torch.all(match.sum(1) == 1)
    assert len(torch.unique(match.float().argmax(1))) == 40

    big = sample_initial_states(traj, 150, generator=torch.Generator().manual_seed(1))
    assert big.shape == (150, 3)

    y = sample_initial_states(traj, 40, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, y)
    noisy = sample_initial_states(
        traj, 40, noise_std=0.5, generator=torch.Generator().manual_seed(1)
    )
    assert not torch.equal(noisy, x)
    assert (noisy - x).std().item() == pytest.approx(0.5, rel=0.3)


# --------------------------------------------------------------------------- to_frame


def test_to_frame_columns_rows_and_labels():
    h0 = torch.linspace(-2, 2, 41, dtype=F64).unsqueeze(-1)
    fp = find_fixed_points(cubic, h0)
    df = fp.to_frame(model="cubic", seed=3)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == [
        "model", "seed", "point_id", "h_0", "q", "max_real_eig", "n_unstable",
        "stable", "is_fixed", "eig_real", "eig_imag",
    ]  # fmt: skip
    assert len(df) == len(fp) == 3
    assert (df["model"] == "cubic").all() and (df["seed"] == 3).all()
    assert df["point_id"].tolist() == [0, 1, 2]
    assert df["stable"].dtype == bool and df["is_fixed"].dtype == bool
    by_h = df.sort_values("h_0").reset_index(drop=True)
    assert by_h["h_0"].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-4)
    assert by_h["stable"].tolist() == [True, False, True]
    assert by_h["n_unstable"].tolist() == [0, 1, 0]
    assert by_h["max_real_eig"].tolist() == pytest.approx([-2.0, 1.0, -2.0], abs=1e-3)
    assert all(len(r) == 1 for r in df["eig_real"]) and all(len(r) == 1 for r in df["eig_imag"])

    # N-D: one h_i column per dimension, eigenvalue lists of length N
    fp2 = find_fixed_points(ring, cube_states(20, 2, 1.5, seed=6))
    df2 = fp2.to_frame()
    assert {"h_0", "h_1"} <= set(df2.columns) and "h_2" not in df2.columns
    assert len(df2) == len(fp2)
    assert all(len(r) == 2 for r in df2["eig_real"])

    # empty result: no rows, same columns
    empty = find_fixed_points(lambda h: h**2 + 1, torch.tensor([[0.5]], dtype=F64), n_iter=50)
    edf = empty.to_frame(model="none")
    assert len(edf) == 0
    assert list(edf.columns) == [
        "model", "point_id", "h_0", "q", "max_real_eig", "n_unstable", "stable",
        "is_fixed", "eig_real", "eig_imag",
    ]  # fmt: skip


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda():
    h0 = torch.linspace(-2, 2, 41, dtype=F64, device="cuda").unsqueeze(-1)
    g = torch.Generator(device="cpu").manual_seed(0)
    fp = find_fixed_points(cubic, h0, noise_std=1e-3, generator=g)
    assert fp.points.device.type == "cuda" and fp.eigenvalues.device.type == "cuda"
    pts = torch.sort(fp.points[:, 0]).values.cpu()
    torch.testing.assert_close(pts, torch.tensor([-1.0, 0.0, 1.0], dtype=F64), atol=1e-4, rtol=0)
    x = sample_initial_states(h0, 5, generator=g)
    assert x.device.type == "cuda"
