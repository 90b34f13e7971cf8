"""Attractor analysis on hand-set models whose answer is known in closed form."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gnode import attractors as att
from gnode.models import ModelSpec, RecurrentEnsemble
from gnode.studies import flipflop_claims as fc

TAU, DT = 0.1, 0.05


def hand_set(kind, n=2, *, w=None, b=None, u=None, gate_bias=None, w_o=None, activation="linear", n_input=2):
    """A one-member model with F(h, x) = act(h W + x U + b) (depth 0) and chosen parameters."""
    spec = ModelSpec(kind=kind, n_input=n_input, n_hidden=n, n_output=n, depth=0, activation=activation, tau=TAU,
                     dt=DT)
    m = RecurrentEnsemble(spec, [0], dtype=torch.float64)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        first = "W_1" if kind in ("node", "gnode") else "W"
        getattr(m, first)[0] = torch.as_tensor(w if w is not None else np.eye(n))
        getattr(m, "b" + first[1:])[0, 0] = torch.as_tensor(b if b is not None else np.zeros(n))
        getattr(m, "U" + first[1:])[0] = torch.as_tensor(u if u is not None else np.eye(n_input, n))
        if kind in ("gnode", "mgru", "gru") and gate_bias is not None:
            m.b_z[0, 0] = gate_bias
        m.W_o[0] = torch.as_tensor(w_o if w_o is not None else np.eye(n))
    return m


def search(**kw):
    settings = {"n_initial": 32, "n_iter": 1000, "lr": 0.05, "noise_std": 0.0, "slow_speed": 1e-3, "fixed_speed": 1e-6}
    return att.AttractorSearch(**{**settings, **kw})


@pytest.mark.parametrize("kind", ["node", "gnode"])
def test_linear_flow_has_its_one_fixed_point_with_the_known_eigenvalues(kind):
    # tau dh/dt = z (h W + b - h): h* = b / (1 - diag W), Jacobian z (diag W - 1) / tau
    diag, b, z = np.array([0.5, 0.8]), np.array([1.0, -0.4]), 0.25
    m = hand_set(kind, w=np.diag(diag), b=b, gate_bias=math.log(z / (1 - z)) if kind == "gnode" else None)
    states = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    fp, ex = att.find_attractor(m, states, search(), generator=torch.Generator().manual_seed(1))
    assert len(fp) == 1
    np.testing.assert_allclose(fp.points[0].numpy(), b / (1 - diag), atol=1e-6)
    gain = z if kind == "gnode" else 1.0
    lam = np.sort(gain * (diag - 1) / TAU)
    np.testing.assert_allclose(np.sort(fp.eigenvalues[0].real.numpy()), lam, rtol=1e-6)
    np.testing.assert_allclose(np.sort(ex["map_eig"][0].real), np.sort(1 + DT * lam), rtol=1e-6)
    assert ex["stable"][0] and ex["stable_flow"][0] and ex["stable_map"][0]
    np.testing.assert_allclose(ex["readout"][0], b / (1 - diag), atol=1e-6)
    assert ex["speed"][0] < 1e-3
    if kind == "gnode":
        zf = att.gate_field(m)
        with torch.no_grad():
            np.testing.assert_allclose(zf(fp.points).numpy(), z, rtol=1e-12)
        assert att.gate_time_unit(m) == TAU


def test_saddle_is_found_and_called_unstable():
    # dh/dt = (h W - h) / tau with W = diag(2, 0.5): the origin is a saddle (+10, -5)
    m = hand_set("node", w=np.diag([2.0, 0.5]))
    states = torch.randn(100, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.1
    fp, ex = att.find_attractor(m, states, search(slow_speed=0.05), generator=torch.Generator().manual_seed(1))
    assert len(fp) >= 1
    k = int(np.argmin(np.linalg.norm(fp.points.numpy(), axis=1)))
    assert np.linalg.norm(fp.points[k].numpy()) < 1e-3
    assert int(fp.n_unstable[k]) == 1 and not ex["stable"][k] and not ex["stable_map"][k]


def test_discrete_model_velocity_and_map_stability():
    # RNN with W = 0: h_{t+1} = tanh(b) from anywhere; the map's Jacobian is 0 (stable),
    # the velocity (tanh(b) - h) / dt has Jacobian -I / dt
    b = np.array([0.3, -0.7])
    m = hand_set("rnn", w=np.zeros((2, 2)), b=b, activation="tanh")
    f = att.velocity_field(m)
    h = torch.tensor([[0.1, 0.2], [1.0, -1.0]], dtype=torch.float64)
    with torch.no_grad():
        np.testing.assert_allclose(f(h).numpy(), (np.tanh(b) - h.numpy()) / DT, rtol=1e-12)
    states = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fp, ex = att.find_attractor(m, states, search(lr=0.02), generator=torch.Generator().manual_seed(1))
    assert len(fp) == 1
    np.testing.assert_allclose(fp.points[0].numpy(), np.tanh(b), atol=1e-6)
    np.testing.assert_allclose(fp.eigenvalues[0].real.numpy(), [-1 / DT, -1 / DT], rtol=1e-6)
    np.testing.assert_allclose(np.abs(ex["map_eig"][0]), 0, atol=1e-9)
    assert ex["stable"][0] and ex["max_abs_map_eig"][0] < 1e-9
    assert att.gate_field(m) is None


def test_a_perfect_integrator_does_not_drift_and_a_leaky_one_decays_as_predicted():
    # F(h, x) = h + x: dh/dt = z x / tau; without input nothing moves
    for kind in ("node", "gnode"):
        m = hand_set(kind, gate_bias=0.0)
        res = att.memory_test(m, "2bit_ring", n_bins=20, pulse_width=3, n_probes=5, horizons=10, settle_bins=2,
                              samples=12, seed=0)
        assert res.drift[0] == 0 and np.all(res.drift_curve == 0) and res.drift_rate[0] == 0
        assert res.stored_norm == pytest.approx(2.0)
        assert res.duration == pytest.approx(10 * 20 * DT)
    # leaky: F = w h + x, Euler factor alpha = dt / tau: h <- (1 - alpha (1 - w)) h per bin
    w = 0.9
    m = hand_set("node", w=w * np.eye(2))
    res = att.memory_test(m, "2bit_ring", n_bins=20, pulse_width=3, n_probes=4, horizons=2, settle_bins=0,
                          samples=5, seed=0)
    decay = 1 - DT / TAU * (1 - w)
    x, _ = att.memory_probes("2bit_ring", 4, 3, np.random.default_rng(0))
    y = torch.zeros(4, 2, dtype=torch.float64)
    for k in range(3):
        y = y * decay + DT / TAU * torch.as_tensor(x[:, k], dtype=torch.float64)
    expected = (y.norm(dim=-1) * (1 - decay**40)).mean().item()
    assert res.drift[0] == pytest.approx(expected, rel=1e-9)
    late = (y.norm(dim=-1) * (decay**20 - decay**40)).mean().item() / (20 * DT)
    assert res.late_drift_rate[0] == pytest.approx(late, rel=1e-9)
    assert res.t[0] == 0 and res.t[-1] == pytest.approx(2 * 20 * DT) and np.all(np.diff(res.t) > 0)


def test_memory_test_runs_members_in_chunks_with_the_same_result():
    spec = ModelSpec(kind="gnode", n_input=3, n_hidden=4, n_output=3, depth=1, width=8)
    m = RecurrentEnsemble(spec, [1, 2, 3], dtype=torch.float64)
    kw = dict(n_bins=10, pulse_width=2, n_probes=3, horizons=1, settle_bins=1, samples=4, seed=3)
    whole = att.memory_test(m, "3bit_variable", **kw)
    chunked = att.memory_test(m, "3bit_variable", max_elements=1, **kw)
    np.testing.assert_allclose(whole.drift, chunked.drift)
    one = att.memory_test(m.select([1]), "3bit_variable", **kw)
    np.testing.assert_allclose(one.drift[0], whole.drift[1])


PER_CHANNEL = ["3bit_fixed", "3bit_variable", "2bit_fixed", "2bit_square", "2bit_rectangle"]


@pytest.mark.parametrize("task", PER_CHANNEL + ["2bit_disk", "2bit_ring"])
def test_memory_probes_store_values_of_the_task(task):
    x, v = att.memory_probes(task, 400, 3, np.random.default_rng(0))
    c = 3 if task.startswith("3bit") else 2
    if task in PER_CHANNEL:
        # as the authors' generators: each pulse sets one channel; one pulse per channel, back to back
        assert v.shape == (400, c) and x.shape == (400, c * 3, c)
        assert ((x != 0).sum(-1) <= 1).all()
        for ch in range(c):
            np.testing.assert_array_equal(x[:, ch * 3 : (ch + 1) * 3, ch], np.repeat(v[:, ch : ch + 1], 3, axis=1))
    else:
        assert v.shape == (400, 2) and x.shape == (400, 3, 2)
        np.testing.assert_array_equal(x, np.repeat(v[:, None], 3, axis=1))
    if task.endswith("fixed"):
        assert set(np.unique(v)) == {-1.0, 1.0}
    if task in ("3bit_variable", "2bit_square"):
        assert np.abs(v).max() <= 1 and np.abs(v).max() > 0.95
    if task == "2bit_rectangle":
        assert np.abs(v[:, 0]).max() <= 2 and np.abs(v[:, 0]).max() > 1.9 and np.abs(v[:, 1]).max() <= 1
    r = np.linalg.norm(v, axis=1)
    if task == "2bit_ring":
        np.testing.assert_allclose(r, 2, rtol=1e-6)
    if task == "2bit_disk":
        assert r.min() >= 1 - 1e-6 and r.max() <= 2 + 1e-6
        assert abs((r**2 < 2.5).mean() - 0.5) < 0.08  # uniform in area: half the annulus lies inside r^2 = 2.5
    # every probe distribution is symmetric about 0: a constant readout of 0 is the best forgetting
    assert np.abs(v.mean(0)).max() < 0.2


def test_memory_probes_name_an_unknown_task():
    with pytest.raises(ValueError, match="2bit_triangle"):
        att.memory_probes("2bit_triangle", 2, 3, np.random.default_rng(0))


def test_speed_grid_is_the_velocity_field():
    m = hand_set("node", w=np.diag([0.5, 0.8]), b=[1.0, -0.4])
    g = att.speed_grid(m, ((-1, 1), (0, 2)), 5)
    assert len(g["h0"]) == 25
    expected_u = (0.5 * g["h0"] + 1.0 - g["h0"]) / TAU
    expected_v = (0.8 * g["h1"] - 0.4 - g["h1"]) / TAU
    np.testing.assert_allclose(g["u"], expected_u)
    np.testing.assert_allclose(g["v"], expected_v)
    np.testing.assert_allclose(g["speed"], np.hypot(expected_u, expected_v))
    with pytest.raises(ValueError, match="N = 2"):
        att.speed_grid(hand_set("node", n=3, n_input=3), ((0, 1), (0, 1)), 3)


@pytest.mark.parametrize("kind", ["gnode", "mgru", "gru"])
def test_trajectory_gates_are_the_gates_of_the_forward_pass(kind):
    spec = ModelSpec(kind=kind, n_input=2, n_hidden=3, n_output=2, depth=1, width=5)
    m = RecurrentEnsemble(spec, [4, 5], dtype=torch.float64)
    x = torch.randn(2, 6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _, states = m(x)
    z = att.trajectory_gates(m, x, states)
    assert z.shape == (2, 2, 6, 3) and (z > 0).all() and (z < 1).all()
    # bin 2 of trial 1, member 0, recomputed by hand from the state after bin 1
    h = states[0, 1, 1]
    manual = torch.sigmoid(h @ m.W_z[0] + x[1, 2] @ m.U_z[0] + m.b_z[0, 0])
    torch.testing.assert_close(z[0, 1, 2], manual)
    assert att.trajectory_gates(RecurrentEnsemble(ModelSpec("node", 2, 3, 2), [0]), x, states) is None


def test_plot_basis_is_the_state_for_small_n_and_principal_components_otherwise():
    rng = np.random.default_rng(0)
    small = att.plot_basis(rng.normal(size=(50, 2)))
    assert small.kind == "state" and np.isnan(small.project(np.ones((4, 2)))[:, 2]).all()
    plane = rng.normal(size=(400, 2)) * [3.0, 1.0]
    basis_vectors = np.linalg.qr(rng.normal(size=(6, 2)))[0]  # an orthonormal 2-D plane in R^6
    states = plane @ basis_vectors.T + 5.0
    b = att.plot_basis(states)
    assert b.kind == "pca" and b.explained[2] < 1e-12 and b.explained[0] > b.explained[1] > 0.05
    c = b.project(states)
    np.testing.assert_allclose(np.abs(c[:, 2]), 0, atol=1e-9)
    np.testing.assert_allclose(c[:, :2].var(0).sum(), plane.var(0).sum(), rtol=1e-9)


def test_find_attractor_needs_one_member():
    m = RecurrentEnsemble(ModelSpec("gnode", 2, 2, 2), [0, 1])
    with pytest.raises(ValueError, match="one-member"):
        att.velocity_field(m)


# ----------------------------------------------------------------------- claims
def _summary(rows):
    cols = ["experiment", "task", "model", "n", "best_test_loss", "median_test_loss"]
    return pd.DataFrame(rows, columns=cols)


def test_gating_and_size_claims_compare_the_right_rows():
    s = _summary([
        ("v", "3bit_variable", "gnode", 3, 0.02, 0.05), ("v", "3bit_variable", "gnode", 6, 0.015, 0.04),
        ("v", "3bit_variable", "gnode", 100, 0.01, 0.03), ("v", "3bit_variable", "node", 6, 0.03, 0.2),
    ])
    best, median = fc.gating_rows(s, "v", 1.0)
    assert best["value"] == pytest.approx(0.5) and best["holds"] and "N=6" in best["note"]
    assert median["value"] == pytest.approx(0.2) and median["holds"]
    small = fc.small_vs_large_row(s, "v", 2.0)
    assert small["value"] == pytest.approx(2.0) and small["holds"]  # <= margin
    assert not fc.small_vs_large_row(s, "v", 1.5)["holds"]
    missing = fc.gating_rows(s[s["model"] != "node"], "v", 1.0)[0]
    assert math.isnan(missing["value"]) and not missing["holds"] and "common N" in missing["note"]


def test_ring_claims_use_the_attracting_points_and_measure_the_circle():
    theta = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ring = [{"model": "gnode", "n": 2, "n_unstable": k % 2, "readout": [2 * np.cos(t), 2 * np.sin(t)]}
            for k, t in enumerate(theta)]
    source = {"model": "gnode", "n": 2, "n_unstable": 2, "readout": [0.0, 0.0]}  # the centre: excluded
    other = {"model": "node", "n": 2, "n_unstable": 0, "readout": [5.0, 0.0]}
    cv, cover = fc.ring_rows(pd.DataFrame(ring + [source, other]), "r", 0.1, 0.5)
    assert cv["value"] == pytest.approx(0, abs=1e-12) and cv["holds"]
    assert cover["value"] == 1 and cover["holds"]
    half = [p for p in ring if p["readout"][1] > 1e-9]  # 15, 30, ..., 165 degrees
    _, cover = fc.ring_rows(pd.DataFrame(half), "r", 0.1, 0.75)
    assert cover["value"] == pytest.approx(0.5) and not cover["holds"]
    cv, _ = fc.ring_rows(pd.DataFrame([source]), "r", 0.1, 0.5)
    assert math.isnan(cv["value"]) and not cv["holds"]


def test_low_dim_claim_is_variance_explained():
    data = pd.DataFrame({"split": ["test"] * 4 + ["train"], "channel": [0, 0, 1, 1, 0],
                         "target": [1.0, -1.0, 2.0, -2.0, 100.0]})
    var = fc.target_variance(data)
    assert var == pytest.approx(2.5)
    s = _summary([("d", "2bit_disk", "gnode", 2, 0.25, 0.3)])
    row = fc.low_dim_row(s, "d", var, 0.8)
    assert row["value"] == pytest.approx(0.9) and row["holds"]
