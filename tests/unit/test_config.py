"""Configuration: the shipped configs validate, errors name the key, the schema file is in sync."""

import json
from pathlib import Path

import pytest
import yaml

from gnode.config import ConfigError, json_schema, validate_config

ROOT = Path(__file__).resolve().parents[2]


def _load(name):
    return yaml.safe_load((ROOT / name).read_text())


def _merge(base, over):
    """Snakemake's --configfile overlay: nested dicts merge, everything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.mark.parametrize("overlay", [None, "config/test/config.yaml", "config/paper.yaml"])
def test_shipped_configs_validate(overlay):
    raw = _load("config/config.yaml")
    if overlay:
        raw = _merge(raw, _load(overlay))
    cfg = validate_config(raw)
    assert cfg.flipflop.experiments


def test_the_test_config_overrides_every_default_experiment_at_tiny_scale():
    base = _load("config/config.yaml")
    test = _load("config/test/config.yaml")
    cfg = validate_config(_merge(base, test))
    assert set(test["flipflop"]["experiments"]) == set(base["flipflop"]["experiments"])
    for exp in cfg.flipflop.experiments.values():
        assert exp.epochs <= 3 and max(max(exp.sizes_of(m)) for m in exp.models) <= 8
    assert cfg.flipflop.data.n_trials <= 50
    a = cfg.flipflop.analysis
    assert a.n_initial * a.n_iter <= 5000 and a.memory_probes * a.memory_horizons <= 20
    assert cfg.expressivity.steps <= 10 and max(cfg.expressivity.n) <= 2


def test_sizes_of_a_model_are_its_model_sizes_entry_else_the_experiment_sizes():
    cfg = validate_config(_load("config/config.yaml"))
    exp = cfg.flipflop.experiments["3bit_variable"]
    assert exp.sizes_of("gnode") == [3, 6, 32] and exp.sizes_of("node") == [32]


def test_the_paper_profile_is_the_authors_protocol():
    """docs/fidelity.md: the released scripts' sizes, grids, epochs, F, initial states, selection."""
    cfg = validate_config(_merge(_load("config/config.yaml"), _load("config/paper.yaml")))
    exps = cfg.flipflop.experiments
    fixed = exps["3bit_fixed"]
    assert fixed.sizes == [6, 12, 18] and fixed.epochs == 200 and len(fixed.models) == 5
    assert (fixed.batch_size, fixed.weight_decay, fixed.lr["gru"], fixed.lr["gnode"]) == ([100], [0.1], [0.01], [0.001])
    var = exps["3bit_variable"]
    assert var.epochs == 600 and var.sizes == [6, 100] and var.sizes_of("gnode") == [3, 6, 100]
    models = {"3bit_variable": 5, "2bit_square": 5, "2bit_rectangle": 2, "2bit_disk": 2, "2bit_ring": 2, "2bit_fixed": 2}
    for name, k in models.items():
        e = exps[name]
        assert len(e.models) == k and all(len(e.lr[m]) * len(e.weight_decay) * len(e.batch_size) == 27 for m in e.models)
    for name in ("2bit_rectangle", "2bit_disk", "2bit_ring", "2bit_fixed", "2bit_square"):
        assert exps[name].sizes == [2] and exps[name].epochs == 200
        assert (exps[name].flow.depth, exps[name].flow.width) == (2, 316)
    assert all((e.flow.depth, e.flow.width) == (3, 100) for n, e in exps.items() if n.startswith("3bit"))
    assert {n: e.initial_state for n, e in exps.items()} == {
        n: "fixed_random" if n == "3bit_variable" else "learned_affine" for n in exps}
    for e in exps.values():  # one run per grid point, in-order batches, selection after every step
        assert e.seeds == [0] and e.select_every == "iteration" and e.shuffle is False
        assert e.integration.init == "xavier" and (e.integration.tau, e.integration.dt) == (0.01, 0.01)


def test_schema_file_is_in_sync_with_the_models():
    shipped = json.loads((ROOT / "workflow/schemas/config.schema.json").read_text())
    assert shipped == json.loads(json.dumps(json_schema())), "regenerate: python -m gnode.config --schema"


@pytest.mark.parametrize(
    "path,value,needle",
    [
        (("device",), "gpu", "config key 'device': got \"gpu\"; allowed: 'auto', 'cpu', 'cuda' or 'mps'"),
        (("threads",), 0, "config key 'threads': got 0; Input should be greater than or equal to 1"),
        (("flipflop", "experiments", "3bit_fixed", "models"), ["lstm"],
         "config key 'flipflop.experiments.3bit_fixed.models[0]': got \"lstm\"; allowed: 'rnn'"),
        (("flipflop", "experiments", "3bit_fixed", "flow", "dept"), 2,
         "config key 'flipflop.experiments.3bit_fixed.flow.dept': unknown key; allowed keys here: activation, depth, width"),
        (("flipflop", "data", "n_train"), 900, "n_train (900) must be smaller than n_trials (600)"),
        (("flipflop", "experiments", "3bit_fixed", "model_sizes"), {"lstm": [2]},
         "config key 'flipflop.experiments.3bit_fixed.model_sizes.lstm': not an allowed name here; allowed: 'rnn'"),
        (("flipflop", "experiments", "2bit_ring", "model_sizes"), {"gru": [2]},
         "model_sizes names models that are not trained: ['gru']"),
        (("flipflop", "analysis", "fixed_speed"), 1.0, "fixed_speed (1.0) must not exceed slow_speed (0.05)"),
    ],
)
def test_errors_name_the_key_the_value_and_what_is_allowed(path, value, needle):
    raw = _load("config/config.yaml")
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as err:
        validate_config(raw)
    assert needle in str(err.value)
