"""Diagnostics at initialisation against closed forms (a linear nODE) and the package's own Jacobian."""

import math

import pytest
import torch

from gnode import diagnostics as dg
from gnode.models import ModelSpec, RecurrentEnsemble, flow_jacobian, member_params

D = torch.float64


def linear_node(w1: list[torch.Tensor], *, alpha=0.5, n_input=2, n_output=2, kind="node", seed=0):
    """A linear nODE (F = h W_1 + x U_1 + b_1) whose members have the given W_1 (N, N)."""
    n = w1[0].shape[0]
    spec = ModelSpec(kind=kind, n_input=n_input, n_hidden=n, n_output=n_output, depth=0, activation="linear",
                     tau=0.01 / alpha, dt=0.01)
    model = RecurrentEnsemble(spec, [seed + i for i in range(len(w1))], dtype=D)
    with torch.no_grad():
        model.W_1.copy_(torch.stack(w1))
    return model


def test_linear_node_jacobian_spectrum_and_eta_max_are_exact():
    a, b, c = 0.7, 0.4, 1.3
    rot = torch.tensor([[a, -b, 0.0], [b, a, 0.0], [0.0, 0.0, c]], dtype=D)
    diag = torch.diag(torch.tensor([0.2, -0.5, 0.9], dtype=D))
    model = linear_node([rot, diag])
    h0 = torch.randn(2, 3, dtype=D)
    x = torch.tensor([0.3, -1.0], dtype=D)
    jac = dg.flow_jacobians(model, h0, x)
    # row layout F = h W_1 + ...: dF_i/dh_j = W_1[j, i]
    assert torch.allclose(jac, torch.stack([rot.T, diag.T]), atol=1e-14)
    eig = dg.spectrum(model, h0, x)
    got = sorted(eig[0].tolist(), key=lambda z: (z.real, z.imag))
    want = sorted([complex(a - 1, -b), complex(a - 1, b), complex(c - 1, 0)], key=lambda z: (z.real, z.imag))
    assert all(abs(g - w) < 1e-12 for g, w in zip(got, want))
    assert torch.allclose(dg.eta_max(model, h0, x), torch.tensor([c - 1, 0.9 - 1], dtype=D), atol=1e-12)


def test_the_gate_is_left_out_of_the_gnode_jacobian():
    w = torch.randn(4, 4, dtype=D) * 0.5
    node, gnode = linear_node([w], kind="node"), linear_node([w], kind="gnode")
    h0 = torch.randn(4, dtype=D)
    assert torch.allclose(dg.flow_jacobians(node, h0), dg.flow_jacobians(gnode, h0), atol=1e-14)


@pytest.mark.parametrize("kind,depth,act", [("node", 2, "relu"), ("gnode", 3, "tanh"), ("node", 0, "tanh"),
                                            ("rnn", 1, "tanh"), ("mgru", 1, "tanh"), ("gru", 1, "tanh")])
def test_jacobian_of_every_member_equals_the_package_jacobian(kind, depth, act):
    spec = ModelSpec(kind=kind, n_input=3, n_hidden=5, n_output=2, depth=depth, width=7, activation=act)
    model = RecurrentEnsemble(spec, [3, 4, 5], dtype=D)
    h0 = 0.5 * torch.randn(3, 5, dtype=D)
    jac = dg.flow_jacobians(model, h0)  # zero input: the package's flow_jacobian's setting
    for e in range(3):
        assert torch.allclose(jac[e], flow_jacobian(spec, member_params(model, e), h0[e]), atol=1e-12), e


def test_the_mean_input_enters_the_jacobian_through_the_activation_pattern():
    spec = ModelSpec(kind="node", n_input=2, n_hidden=4, n_output=2, depth=1, width=6, activation="tanh")
    model = RecurrentEnsemble(spec, [1], dtype=D)
    x = torch.tensor([2.0, -1.0], dtype=D)
    p = member_params(model, 0)
    want = torch.autograd.functional.jacobian(
        lambda h: torch.tanh(h @ p["W_1"] + x @ p["U_1"] + p["b_1"][0]) @ p["W_out"] + p["b_out"][0],
        torch.zeros(4, dtype=D))
    assert torch.allclose(dg.flow_jacobians(model, x=x)[0], want, atol=1e-12)
    assert not torch.allclose(dg.flow_jacobians(model)[0], want, atol=1e-3)  # zero input differs
    xs = torch.randn(5, 7, 2, dtype=D)
    assert torch.allclose(dg.mean_input(xs), xs.mean((0, 1)))


def _data(b=4, t=12, i=2, o=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, i, generator=g, dtype=D), torch.randn(b, t, o, generator=g, dtype=D)


def test_gradient_decay_of_a_linear_node_with_the_loss_on_the_last_bin_is_exact():
    alpha, t = 0.5, 12
    a = torch.tensor([0.9, 0.5, -0.2], dtype=D)
    skew = torch.tensor([[0.6, 0.8, 0.0], [-0.3, 0.4, 0.5], [0.2, 0.0, 0.7]], dtype=D)  # not symmetric
    w1s = [torch.diag(a), 0.3 * torch.eye(3, dtype=D), skew]
    model = linear_node(w1s, alpha=alpha)
    x, y = _data(t=t)
    norms = dg.state_gradient_norms(model, x, y)  # (E, T)
    assert norms.shape == (3, t)
    # closed form: h_{t+1} = h_t M + c with M = (1 - alpha) I + alpha W_1, so dL/dh_t = dL/dh_{T-1} (M^T)^(T-1-t)
    with torch.no_grad():
        pred, _ = model(x)
    for e, w1 in enumerate(w1s):
        last = 2.0 / (x.shape[0] * y.shape[-1]) * (pred[e, :, -1] - y[:, -1]) @ model.W_o[e].T  # (B, N)
        m = (1 - alpha) * torch.eye(3, dtype=D) + alpha * w1
        for k in range(t):
            lam = last @ torch.linalg.matrix_power(m.T, t - 1 - k)
            assert math.isclose(norms[e, k].item(), lam.norm().item(), rel_tol=1e-10), (e, k)
    # one eigenvalue: the ratio is exactly |1 - alpha + alpha a|^lag, whatever the data
    ratio = dg.propagation_ratio(norms)[1]
    lag = torch.arange(t - 1, -1, -1, dtype=D)
    assert torch.allclose(ratio, abs(1 - alpha + alpha * 0.3) ** lag, rtol=1e-10)


def test_state_gradients_follow_the_models_own_states_and_all_bins_loss_adds_direct_terms():
    spec = ModelSpec(kind="gnode", n_input=2, n_hidden=4, n_output=2, depth=2, width=5, activation="tanh",
                     tau=0.02, dt=0.01, substeps=2)
    model = RecurrentEnsemble(spec, [7, 8], dtype=D)
    x, y = _data(t=9)
    with torch.no_grad():
        _, states = model(x)
        steps = torch.stack(dg._states_with_graph(model, x, model.initial_state(x)), 2)
    assert torch.allclose(steps, states, atol=1e-12)
    last = dg.state_gradient_norms(model, x, y)
    every = dg.state_gradient_norms(model, x, y, last_bin_only=False)
    # on the last bin only, the last bin's gradient is the readout term of that bin alone, here 1/T of
    # every bin's loss term weight; the all-bins loss also has a direct term at every earlier bin
    assert torch.allclose(every[:, -1] * x.shape[1], last[:, -1], rtol=1e-10)
    assert (every[:, 0] > 0).all() and torch.isfinite(every).all()


def test_parameter_grad_norms_are_each_members_own():
    spec = ModelSpec(kind="node", n_input=2, n_hidden=4, n_output=2, depth=2, width=5, activation="relu")
    model = RecurrentEnsemble(spec, [1, 2, 3], dtype=D)
    x, y = _data(t=6)
    norms = dg.parameter_grad_norms(model, x, y)
    assert norms.shape == (3,) and all(p.grad is None for p in model.parameters())
    for e in range(3):
        alone = model.select([e])
        pred, _ = alone(x)
        loss = (pred[0] - y).pow(2).mean()
        grads = torch.autograd.grad(loss, list(alone.parameters()))
        want = math.sqrt(sum(g.pow(2).sum().item() for g in grads))
        assert math.isclose(norms[e].item(), want, rel_tol=1e-10)
