"""The Euler scan of the input-driven continuous models (node, gnode) with a hand-written backward.

:meth:`gnode.models.RecurrentEnsemble._fused_euler_autograd` is the reference: per Euler sub-step

    pre = [h, x, 1] @ [[W_1 | W_z], [U_1 | U_z], [b_1 | b_z]]     (first layer and gate at once)
    a   = act(pre[:, :first]); hidden layers act(a W_k + b_k); f = a W_out + b_out (depth >= 1)
    h  <- h + w (f - h),   w = alpha * sigmoid(pre[:, first:]) (gnode) or alpha (node)

How it is laid out, and why (measured on a 2-core CPU, ``benchmarks/p1_*``, ``p3_*``):

- **Column layout**: a state is (E, N, B), not (E, B, N), and each product is ``W^T @ h^T``. The
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

States and gradients equal autograd's to rounding (float64 tests). Not twice differentiable
(``once_differentiable``): use ``RecurrentEnsemble.use_scan = False`` for ``create_graph``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

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
    _, depth, gated, _ = cfg
    c1 = torch.cat(params[0:3], 1)  # (E, N + I + 1, first)
    cz = torch.cat(params[3:6], 1) if gated else None  # (E, N + I + 1, N)
    rest = params[6:] if gated else params[3:]
    hidden = [(rest[2 * i], rest[2 * i + 1]) for i in range(depth - 1)] if depth >= 1 else []
    w_out, b_out = (rest[-2], rest[-1]) if depth >= 1 else (None, None)
    return c1, cz, hidden, w_out, b_out


def scan_columns(cfg, h0: Tensor, xs: Tensor, alpha, params, keep: bool = False):
    """The Euler scan in column layout, without a graph.

    Args:
        cfg: ``(activation, depth, gated, substeps)``.
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
    act, depth, gated, substeps = cfg
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
        if not keep and j % substeps == 0:
            cur[:, n:n + n_in].copy_(xs[k])
        h = cur[:, :n]
        ak = alpha if float_alpha else alpha[k]
        pre = torch.bmm(c_t, cur)  # (E, P, B)
        a = actf(pre[:, :first]) if gated else actf(pre)
        if keep:
            a1s.append(a)
        for i, (wk, bk) in enumerate(hidden_t):
            a = actf(torch.bmm(wk, a).add_(bk))  # baddbmm would first copy the expanded bias
            if keep:
                hid[i].append(a)
        f = torch.bmm(w_out_t, a).add_(b_out_t) if depth >= 1 else a
        nxt = hx[(j + 1) % slots]
        if not keep and j + 1 < k_steps and (j + 1) % substeps:
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
        if not keep and (j + 1) % substeps == 0:
            states[k].copy_(out)
    return (states, (hx, a1s, hid, zs, fs)) if keep else states


class EulerScan(torch.autograd.Function):
    """States (T, E, N, B) of the Euler scan in column layout; see :func:`scan_columns`.

    Inputs: ``cfg``, ``h0`` (E, N, B), ``xs`` (T, E, I, B), ``alpha`` (float or (T, A, 1, B),
    no gradient), then the parameters of :func:`scan_params`.
    """

    @staticmethod
    def forward(ctx, cfg, h0, xs, alpha, *params):
        states, (hx, a1s, hid, zs, fs) = scan_columns(cfg, h0, xs, alpha, params, keep=True)
        # everything through save_for_backward (not on ctx): autograd then frees it after the
        # backward pass and raises if any of it (e.g. the returned states, a view of hx) is
        # modified in place before that
        ctx.save_for_backward(*params, hx, *a1s, *(a for layer in hid for a in layer), *zs, *fs)
        ctx.n_params = len(params)
        ctx.cfg = cfg
        ctx.alpha = alpha
        ctx.x_shape = xs.shape
        return states

    @staticmethod
    @once_differentiable
    def backward(ctx, g_states):
        act, depth, gated, substeps = ctx.cfg
        saved = ctx.saved_tensors
        params, hx = saved[: ctx.n_params], saved[ctx.n_params]
        k_steps = ctx.x_shape[0] * substeps
        per_step = saved[ctx.n_params + 1:]
        n_hid = max(depth - 1, 0)
        a1s = per_step[:k_steps]
        hid = [per_step[k_steps * (1 + i): k_steps * (2 + i)] for i in range(n_hid)]
        zs = per_step[k_steps * (1 + n_hid): k_steps * (2 + n_hid)]
        fs = per_step[k_steps * (2 + n_hid):]
        g_states = g_states.contiguous()  # arrives permuted from the (E, B, T, N) view
        alpha = ctx.alpha
        float_alpha = not torch.is_tensor(alpha)
        c1, cz, hidden, w_out, _ = _unpack(ctx.cfg, params)
        hidden_w = [wk for wk, _ in hidden]
        _, e, n_in, b = ctx.x_shape
        n = hx.shape[2] - n_in - 1
        need_x = ctx.needs_input_grad[2]

        # accumulators in the orientation whose output is wider (see the module docstring)
        gc1 = torch.zeros_like(c1)  # (E, N + I + 1, first): [h; x; 1] @ gp^T
        gcz = torch.zeros_like(cz) if gated else None
        gw_hid = [torch.zeros_like(wk) for wk in hidden_w]  # (E, M, M)
        gb_hid = [torch.zeros_like(a[0]) for a in hid]  # (E, M, B), summed over B at the end
        gw_out_t = w_out.new_zeros(w_out.shape[0], w_out.shape[2], w_out.shape[1]) if depth >= 1 else None
        gb_out = hx.new_zeros(e, n, b) if depth >= 1 else None
        g_x = hx.new_zeros(ctx.x_shape) if need_x else None
        g = hx.new_zeros(e, n, b)
        for j in range(k_steps - 1, -1, -1):
            k = j // substeps
            if (j + 1) % substeps == 0:
                g.add_(g_states[k])  # g is this function's own buffer
            ak = alpha if float_alpha else alpha[k]
            cur = hx[j]
            cf = ak * zs[j] if gated else ak  # the Euler weight w of this step
            gf = g * cf  # dL/df, (E, N, B)
            if depth >= 1:
                a_in = hid[-1][j] if n_hid else a1s[j]
                gw_out_t.baddbmm_(gf, a_in.transpose(1, 2))
                gb_out.add_(gf)
                ga = torch.bmm(w_out, gf)  # (E, M, B)
                for i in range(n_hid - 1, -1, -1):
                    gp = _act_back(act, ga, hid[i][j])
                    a_in = hid[i - 1][j] if i > 0 else a1s[j]
                    gw_hid[i].baddbmm_(a_in, gp.transpose(1, 2))
                    gb_hid[i].add_(gp)
                    ga = torch.bmm(hidden_w[i], gp)
            else:
                ga = gf
            gp = _act_back(act, ga, a1s[j])  # (E, first, B)
            gc1.baddbmm_(cur, gp.transpose(1, 2))
            c1_in = c1[:, : n + n_in] if need_x else c1[:, :n]
            g_in = torch.bmm(c1_in, gp)  # dL/d[h; x] through the first layer
            if gated:  # the gate's pre-activation q: dh/dq = alpha (f - h) z (1 - z)
                u = (fs[j] - cur[:, :n]).mul_(g)
                gq = torch.ops.aten.sigmoid_backward(u.mul_(ak), zs[j])
                gcz.baddbmm_(cur, gq.transpose(1, 2))
                g_in.baddbmm_(cz[:, : g_in.shape[1]], gq)
            if need_x:
                g_x[k].add_(g_in[:, n:])
            g = g_in[:, :n].add_(g).sub_(gf)  # in place: fewer passes over memory

        n_u = n + n_in
        grads = [gc1[:, :n], gc1[:, n:n_u], gc1[:, n_u:]]
        if gated:
            grads += [gcz[:, :n], gcz[:, n:n_u], gcz[:, n_u:]]
        for i in range(n_hid):
            grads += [gw_hid[i], gb_hid[i].sum(-1).unsqueeze(1)]
        if depth >= 1:
            grads += [gw_out_t.transpose(1, 2), gb_out.sum(-1).unsqueeze(1)]
        return (None, g, g_x, None, *grads)


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


def euler_scan(model, x: Tensor, h0: Tensor, alpha) -> Tensor:
    """States (E, B, T, N) of the Euler scan of a node/gnode ``model``.

    Runs :class:`EulerScan` when a gradient is needed and :func:`scan_columns` otherwise. The
    states are a permuted, strided view of the scan's column-layout buffer (B the fastest
    dimension): do not modify them in place (autograd raises if they are, before backward).

    Args:
        x: (E, B, T, I) inputs, held constant within each bin.
        h0: (E, B, N) initial state.
        alpha: the Euler factor of one sub-step: a float, or (E|1, B, T) per sample and bin.
    """
    spec = model.spec
    if torch.is_tensor(alpha):
        alpha = alpha.detach().to(h0).permute(2, 0, 1).unsqueeze(2)  # (T, A, 1, B)
    cfg = (spec.activation, spec.depth, spec.gated, int(spec.substeps))
    params = scan_params(model)
    h0_t = h0.transpose(1, 2)
    xs = x.permute(2, 0, 3, 1)  # (T, E, I, B)
    if torch.is_grad_enabled() and any(p.requires_grad for p in [h0, x, *params]):
        states = EulerScan.apply(cfg, h0_t, xs, alpha, *params)
    else:
        states = scan_columns(cfg, h0_t, xs, alpha, params)
    return states.permute(1, 3, 0, 2)
