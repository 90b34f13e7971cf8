"""The Euler scan of the input-driven continuous models (node, gnode) with a hand-written backward.

:meth:`gnode.models.RecurrentEnsemble._fused_euler_autograd` is the reference: per Euler sub-step

    pre = h @ [W_1 | W_z] + x_pre_k          (x_pre = x U + b of the first layer and the gate)
    a   = act(pre[:, :first]); hidden layers act(a W_k + b_k); f = a W_out + b_out (depth >= 1)
    h  <- h + w (f - h),   w = alpha * sigmoid(pre[:, first:]) (gnode) or alpha (node)

Here the forward pass runs without a graph and keeps the per-step quantities (lists of (E, B, .)
tensors, K = T * substeps steps); the backward pass walks back in time with the few products it
needs (BPTT) and accumulates the weight gradients step by step. The input projections ``x_pre``
get their gradient here, so U and the first-layer and gate biases get theirs through autograd
outside (``project_inputs``). States and gradients equal autograd's to rounding (float64 tests).

Unlike :class:`gnode.expressivity._EulerRollout` (batch 1, where per-step products are tiny and
forming the weight gradients as one product over all steps pays), with a batch of ~100 the
products dominate: stacking the steps into big buffers only added copies and page faults, and the
gain over autograd is the graph bookkeeping (~5-20 %). Not twice differentiable
(``once_differentiable``): use ``RecurrentEnsemble.use_scan = False`` for ``create_graph``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

_ACT = {"linear": lambda p: p, "relu": torch.relu, "tanh": torch.tanh}


def _act_back(act: str, grad: Tensor, out: Tensor) -> Tensor:
    """dL/d pre of an activation from dL/d out and the activation's output ``out``."""
    if act == "relu":
        return torch.ops.aten.threshold_backward(grad, out, 0)
    if act == "tanh":
        return torch.ops.aten.tanh_backward(grad, out)
    return grad


class EulerScan(torch.autograd.Function):
    """States (E, B, T, N) of the Euler scan; see the module docstring.

    Inputs: ``cfg = (activation, depth, gated, substeps)``, ``h0`` (E, B, N), ``x_pre``
    (E, B, T, P) with P = first (+ N when gated), ``alpha`` a float or a (A, B, T, 1) tensor
    (A = 1 or E; no gradient), then W_1, [W_z], W_2, b_2, ..., W_depth, b_depth, [W_out, b_out].

    The per-step quantities are kept as lists of (E, B, .) tensors, and the weight gradients are
    accumulated step by step (``baddbmm_``): with a batch of ~100 the products dominate and big
    stacked buffers would only add copies and page faults.
    """

    @staticmethod
    def forward(ctx, cfg, h0, x_pre, alpha, *params):
        act, depth, gated, substeps = cfg
        actf = _ACT[act]
        w1 = params[0]
        wz = params[1] if gated else None
        rest = params[2:] if gated else params[1:]
        hidden = [(rest[2 * i], rest[2 * i + 1]) for i in range(depth - 1)] if depth >= 1 else []
        w_out, b_out = (rest[-2], rest[-1]) if depth >= 1 else (None, None)
        first = w1.shape[-1]
        float_alpha = not torch.is_tensor(alpha)
        w = torch.cat([w1, wz], -1) if gated else w1
        h = h0
        hs, a1s, zs, fs, ws = [], [], [], [], []
        hid = [[] for _ in hidden]
        states = []
        for k, xk in enumerate(x_pre.unbind(2)):
            ak = alpha if float_alpha else alpha[:, :, k]
            for _ in range(substeps):
                pre = torch.baddbmm(xk, h, w)
                a = actf(pre[..., :first]) if gated else actf(pre)
                a1s.append(a)
                for i, (wk, bk) in enumerate(hidden):
                    a = actf(torch.baddbmm(bk, a, wk))
                    hid[i].append(a)
                f = torch.baddbmm(b_out, a, w_out) if depth >= 1 else a
                if gated:
                    z = torch.sigmoid(pre[..., first:])
                    wt = ak * z
                    zs.append(z)
                    fs.append(f)
                    ws.append(wt)
                    h = torch.lerp(h, f, wt)
                elif float_alpha:
                    h = torch.lerp(h, f, ak)
                else:
                    h = h + ak * (f - h)
                hs.append(h)
            states.append(h)
        ctx.save_for_backward(h0, *params)
        ctx.lists = (hs, a1s, hid, zs, fs, ws)
        ctx.cfg = cfg
        ctx.alpha = alpha
        return torch.stack(states, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_states):
        act, depth, gated, substeps = ctx.cfg
        h0, *params = ctx.saved_tensors
        hs, a1s, hid, zs, fs, ws = ctx.lists
        alpha = ctx.alpha
        float_alpha = not torch.is_tensor(alpha)
        n_hid = max(depth - 1, 0)
        w1 = params[0]
        wz = params[1] if gated else None
        rest = params[2:] if gated else params[1:]
        hidden_w = [rest[2 * i] for i in range(n_hid)]
        w_out = rest[-2] if depth >= 1 else None
        w1_t = w1.transpose(1, 2)
        wz_t = wz.transpose(1, 2) if gated else None
        hid_t = [wk.transpose(1, 2) for wk in hidden_w]
        w_out_t = w_out.transpose(1, 2) if depth >= 1 else None
        t_bins = g_states.shape[2]
        k_steps = len(hs)

        gw1 = torch.zeros_like(w1)
        gwz = torch.zeros_like(wz) if gated else None
        gw_hid = [torch.zeros_like(wk) for wk in hidden_w]
        gb_hid = [torch.zeros_like(a[0]) for a in hid]  # (E, B, M), summed over B at the end
        gw_out = torch.zeros_like(w_out) if depth >= 1 else None
        gb_out = torch.zeros_like(hs[0]) if depth >= 1 else None
        g_bins = g_states.unbind(2)
        first = w1.shape[-1]
        e, b = hs[0].shape[:2]
        g_x = hs[0].new_zeros(e, b, t_bins, first + (wz.shape[-1] if gated else 0))
        g_x1 = g_x[..., :first].unbind(2)
        g_xz = g_x[..., first:].unbind(2) if gated else None
        g = torch.zeros_like(hs[0])
        for t in range(k_steps - 1, -1, -1):
            k = t // substeps
            if (t + 1) % substeps == 0:
                g = g + g_bins[k]
            ak = alpha if float_alpha else alpha[:, :, k]
            h_prev = hs[t - 1] if t > 0 else h0
            cf = ws[t] if gated else ak
            gf = g * cf  # dL/df
            if depth >= 1:
                a_in = hid[-1][t] if n_hid else a1s[t]
                gw_out.baddbmm_(a_in.transpose(1, 2), gf)
                gb_out.add_(gf)
                ga = torch.bmm(gf, w_out_t)
                for i in range(n_hid - 1, -1, -1):
                    gp = _act_back(act, ga, hid[i][t])
                    a_in = hid[i - 1][t] if i > 0 else a1s[t]
                    gw_hid[i].baddbmm_(a_in.transpose(1, 2), gp)
                    gb_hid[i].add_(gp)
                    ga = torch.bmm(gp, hid_t[i])
            else:
                ga = gf
            gp = _act_back(act, ga, a1s[t])
            h_prev_t = h_prev.transpose(1, 2)
            gw1.baddbmm_(h_prev_t, gp)
            # x_pre of a bin enters all its sub-steps
            g_x1[k].add_(gp)
            g_new = torch.baddbmm(g - gf, gp, w1_t)
            if gated:  # the gate's pre-activation q: dh/dq = alpha (f - h) z (1 - z)
                u = g * (fs[t] - h_prev)
                gq = torch.ops.aten.sigmoid_backward(u.mul_(ak), zs[t])
                gwz.baddbmm_(h_prev_t, gq)
                g_xz[k].add_(gq)
                g_new.baddbmm_(gq, wz_t)
            g = g_new

        grads = [gw1, gwz] if gated else [gw1]
        for i in range(n_hid):
            grads += [gw_hid[i], gb_hid[i].sum(1, keepdim=True)]
        if depth >= 1:
            grads += [gw_out, gb_out.sum(1, keepdim=True)]
        return (None, g, g_x, None, *grads)


def scan_params(model) -> list[Tensor]:
    """The parameters :class:`EulerScan` takes, in its order."""
    spec = model.spec
    ps = [model.W_1] + ([model.W_z] if spec.kind == "gnode" else [])
    for k in range(2, spec.depth + 1):
        ps += [getattr(model, f"W_{k}"), getattr(model, f"b_{k}")]
    if spec.depth >= 1:
        ps += [model.W_out, model.b_out]
    return ps


def euler_scan(model, x_pre: Tensor, h0: Tensor, alpha) -> Tensor:
    """States (E, B, T, N) of the Euler scan of a node/gnode ``model``.

    Args:
        x_pre: (E, B, T, P) input projections of the first layer (and of the gate, concatenated
            after it, for a gnODE), biases included.
        h0: (E, B, N) initial state.
        alpha: the Euler factor of one sub-step: a float, or (E|1, B, T) per sample and bin.
    """
    spec = model.spec
    if torch.is_tensor(alpha):
        alpha = alpha.detach().unsqueeze(-1)
    cfg = (spec.activation, spec.depth, spec.kind == "gnode", int(spec.substeps))
    return EulerScan.apply(cfg, h0, x_pre, alpha, *scan_params(model))
