"""Config files and the config fuzz: every file problem names the file (and line); every
mutation of every leaf of config/config.yaml validates or raises ConfigError, nothing else."""

import copy
import math
from pathlib import Path

import pytest
import yaml

from gnode.__main__ import main
from gnode.config import (
    ConfigError,
    check_snakemake_args,
    load_config_file,
    load_config_files,
    validate_config,
)

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "config/config.yaml").read_text())


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "holds no settings (empty or only comments)"),
        ("# only a comment\n\n", "holds no settings (empty or only comments)"),
        ("- seed\n- device\n", "the top level is a list; it must be a mapping of keys"),
        ("seed: [1\n", "line 2, column 1: expected ',' or ']'"),
        ("flipflop:\n\tdata: {}\n", "line 2, column 1: found character '\\t' that cannot start any token (tabs cannot indent YAML"),
        ("seed: 1\ndevice: cpu\nseed: 2\n", "line 3, column 1: duplicate key 'seed' (first given on line 1"),
        ("a:\n  b: 1\n  b: 1\n", "line 3, column 3: duplicate key 'b'"),
        ('{"seed": 1, "seed": 2}', "duplicate key 'seed'"),
        ("just text", "the top level is a str"),
    ],
)
def test_a_bad_config_file_is_named_with_its_line(tmp_path, text, needle):
    p = tmp_path / "over.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config_file(p)
    assert str(err.value).startswith(f"config file '{p}'") and needle in str(err.value), str(err.value)


def test_missing_file_folder_and_binary_file_are_named(tmp_path):
    for path, needle in [(tmp_path / "nope.yaml", "not found"), (tmp_path, "is a folder, not a file")]:
        with pytest.raises(ConfigError, match=f"config file '{path}': {needle}"):
            load_config_file(path)
    (tmp_path / "b.yaml").write_bytes(b"\xff\xfeseed: 1")
    with pytest.raises(ConfigError, match="b.yaml': not UTF-8 text"):
        load_config_file(tmp_path / "b.yaml")


def test_validation_errors_name_the_files_overlaid(tmp_path):
    over = tmp_path / "over.yaml"
    over.write_text("threads: 0\n")
    with pytest.raises(ConfigError) as err:
        load_config_files([ROOT / "config/config.yaml", over])
    assert str(err.value).splitlines()[0] == f"invalid configuration ({ROOT / 'config/config.yaml'}, {over}):"
    assert "config key 'threads': got 0" in str(err.value)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--config", "device"], "--config device: expected KEY=VALUE (e.g. --config device=cpu)"),
        (["-n", "--config"], "--config needs a value"),
        (["--configfile"], "--configfile needs a value"),
        (["--configfile", "missing.yaml"], "config file 'missing.yaml': not found"),
        (["--configfile", "config"], "config file 'config': is a folder, not a file"),
        (["--configfile=config/test/config.yaml", "--config", "device=gpu"], "config key 'device': got \"gpu\""),
        (["--configfile", "config/test/config.yaml", "config/paper.yaml", "--config", "seed=true"], "config key 'seed': got true"),
    ],
)
def test_snakemake_arguments_are_checked_in_one_line(monkeypatch, argv, needle, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["check-config", "--", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err, err


def test_good_snakemake_arguments_pass(monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = check_snakemake_args(["-n", "--cores", "2", "--configfile", "config/test/config.yaml", "--config", "threads=2"])
    assert cfg.threads == 2 and cfg.flipflop.data.n_trials <= 50
    assert main(["check-config", "--", "--configfile", "config/paper.yaml"]) == 0


# ------------------------------------------------------------------ fuzz
def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(node, list) and node and all(not isinstance(v, (dict, list)) for v in node):
        yield path, node  # a list of scalars: mutate the list and its first entry
        yield path + (0,), node[0]
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, path + (i,))
    else:
        yield path, node


MUTATIONS = {
    "text": lambda v: "x",
    "number_as_text": lambda v: str(v),
    "bool": lambda v: True,
    "null": lambda v: None,
    "list": lambda v: [v],
    "dict": lambda v: {"k": v},
    "negative": lambda v: -v if isinstance(v, (int, float)) and not isinstance(v, bool) else -1,
    "zero": lambda v: 0,
    "zero_float": lambda v: 0.0,
    "nan": lambda v: float("nan"),
    "inf": lambda v: float("inf"),
    "minus_inf": lambda v: float("-inf"),
    "huge_int": lambda v: 10**12,
    "huge_float": lambda v: 1e300,
    "tiny": lambda v: 1e-300,
    "fraction": lambda v: 0.5,
}


def _set(raw, path, value):
    node = raw
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


def _floats(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _floats(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _floats(v)
    elif isinstance(obj, float):
        yield obj


def test_fuzz_every_leaf_validates_or_raises_config_error():
    leaves = list(_leaves(BASE))
    counts = {"valid": 0, "ConfigError": 0}
    for path, value in leaves:
        for name, mutate in MUTATIONS.items():
            raw = copy.deepcopy(BASE)
            _set(raw, path, mutate(value))
            try:
                cfg = validate_config(raw)
            except ConfigError as err:
                counts["ConfigError"] += 1
                key = ".".join(str(p) for p in path if not isinstance(p, int))
                assert str(err).startswith("invalid configuration:") and "config key '" in str(err)
                assert key.split(".")[0] in str(err), (path, name, str(err))
                continue
            counts["valid"] += 1
            assert all(math.isfinite(x) for x in _floats(cfg.model_dump())), (path, name)
    total = counts["valid"] + counts["ConfigError"]
    print(f"config fuzz: {len(leaves)} leaves x {len(MUTATIONS)} mutations = {total}: "
          f"{counts['valid']} valid, {counts['ConfigError']} ConfigError, 0 other exceptions")
    assert total == len(leaves) * len(MUTATIONS) and len(leaves) > 150
    assert counts["ConfigError"] > counts["valid"]


def test_nested_config_values_from_the_command_line_get_their_yaml_types():
    from gnode.config import cli_overrides

    # what Snakemake's --config flipflop="{data: {...}}" hands over (YAML BaseLoader: all text)
    given = {"flipflop": {"data": {"n_trials": "60", "seed": "7"}, "analysis": {"lr": "1.0e-2"}}, "device": "cpu",
             "figures": {"formats": ["png"], "dpi": "100"}, "x": {"flag": "true", "none": "null", "text": "a: b"}}
    out = cli_overrides(given)
    assert out["flipflop"] == {"data": {"n_trials": 60, "seed": 7}, "analysis": {"lr": 0.01}}
    assert out["figures"] == {"formats": ["png"], "dpi": 100} and "device" not in out
    assert out["x"] == {"flag": True, "none": None, "text": "a: b"}
