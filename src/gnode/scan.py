"""The Euler scan of the input-driven continuous models (node, gnode) with a hand-written backward.

:meth:`gnode.models.RecurrentEnsemble._fused_euler_autograd` is the reference: per Euler sub-step

    pre = h @ [W_1 | W_z] + x_pre_k          (x_pre = x U + b of the first layer and the gate)
    a   = act(pre[:, :first]); hidden layers act(a W_k + b_k); f = a W_out + b_out (depth >= 1)
    h  <- h + w (f - h),   w = alpha * sigmoid(pre[:, first:]) (gnode) or alpha (node)

On the CPU autograd spends most of its time on the bookkeeping of many small tensors. Here the
forward pass runs without a graph and keeps the per-step quantities; the backward pass walks back
in time with the few products it needs (BPTT) and forms every weight gradient at the end as one
batched product over all steps. The input projections ``x_pre`` get their gradient here, so U and
the first-layer and gate biases get theirs through autograd outside (``project_inputs``).

Layout inside: per-step tensors are stacked as (E, K, B, .) with K = T * substeps steps.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable



def _act_(act: str, x: Tensor) -> Tensor:
    """The activation, in place."""
    if act == "relu":
        return x.relu_()
    if act == "tanh":
        return x.tanh_()
    return x


def _act_out(act: str, x: Tensor, out: Tensor) -> Tensor:
    """The activation of ``x`` written into ``out``."""
    if act == "relu":
        return torch.clamp_min(x, 0, out=out)
    if act == "tanh":
        return torch.tanh(x, out=out)
    return out.copy_(x)


def _act_back(act: str, grad: Tensor, out: Tensor, dest: Tensor) -> Tensor:
    """dL/d pre of an activation from dL/d out and its output ``out``, written into ``dest``."""
    if act == "relu":
        return torch.ops.aten.threshold_backward.grad_input(grad, out, 0, grad_input=dest)
    if act == "tanh":
        return torch.ops.aten.tanh_backward.grad_input(grad, out, grad_input=dest)
    return dest.copy_(grad)


def _flat(x: Tensor) -> Tensor:
    """(K, E, B, X) -> (E, K * B, X)."""
    k, e, b, c = x.shape
    return x.transpose(0, 1).reshape(e, k * b, c)


class EulerScan(torch.autograd.Function):
    """States (E, B, T, N) of the Euler scan; see the module docstring.

    Inputs: ``cfg = (activation, depth, gated, substeps)``, ``h0`` (E, B, N), ``x_pre``
    (E, B, T, P) with P = first (+ N when gated), ``alpha`` a float or a (A, B, T, 1) tensor
    (A = 1 or E; no gradient), then W_1, [W_z], W_2, b_2, ..., W_depth, b_depth, [W_out, b_out].

    Per-step quantities live in time-major buffers (K, E, B, .), K = T * substeps, written in
    place (``out=``) so that neither pass copies them again.
    """

    @staticmethod
    def forward(ctx, cfg, h0, x_pre, alpha, *params):
        act, depth, gated, substeps = cfg
        w1 = params[0]
        wz = params[1] if gated else None
        rest = params[2:] if gated else params[1:]
        hidden = [(rest[2 * i], rest[2 * i + 1]) for i in range(depth - 1)] if depth >= 1 else []
        w_out, b_out = (rest[-2], rest[-1]) if depth >= 1 else (None, None)
        first = w1.shape[-1]
        n = h0.shape[-1]
        e, b, t_bins, _ = x_pre.shape
        k_steps = t_bins * substeps
        float_alpha = not torch.is_tensor(alpha)
        w = torch.cat([w1, wz], -1) if gated else w1

        def buf(width):
            return h0.new_empty(k_steps, e, b, width)

        hs, a1 = buf(n), buf(first)
        hid = [buf(wk.shape[-1]) for wk, _ in hidden]
        zs = buf(n) if gated else None
        fs = buf(n) if gated else None
        hs_t, a1_t = hs.unbind(0), a1.unbind(0)
        hid_t = [x.unbind(0) for x in hid]
        zs_t = zs.unbind(0) if gated else None
        fs_t = fs.unbind(0) if gated else None
        x_bins = x_pre.unbind(2)
        h = h0
        t = 0
        for k in range(t_bins):
            xk = x_bins[k]
            ak = alpha if float_alpha else alpha[:, :, k]
            for _ in range(substeps):
                if gated:
                    pre = torch.baddbmm(xk, h, w)
                    a = _act_out(act, pre[..., :first], a1_t[t])
                else:
                    a = _act_(act, torch.baddbmm(xk, h, w, out=a1_t[t]))
                for i, (wk, bk) in enumerate(hidden):
                    a = _act_(act, torch.baddbmm(bk, a, wk, out=hid_t[i][t]))
                if depth >= 1:
                    f = torch.baddbmm(b_out, a, w_out, out=fs_t[t]) if gated else torch.baddbmm(b_out, a, w_out)
                else:
                    f = a
                if gated:
                    if depth == 0:
                        fs_t[t].copy_(f)
                    z = torch.sigmoid(pre[..., first:], out=zs_t[t])
                    h = torch.lerp(h, f, ak * z, out=hs_t[t])
                elif float_alpha:
                    h = torch.lerp(h, f, ak, out=hs_t[t])
                else:
                    h = torch.add(h, ak * (f - h), out=hs_t[t])
                t += 1
        states = hs[substeps - 1 :: substeps].permute(1, 2, 0, 3).contiguous()  # (E, B, T, N)
        saved = [h0, hs, a1] + hid
        if gated:
            saved += [zs, fs]
        if not float_alpha:
            saved.append(alpha)
        ctx.save_for_backward(*saved, *params)
        ctx.cfg = cfg
        ctx.float_alpha = alpha if float_alpha else None
        ctx.n_saved = len(saved)
        return states

    @staticmethod
    @once_differentiable
    def backward(ctx, g_states):
        act, depth, gated, substeps = ctx.cfg
        sv = ctx.saved_tensors
        params = sv[ctx.n_saved :]
        sv = list(sv[: ctx.n_saved])
        h0, hs, a1 = sv[0], sv[1], sv[2]
        n_hid = max(depth - 1, 0)
        hid = sv[3 : 3 + n_hid]
        pos = 3 + n_hid
        if gated:
            zs, fs = sv[pos], sv[pos + 1]
            pos += 2
        k_steps, e, b, n = hs.shape
        t_bins = k_steps // substeps
        if ctx.float_alpha is None:  # (A, B, T, 1) -> (K, A, B, 1)
            alpha = sv[pos].permute(2, 0, 1, 3).repeat_interleave(substeps, dim=0)
        else:
            alpha = ctx.float_alpha
        w1 = params[0]
        wz = params[1] if gated else None
        rest = params[2:] if gated else params[1:]
        hidden_w = [rest[2 * i] for i in range(n_hid)]
        w_out = rest[-2] if depth >= 1 else None
        first = w1.shape[-1]

        if gated:
            c_f = alpha * zs  # dh/df
            c_z = c_f * (1 - zs)  # dh/dq = alpha z (1 - z) (f - h_prev), q the gate's pre-activation
            c_z[0] *= fs[0] - h0
            c_z[1:] *= fs[1:] - hs[:-1]
        else:
            c_f = alpha
        scalar_c = not torch.is_tensor(c_f)
        w1_t = w1.transpose(1, 2).contiguous()
        wz_t = wz.transpose(1, 2).contiguous() if gated else None
        hid_t = [wk.transpose(1, 2).contiguous() for wk in hidden_w]
        w_out_t = w_out.transpose(1, 2).contiguous() if depth >= 1 else None
        g_bins = g_states.permute(2, 0, 1, 3)  # (T, E, B, N)

        g_pre = hs.new_empty(k_steps, e, b, first + (n if gated else 0))  # dL/d pre of layer 1 | gate
        g1 = g_pre[..., :first]
        gz = g_pre[..., first:] if gated else None
        g_hid = [torch.empty_like(x) for x in hid]
        g_out = hs.new_empty(k_steps, e, b, n) if depth >= 1 else None
        # per-step views, made once
        g1_t, a1_t = g1.unbind(0), a1.unbind(0)
        gz_t, cz_t = (gz.unbind(0), c_z.unbind(0)) if gated else (None, None)
        g_out_t = g_out.unbind(0) if depth >= 1 else None
        g_hid_t = [x.unbind(0) for x in g_hid]
        hid_s = [x.unbind(0) for x in hid]
        cf_t = None if scalar_c else c_f.unbind(0)
        g_bins = g_bins.unbind(0)
        g = torch.zeros_like(hs[0])
        for t in range(k_steps - 1, -1, -1):
            if (t + 1) % substeps == 0:
                g = g + g_bins[t // substeps]
            cf = c_f if scalar_c else cf_t[t]
            if depth >= 1:
                gf = torch.mul(g, cf, out=g_out_t[t])  # dL/df
                ga = torch.bmm(gf, w_out_t)
                for i in range(n_hid - 1, -1, -1):
                    ga = torch.bmm(_act_back(act, ga, hid_s[i][t], g_hid_t[i][t]), hid_t[i])
            else:
                gf = ga = g * cf
            g_new = torch.baddbmm(g - gf, _act_back(act, ga, a1_t[t], g1_t[t]), w1_t)
            if gated:
                g_new.baddbmm_(torch.mul(g, cz_t[t], out=gz_t[t]), wz_t)
            g = g_new

        hs_prev = hs[:-1]

        def wgrad(a_prev: Tensor, gp: Tensor) -> Tensor:
            """sum_t a_{t}^T gp_t, with h_prev = (h0, hs[:-1]) when a_prev is None."""
            if a_prev is not None:
                return torch.bmm(_flat(a_prev).transpose(1, 2), _flat(gp))
            out = torch.bmm(h0.transpose(1, 2), gp[0])
            if k_steps > 1:
                out = out.baddbmm_(_flat(hs_prev).transpose(1, 2), _flat(gp[1:]))
            return out

        grads = [wgrad(None, g1)] + ([wgrad(None, gz)] if gated else [])
        a_in = a1
        for i in range(n_hid):
            grads += [wgrad(a_in, g_hid[i]), g_hid[i].sum((0, 2)).unsqueeze(1)]
            a_in = hid[i]
        if depth >= 1:
            grads += [wgrad(a_in, g_out), g_out.sum((0, 2)).unsqueeze(1)]
        # x_pre of bin k enters every sub-step of the bin
        g_x = g_pre if substeps == 1 else g_pre.view(t_bins, substeps, e, b, -1).sum(1)
        g_x = g_x.permute(1, 2, 0, 3)
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
