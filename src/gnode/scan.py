"""The Euler scan of the input-driven continuous models (node, gnode) with a hand-written backward.

:meth:`gnode.models.RecurrentEnsemble._fused_euler_autograd` is the reference: per Euler sub-step

    pre = [h, x, 1] @ [[W_1 | W_z], [U_1 | U_z], [b_1 | b_z]]     (first layer and gate at once)
    a   = act(pre[:, :first]); hidden layers act(a W_k + b_k); f = a W_out + b_out (depth >= 1)
    h  <- h + w (f - h),   w = alpha * sigmoid(pre[:, first:]) (gnode) or alpha (node)

How it is laid out, and why (measured on a 2-core CPU, ``benchmarks/p1_*``, ``p3_*``):

- **Column layout**: a state is (E, N, B), not (E, B, N), and each product is ``W^T @ h^T`` (for a
  batch of at most ``ROW_MAX_B`` the same product is formed as ``(h W)^T``: see :func:`_mm`). The
  result is the same, but a batched matmul whose output is (B, 4) (a phase space of a few
  dimensions) costs about 4x one whose output is (4, B) on the project's 2-core CPU
  (``benchmarks/README.md``), and the expressivity models are thin.
- **Augmented state** ``[h; x; 1]`` of (E, N + I + 1, B) per sub-step, all kept in one buffer:
  the input projection and the bias ride in the first product instead of a (T, E, width, B) tensor
  of projections built beforehand (as much memory traffic as the scan itself for small models),
  and the weight gradients of W, U and b come from one accumulated product.
- The forward pass runs without a graph and keeps the per-step quantities; the backward pass walks
  back in time (BPTT) and accumulates the weight gradients step by step, each in the orientation
  whose output is the wider one.
- On a CPU the members run in chunks sized to the core's cache (:func:`scan_chunks`,
  :mod:`gnode.chunks`), each chunk through all steps, forward and backward: the paper's flip-flop
  shapes train mostly 1.1-1.3x faster so (``benchmarks/p8_member_chunks.py``).

States and gradients equal autograd's to rounding (float64 tests). Not twice differentiable
(``once_differentiable``): use ``RecurrentEnsemble.use_scan = False`` for ``create_graph``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from gnode.chunks import member_chunks, step_bytes

# in place: the pre-activation is a fresh product nobody else reads (the first layer's rows get
# the activation, the gate's rows the sigmoid), and a second buffer per step is one more
# allocation and pass over memory
_ACT = {"linear": lambda p: p, "relu": torch.relu_, "tanh": torch.tanh_}


def _act_back(act: str, grad: Tensor, out: Tensor) -> Tensor:
    """dL/d pre of an activation from dL/d out and the activation's output ``out``."""
    if act == "relu":
        return torch.ops.aten.threshold_backward(grad, out, 0)
    if act == "tanh":
        return torch.ops.aten.tanh_backward(grad, out)
    return grad


def _unpack(cfg, params):
    """The first-layer (and gate) weight stacks [W; U; b] and the rest, from :func:`scan_params`."""
    _, depth, gated, _, _ = cfg
    c1 = torch.cat(params[0:3], 1)  # (E, N + I + 1, first)
    cz = torch.cat(params[3:6], 1) if gated else None  # (E, N + I + 1, N)
    rest = params[6:] if gated else params[3:]
    hidden = [(rest[2 * i], rest[2 * i + 1]) for i in range(depth - 1)] if depth >= 1 else []
    w_out, b_out = (rest[-2], rest[-1]) if depth >= 1 else (None, None)
    return c1, cz, hidden, w_out, b_out


def scan_columns(cfg, h0: Tensor, xs: Tensor, alpha, params, keep: bool = False):
    """The Euler scan in column layout, without a graph.

    Args:
        cfg: ``(activation, depth, gated, substeps, clamp)``; ``clamp`` None, or a bound c
            that every state is clipped to, [-c, c], after each sub-step (the expressivity
            fits' guard against runaway rollouts; its gradient passes inside the bound only).
        h0: (E, N, B) initial state.
        xs: (T, E, I, B) inputs per bin (I may be 0).
        alpha: the Euler factor of one sub-step: a float or a (T, A, 1, B) tensor (A = 1 or E).
        params: :func:`scan_params` in their stored (E, in, out) shapes.
        keep: keep what the backward pass needs.

    Returns:
        states (T, E, N, B) after each bin. With ``keep`` they are a strided slice of ``hx``
        and come with ``(hx, a1s, hid, zs, fs)``: hx (K + 1, E, N + I + 1, B) the augmented
        states (K = T * substeps; the input rows of slot K are not set); per step k the first
        layer's activations a1s[k] (E, first, B), the hidden layers' hid[i][k] (E, M, B), and
        for a gnODE the gates zs[k] and flow values fs[k] (E, N, B).
    """
    act, depth, gated, substeps, clamp = cfg
    actf = _ACT[act]
    c1, cz, hidden, w_out, b_out = _unpack(cfg, params)
    first = c1.shape[-1]
    c_t = (torch.cat([c1, cz], -1) if gated else c1).transpose(1, 2)  # (E, P, N + I + 1)
    hidden_t = [(wk.transpose(1, 2), bk.transpose(1, 2)) for wk, bk in hidden]  # (E, M, M), (E, M, 1)
    w_out_t = w_out.transpose(1, 2) if depth >= 1 else None
    b_out_t = b_out.transpose(1, 2) if depth >= 1 else None
    float_alpha = not torch.is_tensor(alpha)
    t_bins, e, n_in, b = xs.shape
    n = h0.shape[1]
    k_steps = t_bins * substeps
    # slot j holds [h_j; x of step j; 1]; all K + 1 slots when kept for the backward pass
    slots = k_steps + 1 if keep else 2
    hx = h0.new_empty(slots, e, n + n_in + 1, b)
    hx[:, :, n + n_in].fill_(1.0)
    hx[0, :, :n].copy_(h0)
    if keep:
        hx[:k_steps, :, n:n + n_in].view(t_bins, substeps, e, n_in, b).copy_(xs.unsqueeze(1))
        states = hx[substeps::substeps, :, :n]
    else:
        states = h0.new_empty(t_bins, e, n, b)
    a1s, zs, fs = [], [], []
    hid = [[] for _ in hidden]
    for j in range(k_steps):
        k = j // substeps
        cur = hx[j % slots]
        if not keep and n_in and j % substeps == 0:
            cur[:, n:n + n_in].copy_(xs[k])
        h = cur[:, :n]
        ak = alpha if float_alpha else alpha[k]
        pre = _mm(c_t, cur)  # (E, P, B)
        a = actf(pre[:, :first]) if gated else actf(pre)
        if keep:
            a1s.append(a)
        for i, (wk, bk) in enumerate(hidden_t):
            a = actf(_mm(wk, a).add_(bk))  # baddbmm would first copy the expanded bias
            if keep:
                hid[i].append(a)
        f = _mm(w_out_t, a).add_(b_out_t) if depth >= 1 else a
        nxt = hx[(j + 1) % slots]
        if not keep and n_in and j + 1 < k_steps and (j + 1) % substeps:
            nxt[:, n:n + n_in].copy_(cur[:, n:n + n_in])  # the next sub-step of the same bin
        out = nxt[:, :n]
        if gated:
            z = torch.sigmoid_(pre[:, first:])  # in the gate rows of pre, which are kept anyway
            if keep:
                zs.append(z)
                fs.append(f)
            torch.lerp(h, f, ak * z, out=out)
        elif float_alpha:
            torch.lerp(h, f, ak, out=out)
        else:
            torch.addcmul(h, ak, f - h, out=out)
        if clamp is not None:
            out.clamp_(-clamp, clamp)
        if not keep and (j + 1) % substeps == 0:
            states[k].copy_(out)
    return (states, (hx, a1s, hid, zs, fs)) if keep else states


#: the largest batch B for which :func:`_mm` takes the row product: a training step of the paper's
#: flip-flop shapes is 1.5-2.1x faster so at B = 10, and no faster at B >= 32 (benchmarks/p7_small_batch.py)
ROW_MAX_B = 16


def scan_chunks(cfg, params, b: int, device: torch.device) -> list[slice]:
    """The chunks of members (:func:`gnode.chunks.member_chunks`) the scan runs one after
    another, for a batch of ``b``: a member's parameters and one step's activations, (first
    layer + gate + hidden layers + N) x ``b`` numbers."""
    _, _, gated, _, _ = cfg
    rows = params[0].shape[-1] + (params[3].shape[-1] if gated else 0)  # W_1 and W_z
    rows += sum(w.shape[-1] for w in (params[6:] if gated else params[3:])[0::2])  # W_k and W_out
    return member_chunks(params[0].shape[0], step_bytes(params, rows, b), b, device)


def _mm(a: Tensor, x: Tensor, acc: Tensor | None = None) -> Tensor:
    """a @ x for a (E, P, R) and x (E, R, B), or added into ``acc`` in place.

    For B <= :data:`ROW_MAX_B` it is computed as the row product (x^T a^T)^T: the same
    numbers to rounding, but a batched product whose right operand has only a few columns runs
    far below the BLAS rate on a CPU, with them on the left near it (``benchmarks/p7_small_batch.py``).
    """
    b = x.shape[-1]
    if b > ROW_MAX_B:
        return torch.bmm(a, x) if acc is None else acc.baddbmm_(a, x)
    if b == 1:
        # reshape, not transpose: a (E, 1, R) view with a row stride of 1 sends bmm to a slow path
        prod = torch.bmm(x.reshape(x.shape[0], 1, -1), a.transpose(1, 2)).view(x.shape[0], -1, 1)
    else:
        prod = torch.bmm(x.transpose(1, 2), a.transpose(1, 2)).transpose(1, 2)
    return prod if acc is None else acc.add_(prod)


def _outer_sum(left: list[Tensor], right: list[Tensor]) -> Tensor:
    """sum_k left[k] @ right[k]^T over the steps k as one product: K tensors (E, X, B) and
    K tensors (E, Y, B) -> (E, X, Y)."""

    def flat(v: list[Tensor]) -> Tensor:  # K x (E, X, B) -> (E, X, K * B)
        stacked = torch.stack(v)
        return stacked.permute(1, 2, 0, 3).reshape(stacked.shape[1], stacked.shape[2], -1)

    return torch.bmm(flat(left), flat(right).transpose(1, 2))


class _StepSums:
    """Per-key sums over the steps of the backward pass: outer products ``left @ right^T``
    ((E, X, B) x (E, Y, B) -> (E, X, Y), the weight gradients, each kept in the orientation
    whose output is wider) and plain sums (the bias gradients, (E, X, B)).

    Accumulated step by step, which keeps the memory flat; or, with ``defer`` (one sequence per
    member, B = 1), kept and formed at the end as one product over all steps: there the
    per-step outer products are all call overhead (forward + backward of a default expressivity
    ensemble: 256 -> 126 ms).
    """

    def __init__(self, defer: bool):
        self.defer = defer
        self.sums: dict = {}
        self.pairs: dict = {}  # deferred outer products: key -> [(left, right) per step]
        self.terms: dict = {}  # deferred plain sums: key -> [g per step]

    def outer(self, key, left: Tensor, right: Tensor) -> None:
        if self.defer:
            self.pairs.setdefault(key, []).append((left, right))
            return
        if key not in self.sums:
            self.sums[key] = left.new_zeros(left.shape[0], left.shape[1], right.shape[1])
        self.sums[key].baddbmm_(left, right.transpose(1, 2))

    def add(self, key, g: Tensor) -> None:
        if self.defer:
            self.terms.setdefault(key, []).append(g)
            return
        if key not in self.sums:
            self.sums[key] = torch.zeros_like(g)
        self.sums[key].add_(g)

    def __getitem__(self, key) -> Tensor:
        if key in self.sums:
            return self.sums[key]
        if key in self.pairs:  # in time order (the backward pass adds them last step first)
            steps = self.pairs[key][::-1]
            return _outer_sum([left for left, _ in steps], [right for _, right in steps])
        return torch.stack(self.terms[key]).sum(0)


class EulerScan(torch.autograd.Function):
    """States (T, E, N, B) of the Euler scan in column layout; see :func:`scan_columns`.

    Inputs: ``cfg``, ``h0`` (E, N, B), ``xs`` (T, E, I, B), ``alpha`` (float or (T, A, 1, B),
    no gradient), then the parameters of :func:`scan_params`.
    """

    @staticmethod
    def forward(ctx, cfg, h0, xs, alpha, *params):
        chunks = scan_chunks(cfg, params, h0.shape[-1], h0.device)
        parts = [scan_columns(cfg, *_members(c, h0, xs, alpha, params), keep=True) for c in chunks]
        # everything through save_for_backward (not on ctx): autograd then frees it after the
        # backward pass and raises if any of it (e.g. the returned states, a view of hx when
        # there is one chunk) is modified in place before that
        kept = []
        for _, (hx, a1s, hid, zs, fs) in parts:
            kept += [hx, *a1s, *(a for layer in hid for a in layer), *zs, *fs]
        ctx.save_for_backward(*params, *kept)
        ctx.n_params = len(params)
        ctx.cfg = cfg
        ctx.alpha = alpha
        ctx.x_shape = xs.shape
        ctx.chunks = chunks
        return _join([states for states, _ in parts], 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_states):
        params, per_chunk = _saved(ctx)
        g_states = g_states.contiguous()  # arrives permuted from the (E, B, T, N) view
        need_x = ctx.needs_input_grad[2]
        g_x = g_states.new_zeros(ctx.x_shape) if need_x else None
        parts = [_backward(ctx.cfg, _alpha_part(ctx.alpha, c), [p[c] for p in params], saved, g_states[:, c],
                           g_x[:, c] if need_x else None)
                 for c, saved in zip(ctx.chunks, per_chunk)]
        g_h0 = _join([g for g, _ in parts], 0)
        g_params = [_join(list(gs), 0) for gs in zip(*(grads for _, grads in parts))]
        return (None, g_h0, g_x, None, *g_params)


def _join(parts: list[Tensor], dim: int) -> Tensor:
    """The members' chunks put back together along ``dim`` (no copy for a single chunk)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim)


def _members(c: slice, h0: Tensor, xs: Tensor, alpha, params):
    """:func:`scan_columns`' arguments h0 (E, N, B), xs (T, E, I, B), alpha and params for the
    members ``c``."""
    return h0[c], xs[:, c], _alpha_part(alpha, c), [p[c] for p in params]


def _alpha_part(alpha, members: slice):
    """The Euler factor of a chunk of members: a float, or (T, A, 1, B) sliced where A = E."""
    return alpha if not torch.is_tensor(alpha) or alpha.shape[1] == 1 else alpha[:, members]


def _backward(cfg, alpha, params, saved, g_states: Tensor, g_x: Tensor | None):
    """BPTT through one chunk of members: ``saved`` is what :func:`scan_columns` kept,
    ``g_states`` (T, E, N, B) dL/d states, ``g_x`` (T, E, I, B) receives dL/d inputs (or None).

    Returns dL/dh0 (E, N, B) and the gradients of ``params``.
    """
    act, depth, gated, substeps, clamp = cfg
    hx, a1s, hid, zs, fs = saved
    k_steps, n_hid = len(a1s), len(hid)
    float_alpha = not torch.is_tensor(alpha)
    c1, cz, hidden, w_out, _ = _unpack(cfg, params)
    hidden_w = [wk for wk, _ in hidden]
    e, b = hx.shape[1], hx.shape[-1]
    n_in = params[1].shape[1]
    n = hx.shape[2] - n_in - 1
    c1_in = c1[:, : n + n_in] if g_x is not None else c1[:, :n]

    defer = b == 1  # one sequence per member (the expressivity fits): see _StepSums
    sums = _StepSums(defer)
    g = hx.new_zeros(e, n, b)
    # with B = 1, the per-step factors that do not depend on g are computed for all steps at
    # once (the same elementwise values; with batches they would double the backward's memory)
    inside = (hx[1:, :, :n].abs() < clamp).to(hx.dtype) if clamp is not None and defer else None
    pre_gate = defer and gated and float_alpha
    if pre_gate:
        cf_all = alpha * torch.stack(zs)  # (K, E, N, 1)
        dq_all = (torch.stack(fs) - hx[:k_steps, :, :n]).mul_(alpha)  # dh/dz = alpha (f - h)
    for j in range(k_steps - 1, -1, -1):
        k = j // substeps
        if (j + 1) % substeps == 0:
            g.add_(g_states[k])  # g is this function's own buffer
        if clamp is not None:  # dL/dh_{j+1} passes the clamp where it did not bind
            g.mul_(inside[j] if defer else hx[j + 1][:, :n].abs() < clamp)
        ak = alpha if float_alpha else alpha[k]
        cur = hx[j]
        cf = (cf_all[j] if pre_gate else ak * zs[j]) if gated else ak  # the Euler weight w of this step
        gf = g * cf  # dL/df, (E, N, B)
        ga = gf
        if depth >= 1:
            sums.outer("W_out^T", gf, hid[-1][j] if n_hid else a1s[j])
            sums.add("b_out", gf)
            ga = _mm(w_out, gf)  # (E, M, B)
            for i in range(n_hid - 1, -1, -1):
                gp = _act_back(act, ga, hid[i][j])
                sums.outer(("W", i), hid[i - 1][j] if i > 0 else a1s[j], gp)
                sums.add(("b", i), gp)
                ga = _mm(hidden_w[i], gp)
        gp = _act_back(act, ga, a1s[j])  # (E, first, B)
        sums.outer("c1", cur, gp)
        g_in = _mm(c1_in, gp)  # dL/d[h; x] through the first layer
        if gated:  # the gate's pre-activation q: dh/dq = alpha (f - h) z (1 - z)
            u = dq_all[j] * g if pre_gate else (fs[j] - cur[:, :n]).mul_(g).mul_(ak)
            gq = torch.ops.aten.sigmoid_backward(u, zs[j])
            sums.outer("cz", cur, gq)
            _mm(cz[:, : g_in.shape[1]], gq, acc=g_in)
        if g_x is not None:
            g_x[k].add_(g_in[:, n:])
        g = g_in[:, :n].add_(g).sub_(gf)  # in place: fewer passes over memory
    return g, _param_grads(sums, n, n + n_in, gated, n_hid, depth)


def _saved(ctx):
    """What :meth:`EulerScan.forward` saved: the params, and per chunk of members
    (hx, a1s, hid, zs, fs) as :func:`scan_columns` keeps them."""
    _, depth, gated, substeps, _ = ctx.cfg
    saved = ctx.saved_tensors
    params, rest = saved[: ctx.n_params], saved[ctx.n_params:]
    k_steps = ctx.x_shape[0] * substeps
    n_hid = max(depth - 1, 0)
    per_step = 1 + n_hid + (2 if gated else 0)  # a1, the hidden layers' activations, z and f
    size = 1 + k_steps * per_step
    chunks = []
    for lo in range(0, len(rest), size):
        hx, steps = rest[lo], rest[lo + 1: lo + size]
        a1s = steps[:k_steps]
        hid = [steps[k_steps * (1 + i): k_steps * (2 + i)] for i in range(n_hid)]
        zs = steps[k_steps * (1 + n_hid): k_steps * (2 + n_hid)]
        fs = steps[k_steps * (2 + n_hid):]
        chunks.append((hx, a1s, hid, zs, fs))
    return params, chunks


def _param_grads(sums: _StepSums, n: int, n_u: int, gated: bool, n_hid: int, depth: int) -> list[Tensor]:
    """The gradients of :func:`scan_params` from the backward pass's sums (``n_u`` = N + I)."""
    gc1 = sums["c1"]  # (E, N + I + 1, first): [h; x; 1] @ gp^T
    grads = [gc1[:, :n], gc1[:, n:n_u], gc1[:, n_u:]]
    if gated:
        gcz = sums["cz"]
        grads += [gcz[:, :n], gcz[:, n:n_u], gcz[:, n_u:]]
    for i in range(n_hid):
        grads += [sums[("W", i)], sums[("b", i)].sum(-1).unsqueeze(1)]
    if depth >= 1:
        grads += [sums["W_out^T"].transpose(1, 2), sums["b_out"].sum(-1).unsqueeze(1)]
    return grads


def scan_params(model) -> list[Tensor]:
    """The parameters :class:`EulerScan` takes, in its order: W_1, U_1, b_1, [W_z, U_z, b_z],
    then W_k, b_k of the hidden layers and W_out, b_out (depth >= 1)."""
    spec = model.spec
    ps = [model.W_1, model.U_1, model.b_1]
    if spec.gated:
        ps += [model.W_z, model.U_z, model.b_z]
    for k in range(2, spec.depth + 1):
        ps += [getattr(model, f"W_{k}"), getattr(model, f"b_{k}")]
    if spec.depth >= 1:
        ps += [model.W_out, model.b_out]
    return ps


def euler_scan(model, x: Tensor, h0: Tensor, alpha, clamp: float | None = None) -> Tensor:
    """States (E, B, T, N) of the Euler scan of a node/gnode ``model``.

    Runs :class:`EulerScan` when a gradient is needed and :func:`scan_columns` otherwise, on
    the members in chunks (:func:`scan_chunks`). The states are a permuted, strided view of the
    scan's column-layout buffer (B the fastest dimension), or with several chunks a copy in the
    same layout: do not modify them in place (for a view, autograd raises before backward).

    Args:
        x: (E, B, T, I) inputs, held constant within each bin.
        h0: (E, B, N) initial state.
        alpha: the Euler factor of one sub-step: a float, or (E|1, B, T) per sample and bin.
        clamp: None, or the bound c of every state, [-c, c] (see :func:`scan_columns`).
    """
    spec = model.spec
    if torch.is_tensor(alpha):
        alpha = alpha.detach().to(h0).permute(2, 0, 1).unsqueeze(2)  # (T, A, 1, B)
    cfg = (spec.activation, spec.depth, spec.gated, int(spec.substeps), None if clamp is None else float(clamp))
    params = scan_params(model)
    h0_t = h0.transpose(1, 2)
    xs = x.permute(2, 0, 3, 1)  # (T, E, I, B)
    if torch.is_grad_enabled() and any(p.requires_grad for p in [h0, x, *params]):
        states = EulerScan.apply(cfg, h0_t, xs, alpha, *params)
    else:
        chunks = scan_chunks(cfg, params, h0_t.shape[-1], h0.device)
        states = _join([scan_columns(cfg, *_members(c, h0_t, xs, alpha, params)) for c in chunks], 1)
    return states.permute(1, 3, 0, 2)
