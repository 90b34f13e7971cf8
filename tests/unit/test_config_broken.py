"""Broken configurations: each gives an error naming the key, before anything runs.

Over fifty broken variants of the shipped default configuration: wrong types, unknown keys,
out-of-range values, bad choices and missing sections. (tests/workflow/test_bad_config.py
feeds a few through the real Snakefile and checks that no output appears.)
"""

import copy
from pathlib import Path

import pytest
import yaml

from gnode.config import ConfigError, validate_config

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "config/config.yaml").read_text())
EXP = ("flipflop", "experiments", "3bit_fixed")

DELETE = object()
# (path to the key, new value, text the message must contain)
BROKEN = [
    # wrong types
    (("seed",), "zero", "'seed'"),
    (("seed",), 1.5, "'seed'"),
    (("seed",), [1], "'seed'"),
    (("threads",), "two", "'threads'"),
    (("dtype",), 32, "'dtype'"),
    (("device",), None, "'device'"),
    (("flipflop",), [], "'flipflop'"),
    (("flipflop", "data"), "all", "'flipflop.data'"),
    (("flipflop", "data", "n_trials"), "600", None),  # numeric strings are accepted by pydantic: see below
    (("flipflop", "data", "n_trials"), 60.5, "'flipflop.data.n_trials'"),
    (("flipflop", "data", "n_bins"), [100], "'flipflop.data.n_bins'"),
    (("flipflop", "experiments"), [], "'flipflop.experiments'"),
    (EXP + ("models",), "gnode", "'flipflop.experiments.3bit_fixed.models'"),
    (EXP + ("sizes",), 6, "'flipflop.experiments.3bit_fixed.sizes'"),
    (EXP + ("sizes",), ["six"], "'flipflop.experiments.3bit_fixed.sizes[0]'"),
    (EXP + ("epochs",), "many", "'flipflop.experiments.3bit_fixed.epochs'"),
    (EXP + ("seeds",), 0, "'flipflop.experiments.3bit_fixed.seeds'"),
    (EXP + ("lr",), 0.01, "'flipflop.experiments.3bit_fixed.lr'"),
    (EXP + ("lr", "gnode"), 0.001, "'flipflop.experiments.3bit_fixed.lr.gnode'"),
    (EXP + ("weight_decay",), "0.1", "'flipflop.experiments.3bit_fixed.weight_decay'"),
    (EXP + ("batch_size",), [100.5], "'flipflop.experiments.3bit_fixed.batch_size[0]'"),
    (EXP + ("flow",), 3, "'flipflop.experiments.3bit_fixed.flow'"),
    (EXP + ("flow", "depth"), "3", None),
    (EXP + ("flow", "width"), "wide", "'flipflop.experiments.3bit_fixed.flow.width'"),
    (EXP + ("integration", "adjoint"), "maybe", "'flipflop.experiments.3bit_fixed.integration.adjoint'"),
    (EXP + ("integration", "tau"), "fast", "'flipflop.experiments.3bit_fixed.integration.tau'"),
    (("figures", "dpi"), "high", "'figures.dpi'"),
    (("figures", "formats"), "png", "'figures.formats'"),
    # unknown keys
    (("sed",), 0, "'sed': unknown key"),
    (("flipflop", "dta"), {}, "'flipflop.dta': unknown key"),
    (("flipflop", "data", "trials"), 600, "'flipflop.data.trials': unknown key"),
    (EXP + ("model",), ["gnode"], "'flipflop.experiments.3bit_fixed.model': unknown key"),
    (EXP + ("flow", "dept"), 2, "allowed keys here: activation, depth, width"),
    (EXP + ("integration", "method"), "rk4", "'flipflop.experiments.3bit_fixed.integration.method': unknown key"),
    (("figures", "colour"), "red", "'figures.colour': unknown key"),
    # out of range
    (("seed",), -1, "'seed'"),
    (("seed",), 2**40, "'seed'"),
    (("threads",), 0, "'threads'"),
    (("threads",), 1000, "'threads'"),
    (("flipflop", "data", "n_trials"), 1, "'flipflop.data.n_trials'"),
    (("flipflop", "data", "n_train"), 0, "'flipflop.data.n_train'"),
    (("flipflop", "data", "n_train"), 600, "n_train (600) must be smaller than n_trials (600)"),
    (("flipflop", "data", "pulse_width"), 0, "'flipflop.data.pulse_width'"),
    (("flipflop", "data", "n_bins"), 2, "'flipflop.data.n_bins'"),
    (EXP + ("sizes",), [0], "'flipflop.experiments.3bit_fixed.sizes[0]'"),
    (EXP + ("sizes",), [], "'flipflop.experiments.3bit_fixed.sizes'"),
    (EXP + ("epochs",), 0, "'flipflop.experiments.3bit_fixed.epochs'"),
    (EXP + ("lr", "rnn"), [0.0], "'flipflop.experiments.3bit_fixed.lr.rnn[0]'"),
    (EXP + ("lr", "rnn"), [5.0], "'flipflop.experiments.3bit_fixed.lr.rnn[0]'"),
    (EXP + ("weight_decay",), [-0.1], "'flipflop.experiments.3bit_fixed.weight_decay[0]'"),
    (EXP + ("batch_size",), [0], "'flipflop.experiments.3bit_fixed.batch_size[0]'"),
    (EXP + ("flow", "depth"), -1, "'flipflop.experiments.3bit_fixed.flow.depth'"),
    (EXP + ("flow", "width"), 0, "'flipflop.experiments.3bit_fixed.flow.width'"),
    (EXP + ("integration", "substeps"), 0, "'flipflop.experiments.3bit_fixed.integration.substeps'"),
    (EXP + ("integration", "tau"), 0.0, "'flipflop.experiments.3bit_fixed.integration.tau'"),
    (EXP + ("integration", "dt"), -0.01, "'flipflop.experiments.3bit_fixed.integration.dt'"),
    (EXP + ("checkpoint_every",), -1, "'flipflop.experiments.3bit_fixed.checkpoint_every'"),
    (("figures", "dpi"), 10, "'figures.dpi'"),
    # bad choices
    (("device",), "gpu", "allowed: 'auto', 'cpu', 'cuda' or 'mps'"),
    (("dtype",), "float16", "allowed: 'float32' or 'float64'"),
    (EXP + ("task",), "4bit_fixed", "'flipflop.experiments.3bit_fixed.task'"),
    (EXP + ("models",), ["rnn", "lstm"], "'flipflop.experiments.3bit_fixed.models[1]'"),
    (EXP + ("models",), [], "'flipflop.experiments.3bit_fixed.models'"),
    (EXP + ("flow", "activation"), "gelu", "allowed: 'relu', 'tanh' or 'linear'"),
    (EXP + ("integration", "solver"), "rk45", "allowed: 'native', 'euler', 'rk4' or 'dopri5'"),
    (EXP + ("integration", "init"), "he", "allowed: 'xavier', 'critical' or 'critical_iterated'"),
    (EXP + ("integration", "adjoint"), True, "adjoint: true needs a torchdiffeq solver"),
    (EXP + ("initial_state",), "random", "allowed: 'zeros', 'learned', 'learned_affine' or 'fixed_random'"),
    (EXP + ("select_every",), "step", "allowed: 'epoch' or 'iteration'"),
    (EXP + ("shuffle",), 1, "'flipflop.experiments.3bit_fixed.shuffle'"),
    (EXP + ("lr", "lstm"), [0.1], "'flipflop.experiments.3bit_fixed.lr.lstm'"),
    (("figures", "formats"), ["gif"], "'figures.formats[0]'"),
    (("flipflop", "experiments", "bad name!"), None, "'flipflop.experiments.bad name!'"),
    # missing sections or keys
    (("flipflop",), DELETE, "'flipflop': required but missing"),
    (EXP + ("task",), DELETE, "'flipflop.experiments.3bit_fixed.task': required but missing"),
    (EXP + ("epochs",), DELETE, "'flipflop.experiments.3bit_fixed.epochs': required but missing"),
    (EXP + ("lr", "gnode"), DELETE, "lr has no entry for models ['gnode']"),
]
CASES = [c for c in BROKEN if c[2] is not None]


def _broken(path, value):
    raw = copy.deepcopy(BASE)
    node = raw
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    elif path[-1] == "bad name!":
        node[path[-1]] = copy.deepcopy(raw["flipflop"]["experiments"]["3bit_fixed"])
    else:
        node[path[-1]] = value
    return raw


def test_there_are_over_fifty_broken_configs():
    assert len(CASES) >= 50


@pytest.mark.parametrize("path,value,needle", CASES, ids=[f"{'.'.join(c[0])}={c[1]!r}"[:60] for c in CASES])
def test_broken_config_is_rejected_with_the_key_named(path, value, needle):
    with pytest.raises(ConfigError) as err:
        validate_config(_broken(path, value))
    msg = str(err.value)
    assert msg.startswith("invalid configuration:")
    assert needle in msg, msg


def test_numeric_strings_are_coerced_not_rejected():
    # pydantic's lax mode reads "600" as 600: documented behaviour, harmless for YAML configs
    cfg = validate_config(_broken(("flipflop", "data", "n_trials"), "600"))
    assert cfg.flipflop.data.n_trials == 600
