"""The model registry: names, flags and shapes of every kind, and its agreement with the models."""

from __future__ import annotations

import itertools

import pytest
import torch

from gnode.config import Config
from gnode.model_kinds import (
    CONTINUOUS_KINDS,
    GATED_KINDS,
    MODEL_KINDS,
    MODELS,
    model_kind,
)
from gnode.models import (
    ModelSpec,
    RecurrentEnsemble,
    flow_layers,
    parameter_count,
    recurrent_matrices,
)

F64 = torch.float64


def test_registry_names_flags_and_public_tuples():
    assert MODEL_KINDS == ("rnn", "gru", "mgru", "node", "gnode")
    assert CONTINUOUS_KINDS == ("node", "gnode")
    assert GATED_KINDS == ("gru", "mgru", "gnode")
    assert all(MODELS[k].name == k for k in MODELS)
    assert [m.label for m in MODELS.values()] == ["RNN", "GRU", "mGRU", "nODE", "gnODE"]
    spec = ModelSpec(kind="mgru", n_input=1, n_hidden=2, n_output=1)
    assert spec.model is MODELS["mgru"] and spec.gated and not spec.continuous
    # the config's model names are the registry's
    assert set(Config.model_json_schema()["$defs"]["RealWorldTask"]["properties"]["models"]["items"]["enum"]) == set(
        MODEL_KINDS
    )
    with pytest.raises(ValueError, match=r"kind='lstm' is not one of \['rnn'"):
        model_kind("lstm")
    with pytest.raises(ValueError, match=r"kind='lstm' is not one of"):
        ModelSpec(kind="lstm", n_input=1, n_hidden=2, n_output=1)


@pytest.mark.parametrize(
    "kind,depth,count",
    [
        # N=3, I=2, M=4, O=1: layers of N units have N*N + I*N + N = 18 parameters; readout 4
        ("rnn", 1, 18 + 4),
        ("gru", 1, 3 * 18 + 4),
        ("mgru", 1, 2 * 18 + 4),
        # F: W_1 (3x4) U_1 (2x4) b_1 (4) = 24, W_2 12+4 = 16... depth 1: W_out (4x3) + b_out 3 = 15
        ("node", 1, 24 + 15 + 4),
        ("gnode", 1, 24 + 15 + 18 + 4),
        ("node", 0, 18 + 4),  # one layer of N units
        ("gnode", 2, 24 + (16 + 4) + 15 + 18 + 4),
    ],
)
def test_parameter_counts_by_hand(kind, depth, count):
    spec = ModelSpec(kind=kind, n_input=2, n_hidden=3, n_output=1, depth=depth, width=4)
    assert parameter_count(spec) == count == RecurrentEnsemble(spec, [0]).member_parameter_count()
    gate = {"W_z", "U_z", "b_z"} <= set(MODELS[kind].shapes(spec))
    assert gate == MODELS[kind].gated


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_step_is_the_update_or_the_vector_field(kind):
    spec = ModelSpec(kind=kind, n_input=2, n_hidden=3, n_output=1, depth=1, width=4, tau=0.5)
    m = RecurrentEnsemble(spec, [0, 1], dtype=F64)
    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 5, 3, generator=g, dtype=F64)
    xp = {n: p[:, :, 0] for n, p in m.project_inputs(torch.randn(2, 5, 1, 2, generator=g, dtype=F64)).items()}
    if spec.continuous:
        with pytest.raises(ValueError, match="continuous model"):
            m.discrete_step(h, xp)
        f = m.vector_field(h, xp)
        z = m.gate(h, xp) if spec.gated else 1.0
        torch.testing.assert_close(f, z * (m.flow(h, xp) - h) / 0.5, rtol=0, atol=0)
        # one Euler step of alpha moves h by alpha * tau * dh/dt
        torch.testing.assert_close(m.euler_step(h, xp, 0.1) - h, 0.1 * 0.5 * f)
    else:
        with pytest.raises(ValueError, match="discrete-time model"):
            m.vector_field(h, xp)
        h1 = m.discrete_step(h, xp)
        assert h1.shape == h.shape and bool((h1 - h).abs().max() > 0)
        _, states = m(torch.zeros(5, 1, 2, dtype=F64), h0=h)
        # the forward pass of one bin is one step (zero input: the projections are the biases)
        xp0 = {n: p[:, :, 0] for n, p in m.project_inputs(torch.zeros(2, 5, 1, 2, dtype=F64)).items()}
        torch.testing.assert_close(states[:, :, 0], m.discrete_step(h, xp0), rtol=0, atol=0)


@pytest.mark.parametrize("kind,depth,layers", [("rnn", 3, 1), ("gru", 3, 1), ("mgru", 2, 1), ("node", 0, 1),
                                               ("node", 1, 2), ("gnode", 3, 4)])  # fmt: skip
def test_recurrent_path_and_layers(kind, depth, layers):
    spec = ModelSpec(kind=kind, n_input=1, n_hidden=3, n_output=1, depth=depth, width=4)
    names = recurrent_matrices(spec)
    assert flow_layers(spec) == layers == len(names)
    shapes = MODELS[kind].shapes(spec)
    # the path h -> F(h) chains: each matrix's fan-in is the previous one's fan-out, from N back to N
    assert shapes[names[0]][0] == 3 and shapes[names[-1]][1] == 3
    assert all(shapes[a][1] == shapes[b][0] for a, b in itertools.pairwise(names))
