"""The Euler scan with the hand-written backward (gnode.scan) against the autograd loop."""

from __future__ import annotations

import itertools

import pytest
import torch

import gnode.chunks
import gnode.scan
from gnode.models import INITIAL_STATES, ModelSpec, RecurrentEnsemble
from gnode.scan import EulerScan, euler_scan, scan_params

E, B, T, I = 2, 3, 5, 2


@pytest.fixture(autouse=True, params=["column", "row", "row, one member at a time"])
def product_layout(request, monkeypatch):
    """Every test on both ways of forming the scan's products, the column layout (W^T h^T) and
    the row product (h W)^T that small batches take (``gnode.scan.ROW_MAX_B``), and with the
    members in chunks of one (``gnode.chunks.CHUNK_BYTES``; by default these small models run as
    one chunk)."""
    monkeypatch.setattr(gnode.scan, "ROW_MAX_B", 0 if request.param == "column" else 1_000_000)
    monkeypatch.setattr(gnode.chunks, "CHUNK_BYTES", 1 if "member" in request.param else 1 << 40)
    return request.param


def _model(kind, depth, act, substeps, initial_state="learned", n=4, width=5):
    spec = ModelSpec(kind=kind, n_input=I, n_hidden=n, n_output=2, depth=depth, width=width, activation=act,
                     tau=0.05, dt=0.01, substeps=substeps, initial_state=initial_state)
    model = RecurrentEnsemble(spec, [1, 2], dtype=torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))  # non-zero h0 and biases
    return model


def _via_scan(t) -> bool:
    """Whether the graph of ``t`` reaches EulerScan within a few nodes (states are a permuted view)."""
    fn = t.grad_fn
    for _ in range(3):
        if fn is None:
            return False
        if type(fn).__name__.startswith("EulerScanBackward"):
            return True
        fn = fn.next_functions[0][0] if fn.next_functions else None
    return False


def _run(model, x, dt, scan: bool):
    """States and the gradients of every parameter and of x."""
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    e, b = x.shape[0], x.shape[1]
    h = model.initial_state(x)
    fn = model._fused_euler if scan else model._fused_euler_autograd
    states = fn(x, h, dt)
    y = torch.baddbmm(model.b_o, states.reshape(e, b * x.shape[2], -1), model.W_o)
    loss = (y.sin() * torch.linspace(0.5, 1.5, y.shape[1], dtype=y.dtype).unsqueeze(-1)).sum() + states.pow(2).sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.numel()}  # U is (E, 0, .) when I = 0
    return states.detach(), grads, (x.grad.clone() if x.grad is not None else None)


CASES = list(itertools.product(("node", "gnode"), (0, 1, 3), ("relu", "tanh", "linear"), (1, 3), (False, True)))


def _assert_scan_matches_reference(model, x, dt) -> dict:
    """The scan's states, parameter and input gradients equal the autograd loop's; its gradients."""
    s_ref, g_ref, gx_ref = _run(model, x, dt, scan=False)
    s, g, gx = _run(model, x, dt, scan=True)
    torch.testing.assert_close(s, s_ref, rtol=0, atol=1e-12)
    assert set(g) == set(g_ref)
    for name in g_ref:
        torch.testing.assert_close(g[name], g_ref[name], rtol=1e-10, atol=1e-10, msg=name)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-10)
    return g


@pytest.mark.parametrize("kind,depth,act,substeps,irregular", CASES)
def test_scan_matches_autograd(kind, depth, act, substeps, irregular):
    torch.manual_seed(0)
    model = _model(kind, depth, act, substeps)
    x = torch.randn(E, B, T, I, dtype=torch.float64)
    dt = None
    if irregular:  # per-sample bin widths, shared by members (B, T) or per member (E, B, T)
        shape = (B, T) if depth != 1 else (E, B, T)
        dt = 0.01 * (0.5 + torch.rand(shape, dtype=torch.float64))
    _assert_scan_matches_reference(model, x, dt)


@pytest.mark.parametrize("initial_state", INITIAL_STATES)
def test_scan_matches_autograd_for_every_initial_state(initial_state):
    """h0 made from x's first bin (learned_affine), drawn (fixed_random), learned or zero: the
    scan's states and gradients equal the reference; gradients reach exactly the trained h0 parameters."""
    torch.manual_seed(5)
    model = _model("gnode", 2, "tanh", 2, initial_state=initial_state)
    x = torch.randn(E, B, T, I, dtype=torch.float64)
    g = _assert_scan_matches_reference(model, x, None)
    h0_params = {n for n in g if n in ("h0", "A_h0", "b_h0")}
    expected = {"learned": {"h0"}, "learned_affine": {"A_h0", "b_h0"}}.get(initial_state, set())
    assert h0_params == expected
    for n in expected:
        assert g[n].abs().max() > 0, n


def test_forward_uses_scan_and_matches():
    """model(x) in training mode goes through EulerScan; its loss gradient matches the reference."""
    torch.manual_seed(1)
    model = _model("gnode", 2, "tanh", 2, initial_state="zeros")
    x = torch.randn(B, T, I, dtype=torch.float64)
    y, states = model(x)
    assert _via_scan(states)
    y.pow(2).mean().backward()
    g = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    e, b, t = model.n_members, B, T
    st = model._fused_euler_autograd(model._expand_input(x), model.initial_state(x), None)
    y2 = torch.baddbmm(model.b_o, st.reshape(e, b * t, -1), model.W_o).reshape(e, b, t, -1)
    y2.pow(2).mean().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(g[n], p.grad, rtol=1e-10, atol=1e-12, msg=n)
    with torch.no_grad():  # no graph: the scan's forward alone
        _, st3 = model(x)
    torch.testing.assert_close(st3, states.detach(), rtol=0, atol=1e-13)
    with torch.no_grad():  # and the reference loop
        st4 = model._fused_euler_autograd(model._expand_input(x), model.initial_state(x), None)
    torch.testing.assert_close(st4, states.detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["node", "gnode"])
def test_scan_autonomous_matches_autograd(kind):
    """No input (I = 0, the expressivity models): the scan with learned h0 equals the reference."""
    torch.manual_seed(4)
    spec = ModelSpec(kind=kind, n_input=0, n_hidden=3, n_output=2, depth=2, width=6, activation="tanh",
                     tau=0.05, dt=0.01, substeps=2, initial_state="learned")
    model = RecurrentEnsemble(spec, [3, 4], dtype=torch.float64)
    with torch.no_grad():
        model.h0.add_(0.5 * torch.randn_like(model.h0))
    x = torch.zeros(E, B, T, 0, dtype=torch.float64)
    s_ref, g_ref, _ = _run(model, x, None, scan=False)
    s, g, _ = _run(model, x, None, scan=True)
    torch.testing.assert_close(s, s_ref, rtol=0, atol=1e-12)
    for name in g_ref:
        torch.testing.assert_close(g[name], g_ref[name], rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize(
    "kind,alpha_tensor,clamp,b",
    [("gnode", False, None, 2), ("node", True, None, 2), ("gnode", True, None, 2), ("gnode", False, 0.7, 2),
     ("gnode", "per member", None, 2),
     # one sequence per member: the backward's other path (step gradients kept, one product at the end)
     ("gnode", False, 0.7, 1), ("node", True, None, 1), ("gnode", True, None, 1)],
)  # fmt: skip
def test_gradcheck(kind, alpha_tensor, clamp, b):
    torch.manual_seed(2)
    model = _model(kind, 2, "tanh", 2, n=3, width=3)
    e, t = 2, 3
    xs = torch.randn(t, e, I, b, dtype=torch.float64, requires_grad=True)  # column layout
    h0 = torch.randn(e, 3, b, dtype=torch.float64, requires_grad=True)
    a_shape = (t, e if alpha_tensor == "per member" else 1, 1, b)
    alpha = (0.1 + 0.2 * torch.rand(a_shape, dtype=torch.float64)) if alpha_tensor else 0.2
    params = [q.detach().clone().requires_grad_(True) for q in scan_params(model)]
    cfg = ("tanh", 2, kind == "gnode", 2, clamp)

    def fn(h0, xs, *ps):
        return EulerScan.apply(cfg, h0, xs, alpha, *ps)

    if clamp is not None:  # some states bind, none within the finite differences' reach of the bound
        states = fn(h0, xs, *params).detach()
        assert (states.abs() == clamp).any() and ((states.abs() - clamp).abs() > 1e-4).logical_or(states.abs() == clamp).all()
    assert torch.autograd.gradcheck(fn, (h0, xs, *params))


def test_euler_scan_alpha_tensor_shape():
    model = _model("gnode", 1, "relu", 1)
    x = torch.randn(E, B, T, I, dtype=torch.float64)
    h0 = torch.zeros(E, B, 4, dtype=torch.float64)
    a = euler_scan(model, x, h0, torch.full((1, B, T), model.spec.alpha, dtype=torch.float64))
    b = euler_scan(model, x, h0, model.spec.alpha)
    assert a.shape == (E, B, T, 4)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


def test_use_scan_off_gives_autograd_graph():
    model = _model("node", 1, "relu", 1)
    model.use_scan = False
    _, states = model(torch.randn(B, T, I, dtype=torch.float64))
    assert states.grad_fn is not None and not _via_scan(states)


def test_in_place_change_of_states_before_backward_raises(product_layout):
    """The states are a view of the scan's saved buffer: changing them before backward must not
    silently corrupt the gradients (autograd's version check, as in the reference loop). In
    chunks of members they are a copy the backward does not read: the change is harmless."""
    torch.manual_seed(5)
    model = _model("gnode", 2, "relu", 1)
    x = torch.randn(B, T, I, dtype=torch.float64)
    y, states = model(x)
    loss = y.pow(2).sum()
    states.detach().mul_(0.5)
    if "member" not in product_layout:
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()
        return
    loss.backward()
    changed = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    model(x)[0].pow(2).sum().backward()
    for got, ref in zip(changed, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(got, ref, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["node", "gnode"])
def test_scan_single_sample_single_bin_and_given_h0(kind):
    """B = 1 and T = 1 (the readout's other branch), and an h0 given by the caller with a gradient."""
    torch.manual_seed(6)
    model = _model(kind, 1, "tanh", 2, initial_state="zeros")
    for b, t in [(1, 1), (1, 4), (3, 1)]:
        x = torch.randn(b, t, I, dtype=torch.float64)
        grads = []
        for use_scan in (True, False):
            model.use_scan = use_scan
            model.zero_grad(set_to_none=True)
            h0 = torch.randn(E, b, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(b + t))
            h0.requires_grad_(True)
            y, st = model(x, h0)
            (y.sin().sum() + st.pow(2).sum()).backward()
            grads.append([st.detach(), h0.grad] + [p.grad for p in model.parameters()])
        for got, ref in zip(*grads):
            torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    model.use_scan = True


def test_member_chunks_follow_the_byte_budget(monkeypatch):
    """Members per chunk = CHUNK_BYTES x threads // (bytes of a member's parameters and of one
    step's activations); one chunk on a GPU and for one sequence per member."""
    model = RecurrentEnsemble(ModelSpec(kind="gnode", n_input=3, n_hidden=10, n_output=3, depth=2, width=20), range(7))
    params = scan_params(model)
    cfg = ("relu", 2, True, 1, None)
    n_params = sum(p[0].numel() for p in params)
    assert n_params == (10 + 3 + 1) * (20 + 10) + 20 * 20 + 20 + 20 * 10 + 10
    per_member = 4 * (n_params + (20 + 10 + 20 + 10) * 8)  # first layer, gate, hidden, flow rows x B = 8
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    monkeypatch.setattr(gnode.chunks, "CHUNK_BYTES", 3 * per_member)
    assert gnode.scan.scan_chunks(cfg, params, 8, torch.device("cpu")) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    monkeypatch.setattr(gnode.chunks, "CHUNK_BYTES", 3 * per_member - 1)
    assert len(gnode.scan.scan_chunks(cfg, params, 8, torch.device("cpu"))) == 4  # 2 per chunk
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert len(gnode.scan.scan_chunks(cfg, params, 8, torch.device("cpu"))) == 2  # 5 per chunk
    monkeypatch.setattr(gnode.chunks, "CHUNK_BYTES", 1)
    assert len(gnode.scan.scan_chunks(cfg, params, 8, torch.device("cpu"))) == 7
    assert gnode.scan.scan_chunks(cfg, params, 8, torch.device("cuda")) == [slice(0, 7)]
    assert gnode.scan.scan_chunks(cfg, params, 1, torch.device("cpu")) == [slice(0, 7)]  # B = 1
    assert gnode.chunks.member_chunks(7, 1, 1, torch.device("cpu")) == [slice(0, 7)]  # B = 1, any model
    monkeypatch.setattr(gnode.chunks, "CHUNK_BYTES", 0)  # off
    assert gnode.scan.scan_chunks(cfg, params, 8, torch.device("cpu")) == [slice(0, 7)]
    gru = RecurrentEnsemble(ModelSpec(kind="gru", n_input=3, n_hidden=10, n_output=2), range(7))
    assert gru._step_bytes(8) == 4 * (3 * (10 * 10 + 3 * 10 + 10) + 10 * 2 + 2 + 3 * 10 * 8)  # + readout


@pytest.mark.parametrize("b", [2, 6, 40])
def test_chunks_of_members_agree_to_float32_rounding(monkeypatch, b):
    """Chunks of members give the whole ensemble's states and gradients, and its states without a
    graph, to float32 rounding (uneven chunks, per-member Euler factors, a clamp, the row and the
    column products; mostly the same bits, but a batched product may round differently with
    fewer members in it)."""
    torch.manual_seed(7)
    spec = ModelSpec(kind="gnode", n_input=I, n_hidden=6, n_output=2, depth=3, width=24, activation="relu",
                     tau=0.05, dt=0.01, substeps=2)
    model = RecurrentEnsemble(spec, range(5))
    cfg = ("relu", 3, True, 2, 1.5)
    xs = torch.randn(T, 5, I, b)
    h0 = torch.randn(5, 6, b)
    alpha = 0.1 + 0.2 * torch.rand(T, 5, 1, b)
    results = []
    for chunked in (False, True):
        monkeypatch.setattr(gnode.chunks, "CHUNK_BYTES", 0)  # the whole ensemble, whatever the fixture says
        if chunked:  # chunks of 2, 2 and 1 members
            monkeypatch.setattr(gnode.scan, "scan_chunks", lambda *a: [slice(0, 2), slice(2, 4), slice(4, 5)])
        params = [q.detach().clone().requires_grad_(True) for q in scan_params(model)]
        h = h0.clone().requires_grad_(True)
        x = xs.clone().requires_grad_(True)
        states = EulerScan.apply(cfg, h, x, alpha, *params)
        (states.sin() * torch.arange(states.numel()).reshape(states.shape).cos()).sum().backward()
        with torch.no_grad():  # euler_scan's own path without a graph, in its (E, B, T, .) layout
            free = euler_scan(model, xs.permute(1, 3, 0, 2), h0.transpose(1, 2), alpha[:, :, 0].permute(1, 2, 0),
                              clamp=1.5)
        results.append([states.detach(), free.permute(2, 0, 3, 1), h.grad, x.grad] + [q.grad for q in params])
    for got, ref in zip(*results):
        torch.testing.assert_close(got, ref, rtol=2e-6, atol=2e-6)
    torch.testing.assert_close(results[0][1], results[0][0], rtol=2e-6, atol=2e-6)  # with and without a graph


def _split_nodes(t: torch.Tensor) -> int:
    """Nodes of ``t``'s graph that split, slice or select a tensor."""
    nodes, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and fn not in nodes:
            nodes.add(fn)
            todo += [f for f, _ in fn.next_functions]
    return sum(type(f).__name__.startswith(("Split", "Slice", "Select")) for f in nodes)


@pytest.mark.parametrize("kind", ["rnn", "gru", "mgru"])
def test_discrete_models_in_chunks_of_members_equal_the_whole_ensemble(monkeypatch, kind):
    """The discrete models' loop run one member at a time gives the whole ensemble's states, outputs
    and gradients (float64), with and without a graph, and splits each parameter once, not once
    per step: its graph has as many split nodes for 2 T bins as for T."""
    spec = ModelSpec(kind=kind, n_input=I, n_hidden=4, n_output=2, initial_state="learned")
    model = RecurrentEnsemble(spec, range(3), dtype=torch.float64)
    x = torch.randn(B, T, I, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    results = []
    for chunk_bytes in (0, 1):
        monkeypatch.setattr(gnode.chunks, "CHUNK_BYTES", chunk_bytes)
        model.zero_grad(set_to_none=True)
        y, states = model(x)
        (y.sin().sum() + states.pow(2).sum()).backward()
        with torch.no_grad():
            y_free, _ = model(x)
        results.append([y.detach(), states.detach(), y_free] + [p.grad for p in model.parameters()])
    for got, ref in zip(*results):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    assert len(gnode.chunks.member_chunks(3, 1, B, torch.device("cpu"))) == 3  # one member per chunk above
    assert _split_nodes(model(torch.cat([x, x], 1))[0]) == _split_nodes(model(x)[0])
