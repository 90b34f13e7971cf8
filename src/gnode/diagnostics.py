"""Diagnostics of a model ensemble at initialisation, every member at once.

For any model of :mod:`gnode.models` (``E`` members, batched):

- :func:`flow_jacobians`: the Jacobian dF/dh (E, N, N) of the flow F at a state ``h0`` with a
  constant input ``x`` (the mean input of a task); :func:`spectrum` and :func:`eta_max` are the
  eigenvalues of the Jacobian of ``-h + F`` and their largest real part, the quantity the
  critical initialisation sets to zero. For the gnODE the gate is left out (``-h + F`` is its
  vector field divided by the gate, as in the authors' rule); for the discrete models F is the
  candidate state (as in :func:`gnode.models.flow_jacobian`).
- :func:`parameter_grad_norms`: the norm of the gradient of the training loss (MSE on every
  bin) with respect to all parameters, per member.
- :func:`state_gradient_norms`: ``||dL/dh_t||`` for every bin t (the adjoint of the state after
  bin t, the total derivative through all later bins), per member; with the loss on the last bin
  only, its ratio to the last bin's (:func:`propagation_ratio`) says how far back in time the
  error signal reaches.

Shapes: inputs ``x`` (B, T, I) shared by all members, targets (B, T, O); states (E, ..., N).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gnode.models import RecurrentEnsemble, flow_jacobian, input_means, member_params
from gnode.training import member_mse


# --------------------------------------------------------------- Jacobian at init
def mean_input(x: Tensor) -> Tensor:
    """The input averaged over trials and bins: (B, T, I) -> (I,) (:func:`gnode.models.input_means`)."""
    return input_means(x)[0]


def _state_and_input(model: RecurrentEnsemble, h0: Tensor | None, x: Tensor | None) -> tuple[Tensor, Tensor]:
    """(E, N) state and (I,) input on the model's device/dtype; defaults: zero input, and the
    initial state of a trial whose first bin is that input."""
    ref = model.W_o
    e, n = model.n_members, model.spec.n_hidden
    if x is None:
        x = torch.zeros(model.spec.n_input, device=ref.device, dtype=ref.dtype)
    x = x.to(device=ref.device, dtype=ref.dtype)
    if h0 is None:
        with torch.no_grad():
            h = model.initial_state(x.reshape(1, 1, -1))[:, 0]
    else:
        h = h0.to(device=ref.device, dtype=ref.dtype)
        h = h.expand(e, n) if h.dim() == 1 else h
    return h, x


def flow_jacobians(model: RecurrentEnsemble, h0: Tensor | None = None, x: Tensor | None = None) -> Tensor:
    """dF/dh of every member at state ``h0`` with constant input ``x``: (E, N, N), rows = outputs.

    Args:
        h0: (N,) shared or (E, N) per member; default the model's initial state.
        x: (I,) input; default zero. Pass :func:`mean_input` of the task's inputs for the rule
            of the critical initialisation.

    Each member's F comes from the model registry (:func:`gnode.models.flow_jacobian`, the
    map of the critical initialisation): one definition of F per kind, here and there.
    """
    h, xv = _state_and_input(model, h0, x)
    spec = model.spec
    return torch.stack([flow_jacobian(spec, member_params(model, e), h[e], xv) for e in range(model.n_members)])


def spectrum(model: RecurrentEnsemble, h0: Tensor | None = None, x: Tensor | None = None) -> Tensor:
    """Eigenvalues of the Jacobian of ``-h + F`` (E, N), complex128, per member."""
    jac = flow_jacobians(model, h0, x).double()
    eye = torch.eye(jac.shape[-1], dtype=jac.dtype, device=jac.device)
    return torch.linalg.eigvals(jac - eye)


def eta_max(model: RecurrentEnsemble, h0: Tensor | None = None, x: Tensor | None = None) -> Tensor:
    """Largest real part of the eigenvalues of the Jacobian of ``-h + F`` (E,), float64."""
    return spectrum(model, h0, x).real.max(-1).values


# ------------------------------------------------------------------------- gradients
def parameter_grad_norms(model: RecurrentEnsemble, x: Tensor, y: Tensor, *, h0: Tensor | None = None) -> Tensor:
    """Norm of d(loss)/d(parameters) per member (E,), float64; loss = MSE on every bin and channel.

    The members' losses are summed before the backward pass: member e's parameters get the
    gradient of its own loss only. ``.grad`` of the parameters is left untouched.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.enable_grad():
        pred, _ = model(x, h0)
        loss = member_mse(pred, y).sum()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    sq = sum(g.double().pow(2).flatten(1).sum(1) for g in grads if g is not None)
    return sq.sqrt()


def _states_with_graph(model: RecurrentEnsemble, x: Tensor, h: Tensor) -> list[Tensor]:
    """The state after every bin, each a node of the autograd graph (plain steps, no fused scan)."""
    spec = model.spec
    xp_bins = {k: v.unbind(2) for k, v in model.project_inputs(model._expand_input(x)).items()}
    states = []
    for t in range(x.shape[-2]):
        xp = {k: v[t] for k, v in xp_bins.items()}
        if spec.continuous:
            for _ in range(spec.substeps):
                h = model.euler_step(h, xp, spec.alpha)
        else:
            h = model.discrete_step(h, xp)
        states.append(h)
    return states


def state_gradient_norms(
    model: RecurrentEnsemble, x: Tensor, y: Tensor, *, h0: Tensor | None = None, last_bin_only: bool = True
) -> Tensor:
    """``||dL/dh_t||`` for every bin t, per member: (E, T), float64.

    h_t is the state after bin t; dL/dh_t is its total derivative (through every later bin).
    L is the MSE of the readout on the last bin (``last_bin_only``) or on every bin, each member's
    own. The norm is taken over trials and units together. Native Euler integration (the
    model's ``solver`` setting is not used here).
    """
    with torch.enable_grad():
        h = model.initial_state(x) if h0 is None else h0
        states = _states_with_graph(model, x, h)
        if last_bin_only:
            loss = member_mse(model.readout(states[-1].unsqueeze(2)), y[:, -1:]).sum()
        else:
            loss = member_mse(model.readout(torch.stack(states, 2)), y).sum()
        grads = torch.autograd.grad(loss, states, allow_unused=True)
    out = [torch.zeros(model.n_members, dtype=torch.float64, device=x.device) if g is None
           else g.double().pow(2).flatten(1).sum(1).sqrt() for g in grads]
    return torch.stack(out, dim=1)


def propagation_ratio(norms: Tensor) -> Tensor:
    """``||dL/dh_t|| / ||dL/dh_{T-1}||`` (E, T) from :func:`state_gradient_norms`; 1 at the last bin."""
    return norms / norms[:, -1:]
