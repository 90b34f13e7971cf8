"""Models: analytic equivalences between the model classes and the integrators."""

import math

import pytest
import torch

from gnode.models import (
    ModelSpec,
    RecurrentEnsemble,
    _init_member,
    _param_shapes,
    eta_max,
    load_model,
    member_params,
    save_model,
)

F64 = torch.float64


def _input(b=4, t=12, i=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, i, generator=g, dtype=F64)


def _copy(dst: RecurrentEnsemble, mapping: dict):
    with torch.no_grad():
        for name, value in mapping.items():
            getattr(dst, name).copy_(value)


@pytest.mark.parametrize("kind", ["rnn", "gru", "mgru", "node", "gnode"])
def test_shapes_and_member_independence(kind):
    spec = ModelSpec(kind=kind, n_input=3, n_hidden=5, n_output=2, depth=2, width=7)
    ens = RecurrentEnsemble(spec, [11, 12, 13], dtype=F64)
    x = _input()
    y, h = ens(x)
    assert y.shape == (3, 4, 12, 2) and h.shape == (3, 4, 12, 5)
    # member 1 of the ensemble is the model built from its seed alone
    single = RecurrentEnsemble(spec, [12], dtype=F64)
    y1, _ = single(x)
    torch.testing.assert_close(y[1], y1[0], rtol=0, atol=1e-12)
    assert not torch.allclose(y[0], y[1])


def test_gnode_with_open_gate_equals_node():
    kw = dict(n_input=3, n_hidden=6, n_output=2, depth=2, width=9, tau=0.1, dt=0.05, substeps=2)
    node = RecurrentEnsemble(ModelSpec(kind="node", **kw), [1], dtype=F64)
    gnode = RecurrentEnsemble(ModelSpec(kind="gnode", **kw), [2], dtype=F64)
    shared = {n: p for n, p in node.named_parameters()}
    _copy(gnode, shared)
    _copy(gnode, {"W_z": torch.zeros_like(gnode.W_z), "U_z": torch.zeros_like(gnode.U_z),
                  "b_z": torch.full_like(gnode.b_z, 1e4)})  # sigmoid(1e4) == 1.0 exactly
    x = _input(t=20)
    _, h_node = node(x)
    _, h_gnode = gnode(x)
    xp = {n: p[:, :, 3] for n, p in gnode.project_inputs(gnode._expand_input(x)).items()}
    assert torch.equal(gnode.gate(h_gnode[:, :, 3], xp), torch.ones(1, 4, 6, dtype=F64))  # the gate is open
    torch.testing.assert_close(h_gnode, h_node, rtol=0, atol=1e-13)  # step for step


def test_mgru_equals_gnode_with_single_tanh_layer_and_alpha_one():
    mgru = RecurrentEnsemble(ModelSpec(kind="mgru", n_input=3, n_hidden=5, n_output=2), [3], dtype=F64)
    spec = ModelSpec(kind="gnode", n_input=3, n_hidden=5, n_output=2, depth=0, activation="tanh", tau=0.02, dt=0.02)
    assert spec.alpha == 1.0
    gnode = RecurrentEnsemble(spec, [4], dtype=F64)
    p = dict(mgru.named_parameters())
    _copy(gnode, {"W_1": p["W"], "U_1": p["U"], "b_1": p["b"], "W_z": p["W_z"], "U_z": p["U_z"],
                  "b_z": p["b_z"], "W_o": p["W_o"], "b_o": p["b_o"]})
    x = _input(t=30)
    y_m, h_m = mgru(x)
    y_g, h_g = gnode(x)
    torch.testing.assert_close(h_g, h_m, rtol=0, atol=1e-13)
    torch.testing.assert_close(y_g, y_m, rtol=0, atol=1e-13)


@pytest.mark.parametrize("kind", ["node", "gnode"])
def test_native_euler_equals_torchdiffeq_euler(kind):
    kw = dict(kind=kind, n_input=3, n_hidden=4, n_output=2, depth=2, width=6, tau=0.1, dt=0.03, substeps=3)
    native = RecurrentEnsemble(ModelSpec(**kw), [5, 6], dtype=F64)
    tdq = RecurrentEnsemble(ModelSpec(**kw, solver="euler"), [5, 6], dtype=F64)
    x = _input(t=15)
    y_a, h_a = native(x)
    y_b, h_b = tdq(x)
    torch.testing.assert_close(h_a, h_b, rtol=1e-12, atol=1e-12)
    # irregular bins: each sample its own bin widths
    dt = 0.03 * (0.5 + torch.rand(4, 15, generator=torch.Generator().manual_seed(1), dtype=F64))
    torch.testing.assert_close(native(x, dt=dt)[1], tdq(x, dt=dt)[1], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(native(x, dt=dt)[1], h_a)


def test_dopri5_agrees_with_fine_euler_on_smooth_dynamics():
    kw = dict(kind="gnode", n_input=2, n_hidden=3, n_output=1, depth=1, width=8, activation="tanh", tau=0.2, dt=0.05)
    fine = RecurrentEnsemble(ModelSpec(**kw, substeps=400), [7], dtype=F64)
    adaptive = RecurrentEnsemble(ModelSpec(**kw, solver="dopri5", rtol=1e-9, atol=1e-11), [7], dtype=F64)
    x = _input(b=2, t=10, i=2)
    h_fine = fine(x)[1]
    h_ad = adaptive(x)[1]
    err = (h_fine - h_ad).abs().max().item()
    assert err < 2e-4, err  # Euler's global error is O(step): 0.05/400 steps
    coarse = RecurrentEnsemble(ModelSpec(**kw, substeps=1), [7], dtype=F64)
    assert (coarse(x)[1] - h_ad).abs().max().item() > 5 * err  # and the test can tell a coarse grid


def test_adjoint_gradients_match_direct_backprop():
    kw = dict(kind="gnode", n_input=2, n_hidden=3, n_output=1, depth=1, width=5, activation="tanh", tau=0.1,
              dt=0.05, solver="rk4", substeps=40)
    direct = RecurrentEnsemble(ModelSpec(**kw), [9], dtype=F64)
    adj = RecurrentEnsemble(ModelSpec(**kw, adjoint=True), [9], dtype=F64)
    x = _input(b=2, t=6, i=2)
    direct(x)[0].pow(2).sum().backward()
    adj(x)[0].pow(2).sum().backward()
    for (name, p), q in zip(direct.named_parameters(), adj.parameters()):
        # the adjoint integrates backwards with the same RK4 grid: agreement up to O(step^4)
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-8, atol=1e-10, msg=name)


@pytest.mark.parametrize(
    "kind,depth,activation", [("node", 1, "relu"), ("node", 3, "relu"), ("gnode", 2, "relu"), ("gnode", 0, "tanh"),
                              ("rnn", 1, "relu")]
)
def test_critical_init_puts_eta_max_at_zero(kind, depth, activation):
    spec = ModelSpec(kind=kind, n_input=2, n_hidden=20, n_output=1, depth=depth, width=30, activation=activation,
                     init="critical")
    params = _init_member(spec, _param_shapes(spec), seed=3)
    assert abs(eta_max(spec, params)) < 1e-6
    # the xavier draw of the same shapes is not critical: the test can fail
    xavier = _init_member(ModelSpec(**{**spec.to_dict(), "init": "xavier"}), _param_shapes(spec), seed=3)
    assert abs(eta_max(spec, xavier)) > 1e-2
    # the ensemble applies it member by member, in the model's dtype
    ens = RecurrentEnsemble(spec, [3, 4], dtype=F64)
    for m in range(2):
        assert abs(eta_max(spec, member_params(ens, m))) < 1e-6


def test_saved_model_reloads_to_identical_outputs(tmp_path):
    spec = ModelSpec(kind="gnode", n_input=3, n_hidden=4, n_output=3, depth=2, width=5, learn_h0=True)
    ens = RecurrentEnsemble(spec, [1, 2])
    with torch.no_grad():
        ens.h0.normal_()
    save_model(ens, tmp_path / "m.pt", extra={"note": "x"})
    back, extra = load_model(tmp_path / "m.pt")
    x = _input().float()
    assert torch.equal(ens(x)[0], back(x)[0])
    assert extra == {"note": "x"} and back.seeds == [1, 2] and back.spec == spec


def test_autonomous_model_runs_without_input():
    spec = ModelSpec(kind="node", n_input=0, n_hidden=3, n_output=1, depth=1, width=4, learn_h0=True)
    ens = RecurrentEnsemble(spec, [0, 1])
    with torch.no_grad():
        ens.h0.fill_(0.5)
    y, h = ens(torch.zeros(1, 25, 0))
    assert y.shape == (2, 1, 25, 1) and torch.isfinite(h).all()
    assert not torch.allclose(h[:, :, 0], h[:, :, -1])  # it moves


def test_bad_specs_raise_clear_errors():
    with pytest.raises(ValueError, match="kind='lstm' is not one of"):
        ModelSpec(kind="lstm", n_input=1, n_hidden=2, n_output=1)
    with pytest.raises(ValueError, match="needs a continuous model"):
        ModelSpec(kind="rnn", n_input=1, n_hidden=2, n_output=1, solver="dopri5")
    ens = RecurrentEnsemble(ModelSpec(kind="rnn", n_input=2, n_hidden=2, n_output=1), [0])
    with pytest.raises(ValueError, match="input must be"):
        ens(torch.zeros(1, 3, 5))
    assert math.isclose(ModelSpec(kind="node", n_input=1, n_hidden=1, n_output=1, substeps=4).alpha, 0.25)
