"""Registry of the recurrent model kinds: what parameters a kind has and how it steps.

Kinds (``ModelSpec.kind``):

- ``rnn``   vanilla RNN       h <- tanh(W h + U x + b)
- ``gru``   GRU (Cho et al.)  z, r gates; h <- (1-z) h + z tanh(W (r*h) + U x + b)
- ``mgru``  minimal GRU       h <- (1-z) h + z tanh(W h + U x + b)
- ``node``  neural ODE        tau dh/dt = -h + F(h, x)
- ``gnode`` gated neural ODE  tau dh/dt = z * (-h + F(h, x)),  z = sigmoid(W_z h + U_z x + b_z)

F, the flow field of the continuous kinds, is an MLP of depth L and width M (see
:mod:`gnode.models`). Every continuous kind is integrated by the shared Euler scan
(:mod:`gnode.scan`, which knows "F, optionally gated" only) or torchdiffeq; a discrete kind is
its one-bin update :attr:`ModelKind.step`.

To add a kind: write its parameter shapes, its step and its candidate (for the critical
initialisation), add one :class:`ModelKind` to :data:`MODELS`, and test it in
``tests/unit/test_model_kinds.py`` (and ``test_models.py`` for its dynamics). Everything else
(``MODEL_KINDS``, the config's ``Literal``, the real-world input channels, the attractor
analysis) reads the registry.

The functions here take a ``spec`` (:class:`gnode.models.ModelSpec`) or a ``model``
(:class:`gnode.models.RecurrentEnsemble`) by duck typing, so that this module imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Shapes = dict[str, tuple[int, int]]
ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "linear": lambda v: v}  # of F


@dataclass(frozen=True)
class ModelKind:
    """One model kind.

    Attributes:
        name: the ``ModelSpec.kind`` string.
        label: its name in figures and tables (RNN, GRU, mGRU, nODE, gnODE).
        continuous: a vector field integrated over each bin's elapsed time (node, gnode), or a
            one-bin map that gets the elapsed time as an input channel (rnn, gru, mgru).
        gated: has an update gate z (``W_z``, ``U_z``, ``b_z``).
        shapes: spec -> the per-member (fan_in, fan_out) of the dynamics' and gate's weights
            (``W_*``, ``U_*``, ``b_*``; not the readout or h0's), in the order they are drawn
            (the order fixes the initial weights of a seed: append, never reorder).
        step: (model, h (E, B, N), xp) -> (E, B, N): the next state of a discrete kind, dh/dt
            (per unit time) of a continuous one; ``xp`` holds ``U x + b`` per input weight.
        candidate: (spec, params, v (1, N), pre) -> (N,): F(h) of one member from a dict of
            per-member parameters, where ``pre(v, "W", "U", "b") = v W + x U + b``; the flow
            of a continuous kind, the candidate state of a discrete one (the map whose Jacobian
            the critical initialisation reads, so that -h + F is the authors' F_theta).
        recurrent: spec -> names of the weights on the path h -> F(h), in order (the ones
            ``init='critical_iterated'`` rescales; their count is the L of the critical rule).
    """

    name: str
    label: str
    continuous: bool
    gated: bool
    shapes: Callable[..., Shapes]
    step: Callable[..., Tensor]
    candidate: Callable[..., Tensor]
    recurrent: Callable[..., list[str]]


# ------------------------------------------------------------------ parameter shapes
def _layer(spec, suffix: str = "") -> Shapes:
    """One recurrent layer of N units: W (N, N), U (I, N), b (1, N)."""
    n, i = spec.n_hidden, spec.n_input
    return {f"W{suffix}": (n, n), f"U{suffix}": (i, n), f"b{suffix}": (1, n)}


def _gate_shapes(spec) -> Shapes:
    return _layer(spec, "_z")


def _flow_shapes(spec) -> Shapes:
    """F: W_1, U_1, b_1 (N or M units), L-1 hidden layers W_k, b_k (M, M), then W_out, b_out."""
    n, i, m = spec.n_hidden, spec.n_input, spec.width
    first = n if spec.depth == 0 else m
    shapes = {"W_1": (n, first), "U_1": (i, first), "b_1": (1, first)}
    for k in range(2, spec.depth + 1):
        shapes |= {f"W_{k}": (m, m), f"b_{k}": (1, m)}
    if spec.depth >= 1:
        shapes |= {"W_out": (m, n), "b_out": (1, n)}
    return shapes


def _gru_shapes(spec) -> Shapes:
    return _layer(spec, "_z") | _layer(spec, "_r") | _layer(spec, "_h")


# ------------------------------------------------------------------------- steps
def _rnn_step(model, h: Tensor, xp: dict[str, Tensor]) -> Tensor:
    return torch.tanh(torch.baddbmm(xp["U"], h, model.W))


def _mgru_step(model, h: Tensor, xp: dict[str, Tensor]) -> Tensor:
    z = model.gate(h, xp)
    return torch.lerp(h, torch.tanh(torch.baddbmm(xp["U"], h, model.W)), z)


def _gru_step(model, h: Tensor, xp: dict[str, Tensor]) -> Tensor:
    z = torch.sigmoid(torch.baddbmm(xp["U_z"], h, model.W_z))
    r = torch.sigmoid(torch.baddbmm(xp["U_r"], h, model.W_r))
    cand = torch.tanh(torch.baddbmm(xp["U_h"], r * h, model.W_h))
    return torch.lerp(h, cand, z)


def _node_field(model, h: Tensor, xp: dict[str, Tensor]) -> Tensor:
    return (model.flow(h, xp) - h) / model.spec.tau


def _gnode_field(model, h: Tensor, xp: dict[str, Tensor]) -> Tensor:
    return model.gate(h, xp) * _node_field(model, h, xp)


# -------------------------------------------------------- candidates (critical init)
def _tanh_candidate(spec, params, v: Tensor, pre) -> Tensor:
    return torch.tanh(pre(v, "W", "U", "b"))[0]


def _gru_candidate(spec, params, v: Tensor, pre) -> Tensor:
    r = torch.sigmoid(pre(v, "W_r", "U_r", "b_r"))
    return torch.tanh(pre(r * v, "W_h", "U_h", "b_h"))[0]


def _flow_candidate(spec, params, v: Tensor, pre) -> Tensor:
    act = ACTIVATIONS[spec.activation]
    a = act(pre(v, "W_1", "U_1", "b_1"))
    for k in range(2, spec.depth + 1):
        a = act(a @ params[f"W_{k}"] + params[f"b_{k}"])
    if spec.depth >= 1:
        a = a @ params["W_out"] + params["b_out"]
    return a[0]


def _flow_recurrent(spec) -> list[str]:
    return ["W_1"] + [f"W_{k}" for k in range(2, spec.depth + 1)] + (["W_out"] if spec.depth >= 1 else [])


MODELS: dict[str, ModelKind] = {
    "rnn": ModelKind(
        "rnn", "RNN", continuous=False, gated=False, shapes=_layer, step=_rnn_step, candidate=_tanh_candidate,
        recurrent=lambda spec: ["W"],
    ),
    "gru": ModelKind(
        "gru", "GRU", continuous=False, gated=True, shapes=_gru_shapes, step=_gru_step, candidate=_gru_candidate,
        recurrent=lambda spec: ["W_h"],
    ),
    "mgru": ModelKind(
        "mgru", "mGRU", continuous=False, gated=True, shapes=lambda spec: _layer(spec) | _gate_shapes(spec),
        step=_mgru_step, candidate=_tanh_candidate, recurrent=lambda spec: ["W"],
    ),
    "node": ModelKind(
        "node", "nODE", continuous=True, gated=False, shapes=_flow_shapes, step=_node_field, candidate=_flow_candidate,
        recurrent=_flow_recurrent,
    ),
    "gnode": ModelKind(
        "gnode", "gnODE", continuous=True, gated=True, shapes=lambda spec: _flow_shapes(spec) | _gate_shapes(spec),
        step=_gnode_field, candidate=_flow_candidate, recurrent=_flow_recurrent,
    ),
}


def model_kind(name: str) -> ModelKind:
    """The registry entry of ``name``; ValueError listing the valid kinds otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"kind={name!r} is not one of {list(MODELS)}") from None


MODEL_KINDS = tuple(MODELS)
CONTINUOUS_KINDS = tuple(k for k, m in MODELS.items() if m.continuous)
GATED_KINDS = tuple(k for k, m in MODELS.items() if m.gated)
