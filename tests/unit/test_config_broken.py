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
    (("flipflop", "data", "n_trials"), "600", "got \"600\"; Input should be a valid integer (a number written as text"),
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
    (EXP + ("flow", "depth"), "3", "'flipflop.experiments.3bit_fixed.flow.depth'"),
    (EXP + ("integration", "rtol"), "1e-6", "YAML reads this as text"),
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
    # issue 13: accepted before (infinities where only a lower bound was set, bools as ints, huge sizes)
    (EXP + ("integration", "tau"), float("inf"), "'flipflop.experiments.3bit_fixed.integration.tau': got Infinity; Input should be a finite number"),
    (EXP + ("integration", "rtol"), float("inf"), "'flipflop.experiments.3bit_fixed.integration.rtol': got Infinity"),
    (EXP + ("integration", "atol"), 2.0, "'flipflop.experiments.3bit_fixed.integration.atol': got 2.0; Input should be less than 1"),
    (EXP + ("integration", "dt"), 5.0, "'flipflop.experiments.3bit_fixed.integration.dt': got 5.0"),
    (("expressivity", "threshold"), float("nan"), "'expressivity.threshold': got NaN; Input should be a finite number"),
    (("expressivity", "threshold"), -5, "'expressivity.threshold': got -5; Input should be greater than 0"),
    (("expressivity", "threshold"), 1.5, "'expressivity.threshold': got 1.5; Input should be less than or equal to 1"),
    (("expressivity", "clamp"), float("inf"), "'expressivity.clamp': got Infinity"),
    (("expressivity", "n"), [10**9], "'expressivity.n[0]': got 1000000000; Input should be less than or equal to 65536"),
    (("flipflop", "analysis", "noise_std"), float("inf"), "'flipflop.analysis.noise_std': got Infinity"),
    (("flipflop", "analysis", "noise_std"), float("-inf"), "'flipflop.analysis.noise_std': got -Infinity"),
    (("flipflop", "claims", "gating_ratio"), float("inf"), "'flipflop.claims.gating_ratio': got Infinity"),
    (("flipflop", "claims", "low_dim_r2"), 1.5, "'flipflop.claims.low_dim_r2': got 1.5"),
    (EXP + ("seeds",), [True, False], "'flipflop.experiments.3bit_fixed.seeds[0]': got true; Input should be a valid integer (true/false"),
    (("seed",), True, "'seed': got true"),
    (("threads",), False, "'threads': got false"),
    (EXP + ("sizes",), [10**9], "'flipflop.experiments.3bit_fixed.sizes[0]': got 1000000000; Input should be less than or equal to 65536"),
    (EXP + ("epochs",), 10**12, "'flipflop.experiments.3bit_fixed.epochs': got 1000000000000"),
    (EXP + ("batch_size",), [10**10], "'flipflop.experiments.3bit_fixed.batch_size[0]': got 10000000000"),
    (EXP + ("flow", "width"), 10**9, "'flipflop.experiments.3bit_fixed.flow.width': got 1000000000"),
    (EXP + ("flow", "width"), 64.0, "'flipflop.experiments.3bit_fixed.flow.width': got 64.0"),
    (("realworld", "tasks", "walker2d", "budget"), 10**12, "'realworld.tasks.walker2d.budget': got 1000000000000"),
    (("realworld", "tasks", "walker2d", "integration", "tau"), float("inf"), "'realworld.tasks.walker2d.integration.tau'"),
    (("realworld", "tasks", "walker2d", "grad_clip"), float("nan"), "'realworld.tasks.walker2d.grad_clip': got NaN"),
    (("realworld", "tasks", "walker2d", "standardize"), 1, "'realworld.tasks.walker2d.standardize': got 1"),
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


def test_bad_entries_of_a_list_of_models_name_the_allowed_keys():
    raw = copy.deepcopy(BASE)
    raw["expressivity"]["flows"][0]["foo"] = 1
    with pytest.raises(ConfigError, match=r"'expressivity.flows\[0\].foo': unknown key; allowed keys here: activation, depth, width"):
        validate_config(raw)


def test_a_union_setting_gives_one_line_listing_every_alternative():
    raw = copy.deepcopy(BASE)
    raw["expressivity"]["threshold"] = float("nan")
    with pytest.raises(ConfigError) as err:
        validate_config(raw)
    lines = str(err.value).splitlines()[1:]
    assert lines == ["  config key 'expressivity.threshold': got NaN; Input should be a finite number; or allowed: 'adaptive'"]
