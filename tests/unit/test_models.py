"""Models: analytic equivalences between the model classes and the integrators."""

import math

import pytest
import torch

from gnode.models import (
    INITIAL_STATES,
    ModelSpec,
    RecurrentEnsemble,
    _draw_member,
    _init_member,
    _param_shapes,
    critical_scale,
    dynamics_parameters,
    eta_max,
    input_means,
    load_model,
    member_params,
    parameter_count,
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


@pytest.mark.parametrize("kind,initial_state", [(k, "zeros") for k in ("rnn", "gru", "mgru", "node", "gnode")]
                         + [(k, s) for k in ("gru", "gnode") for s in INITIAL_STATES if s != "zeros"])
def test_shapes_and_member_independence(kind, initial_state):
    spec = ModelSpec(kind=kind, n_input=3, n_hidden=5, n_output=2, depth=2, width=7, initial_state=initial_state)
    ens = RecurrentEnsemble(spec, [11, 12, 13], dtype=F64)
    if initial_state == "learned":
        with torch.no_grad():
            ens.h0.copy_(torch.randn(3, 1, 5, generator=torch.Generator().manual_seed(0), dtype=F64))
    x = _input()
    y, h = ens(x)
    assert y.shape == (3, 4, 12, 2) and h.shape == (3, 4, 12, 5)
    # member 1 of the ensemble is the model built from its seed alone
    single = ens.select([1]) if initial_state == "learned" else RecurrentEnsemble(spec, [12], dtype=F64)
    y1, _ = single(x)
    torch.testing.assert_close(y[1], y1[0], rtol=0, atol=1e-12)
    assert not torch.allclose(y[0], y[1])
    assert ens.member_parameter_count() == parameter_count(spec)


def test_initial_states_follow_their_definition():
    kw = dict(kind="gnode", n_input=3, n_hidden=6, n_output=2, depth=1, width=5)
    x = _input(b=4, t=5)
    # learned_affine: h0 = x_1 A + b of the first bin, per member and trial
    aff = RecurrentEnsemble(ModelSpec(**kw, initial_state="learned_affine"), [1, 2], dtype=F64)
    assert aff.A_h0.shape == (2, 3, 6) and aff.b_h0.shape == (2, 1, 6)
    expected = torch.einsum("bi,ein->ebn", x[:, 0], aff.A_h0) + aff.b_h0
    torch.testing.assert_close(aff.initial_state(x), expected, rtol=0, atol=1e-14)
    later = x.clone()
    later[:, 1:] = 7.0  # only the first bin matters
    torch.testing.assert_close(aff.initial_state(later), expected, rtol=0, atol=0)
    # fixed_random: a seeded Glorot-normal draw per member, a buffer (not trained), same for every trial
    fix = RecurrentEnsemble(ModelSpec(**kw, initial_state="fixed_random"), [1, 2], dtype=F64)
    assert "h0" in dict(fix.named_buffers()) and "h0" not in dict(fix.named_parameters())
    assert torch.equal(fix.h0, RecurrentEnsemble(fix.spec, [1, 2], dtype=F64).h0)
    assert not torch.equal(fix.h0[0], fix.h0[1])
    h0 = fix.initial_state(x)
    assert h0.shape == (2, 4, 6) and torch.equal(h0[:, 0], h0[:, 3])
    big = RecurrentEnsemble(ModelSpec(**{**kw, "n_hidden": 400}, initial_state="fixed_random"), [3], dtype=F64)
    assert abs(big.h0.std().item() / math.sqrt(2 / 401) - 1) < 0.1  # Flux's glorot_normal(N): var 2/(1+N)
    # the forward pass starts from it: the first state is one Euler step from h0
    _, states = fix(x)
    xp = {n: p[:, :, 0] for n, p in fix.project_inputs(fix._expand_input(x)).items()}
    torch.testing.assert_close(states[:, :, 0], fix.euler_step(h0, xp, fix.spec.alpha), rtol=0, atol=1e-14)
    # zeros and learned (initialised at zero)
    for mode in ("zeros", "learned"):
        ens = RecurrentEnsemble(ModelSpec(**kw, initial_state=mode), [1], dtype=F64)
        assert torch.equal(ens.initial_state(x), torch.zeros(1, 4, 6, dtype=F64))


def test_gradients_reach_the_trained_initial_state_only():
    kw = dict(kind="gnode", n_input=3, n_hidden=4, n_output=2, depth=1, width=5)
    x = _input(b=3, t=6)
    for mode, trained in (("learned_affine", {"A_h0", "b_h0"}), ("learned", {"h0"}), ("fixed_random", set()),
                          ("zeros", set())):
        ens = RecurrentEnsemble(ModelSpec(**kw, initial_state=mode), [1, 2], dtype=F64)
        ens(x)[0].pow(2).sum().backward()
        names = {n for n, _ in ens.named_parameters()} & {"h0", "A_h0", "b_h0"}
        assert names == trained, mode
        for n in trained:
            assert getattr(ens, n).grad.abs().min() > 0, (mode, n)
        if mode == "fixed_random":
            assert not ens.h0.requires_grad and ens.h0.grad is None


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
def test_critical_iterated_init_puts_eta_max_at_zero(kind, depth, activation):
    spec = ModelSpec(kind=kind, n_input=2, n_hidden=20, n_output=1, depth=depth, width=30, activation=activation,
                     init="critical_iterated")
    params = _init_member(spec, _param_shapes(spec), seed=3)
    assert abs(eta_max(spec, params)) < 1e-6
    # the xavier draw of the same shapes is not critical: the test can fail
    xavier = _init_member(ModelSpec(**{**spec.to_dict(), "init": "xavier"}), _param_shapes(spec), seed=3)
    assert abs(eta_max(spec, xavier)) > 1e-2
    # the ensemble applies it member by member, in the model's dtype
    ens = RecurrentEnsemble(spec, [3, 4], dtype=F64)
    for m in range(2):
        assert abs(eta_max(spec, member_params(ens, m))) < 1e-6


@pytest.mark.parametrize("initial_state", INITIAL_STATES)
def test_saved_model_reloads_to_identical_outputs(tmp_path, initial_state):
    spec = ModelSpec(kind="gnode", n_input=3, n_hidden=4, n_output=3, depth=2, width=5, initial_state=initial_state)
    ens = RecurrentEnsemble(spec, [1, 2])
    with torch.no_grad():
        for n in ("h0", "b_h0"):
            if hasattr(ens, n):
                getattr(ens, n).normal_()
    save_model(ens, tmp_path / "m.pt", extra={"note": "x"})
    back, extra = load_model(tmp_path / "m.pt")
    x = _input().float()
    assert torch.equal(ens(x)[0], back(x)[0])
    assert extra == {"note": "x"} and back.seeds == [1, 2] and back.spec == spec
    # select keeps each member's h0 (a buffer for fixed_random)
    assert torch.equal(ens.select([1])(x)[0][0], ens(x)[0][1])


def test_a_model_file_from_before_initial_state_loads(tmp_path):
    spec = ModelSpec(kind="gnode", n_input=3, n_hidden=4, n_output=3, depth=1, width=5, initial_state="learned")
    ens = RecurrentEnsemble(spec, [1])
    save_model(ens, tmp_path / "m.pt")
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    old = {k: v for k, v in blob["spec"].items() if k != "initial_state"} | {"learn_h0": True, "init": "critical"}
    torch.save(blob | {"spec": old}, tmp_path / "old.pt")
    back, _ = load_model(tmp_path / "old.pt")
    assert back.spec.initial_state == "learned" and back.spec.init == "critical_iterated"
    assert torch.equal(back.h0, ens.h0)


def test_autonomous_model_runs_without_input():
    spec = ModelSpec(kind="node", n_input=0, n_hidden=3, n_output=1, depth=1, width=4, initial_state="learned")
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
    with pytest.raises(ValueError, match="initial_state='random' is not one of"):
        ModelSpec(kind="rnn", n_input=1, n_hidden=2, n_output=1, initial_state="random")
    with pytest.raises(ValueError, match="init='critical' needs mean_input"):
        RecurrentEnsemble(ModelSpec(kind="rnn", n_input=2, n_hidden=2, n_output=1, init="critical"), [0])
    ens = RecurrentEnsemble(ModelSpec(kind="rnn", n_input=2, n_hidden=2, n_output=1), [0])
    with pytest.raises(ValueError, match="input must be"):
        ens(torch.zeros(1, 3, 5))
    assert math.isclose(ModelSpec(kind="node", n_input=1, n_hidden=1, n_output=1, substeps=4).alpha, 0.25)


def _authors_eta_max(spec, params, x_bar, h0):
    """eta_max from the authors' definition, independently of flow_jacobian: J of
    F_theta(h) = (h' - h) / (alpha z) at h0 and the mean input, from one Euler step of the model."""
    model = RecurrentEnsemble(ModelSpec(**{**spec.to_dict(), "init": "xavier"}), [0], dtype=F64)
    _copy(model, {n: v.unsqueeze(0) for n, v in params.items() if n != "h0"})
    xp = {n: p[:, :, 0] for n, p in model.project_inputs(x_bar.view(1, 1, 1, -1)).items()}
    alpha = spec.alpha

    def f_theta(h):
        h = h.view(1, 1, -1)
        step = model.euler_step(h, xp, alpha) if spec.kind in ("node", "gnode") else model.discrete_step(h, xp)
        scale = alpha if spec.kind in ("node", "gnode") else 1.0  # discrete: h' = h + z (cand - h), alpha = 1
        gate = model.gate(h, xp) if spec.kind in ("gnode", "mgru") else 1.0
        if spec.kind == "gru":
            gate = torch.sigmoid(torch.baddbmm(xp["U_z"], h, model.W_z))
        return ((step - h) / (scale * gate)).view(-1)

    jac = torch.autograd.functional.jacobian(f_theta, h0)
    return torch.linalg.eigvals(jac).real.max().item()


@pytest.mark.parametrize(
    "kind,depth,layers,initial_state",
    [("gnode", 2, 3, "learned_affine"), ("node", 3, 4, "fixed_random"), ("gnode", 0, 1, "zeros"),
     ("gru", 1, 1, "learned"), ("mgru", 1, 1, "fixed_random")],
)
def test_critical_init_is_the_authors_rule(kind, depth, layers, initial_state):
    spec = ModelSpec(kind=kind, n_input=3, n_hidden=6, n_output=2, depth=depth, width=8, activation="tanh",
                     init="critical", initial_state=initial_state)
    x = _input(b=50, t=20, i=3, seed=4) + 0.3
    x_bar, x_first = input_means(x)
    torch.testing.assert_close(x_bar, x.reshape(-1, 3).mean(0))
    torch.testing.assert_close(x_first, x[:, 0].mean(0))
    seed = 5
    raw = _draw_member(spec, _param_shapes(spec), seed)
    # h0 of the rule: the mean over trials of the model's initial state
    if initial_state == "learned_affine":
        h0 = (x @ raw["A_h0"] + raw["b_h0"])[:, 0].mean(0)  # = mean(x_1) A + b
    elif initial_state == "fixed_random":
        h0 = raw["h0"][0]
    else:  # zeros, and learned (initialised at zero)
        h0 = torch.zeros(6, dtype=F64)
    eta = _authors_eta_max(spec, raw, x_bar, h0)
    assert eta + 1 > 0
    factor = (1 / (eta + 1)) ** (1 / layers)
    ens = RecurrentEnsemble(spec, [seed], dtype=F64, mean_input=x_bar, mean_first_input=x_first)
    scaled = set(dynamics_parameters(spec))
    gate = {"gnode": {"W_z", "U_z", "b_z"}, "mgru": {"W_z", "U_z", "b_z"}}.get(kind, set())
    assert gate <= scaled and not scaled & {"W_o", "b_o", "A_h0", "b_h0"}
    assert {n for n in raw if n.startswith("U")} <= scaled and {n for n in raw if n.startswith("b_") and
                                                                  n not in ("b_o", "b_h0")} <= scaled
    for name, value in raw.items():
        got = dict([*ens.named_parameters(), *ens.named_buffers()])[name][0]
        want = value * factor if name in scaled else value  # readout and h0: as drawn
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0, msg=name)
    # once, not iterated: the same factor again would be a second application
    info = critical_scale(spec, {k: v.clone() for k, v in raw.items()}, x_bar, h0)
    assert info["layers"] == layers and math.isclose(info["factor"], factor, rel_tol=1e-12)
    assert math.isclose(info["eta_max"], eta, rel_tol=1e-10, abs_tol=1e-12)


def test_critical_draws_every_weight_from_n_0_1_over_fan_in():
    spec = ModelSpec(kind="node", n_input=300, n_hidden=200, n_output=100, depth=1, width=400, init="critical",
                     initial_state="learned_affine")
    raw = _draw_member(spec, _param_shapes(spec), 0)
    for name, (fan_in, _) in _param_shapes(spec).items():
        if name.startswith("b"):
            assert abs(raw[name].std().item() / 1e-3 - 1) < 0.2, name
        else:  # readout and h0 map included (the authors' our_normal for every layer)
            assert abs(raw[name].std().item() * math.sqrt(fan_in) - 1) < 0.05, name
    xav = _draw_member(ModelSpec(**{**spec.to_dict(), "init": "xavier"}), _param_shapes(spec), 0)
    bound = math.sqrt(6 / (200 + 400))
    assert xav["W_1"].abs().max() <= bound and xav["W_1"].abs().max() > 0.99 * bound  # Glorot-uniform


@pytest.mark.parametrize("kind,depth", [("node", 3), ("gnode", 2), ("node", 0)])
def test_critical_puts_eta_max_exactly_at_zero_for_a_homogeneous_flow(kind, depth):
    """ReLU F without biases is positively homogeneous: scaling each of its L layers by c scales
    F (input terms included) and so dF/dh at the same h0 by c^L = 1 / (eta_max + 1). The
    eigenvalues mu of dF/dh become mu / (eta_max + 1); the largest real part, eta_max + 1, becomes 1,
    and eta_max of -h + F becomes exactly 0."""
    spec = ModelSpec(kind=kind, n_input=2, n_hidden=10, n_output=1, depth=depth, width=25, activation="relu",
                     init="critical", initial_state="fixed_random")
    params = _draw_member(spec, _param_shapes(spec), 2)
    for n in dynamics_parameters(spec):
        if n.startswith("b"):
            params[n].zero_()
    x_bar = torch.tensor([0.4, -0.7], dtype=F64)
    h0 = params["h0"][0]
    before = eta_max(spec, params, h0, x_bar)
    info = critical_scale(spec, params, x_bar, h0)
    assert math.isclose(info["factor"] ** info["layers"] * (before + 1), 1.0, rel_tol=1e-12)
    assert abs(before) > 0.05  # not critical before: the test can fail
    assert abs(eta_max(spec, params, h0, x_bar)) < 1e-10


def test_critical_leaves_a_member_unscaled_when_its_rule_is_undefined(caplog):
    """dF/dh with no eigenvalue of positive real part (here F(h) = relu-free linear -2h): the
    factor (1/(eta_max + 1))^(1/L) is undefined; the member keeps its draw, with factor 1 and a
    warning, instead of stopping the ensemble."""
    spec = ModelSpec(kind="node", n_input=1, n_hidden=3, n_output=1, depth=0, activation="linear", init="critical",
                     initial_state="zeros")
    params = _draw_member(spec, _param_shapes(spec), 0)
    params["W_1"] = -2.0 * torch.eye(3, dtype=F64)
    before = {k: v.clone() for k, v in params.items()}
    with caplog.at_level("WARNING", logger="gnode.models"):
        info = critical_scale(spec, params, torch.zeros(1, dtype=F64), torch.zeros(3, dtype=F64))
    assert math.isclose(info["eta_max"], -3.0, rel_tol=1e-12) and info["factor"] == 1.0
    assert all(torch.equal(params[k], before[k]) for k in params)
    assert "left unscaled" in caplog.text
