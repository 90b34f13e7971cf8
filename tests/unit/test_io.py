"""Parquet I/O: explicit schemas, provenance, atomic writes."""

import os

import pandas as pd
import pyarrow as pa
import pytest

from gnode import io

SCHEMA = pa.schema([("a", pa.int32()), ("b", pa.float64())])


def test_round_trip_with_schema_and_provenance(tmp_path):
    df = pd.DataFrame({"b": [0.5, 1.5], "a": [1, 2]})
    prov = io.provenance({"x": 1}, device="cpu", task="t")
    io.write_table(df, tmp_path / "t.parquet", SCHEMA, prov)
    back = io.read_table(tmp_path / "t.parquet")
    assert list(back.columns) == ["a", "b"] and back["a"].dtype == "int32"
    meta = io.read_provenance(tmp_path / "t.parquet")
    assert meta["config_hash"] == io.config_hash({"x": 1}) and meta["task"] == "t"
    for key in ("gnode_version", "git_revision", "torch_version", "device"):
        assert key in meta
    assert meta["device"].startswith("cpu")
    assert oct(os.stat(tmp_path / "t.parquet").st_mode & 0o777) != "0o600"


def test_schema_mismatch_is_an_error_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"missing \['b'\], extra \['c'\]"):
        io.write_table(pd.DataFrame({"a": [1], "c": [2]}), tmp_path / "t.parquet", SCHEMA, {})
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with io.atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"


def test_config_hash_is_stable_and_order_free():
    assert io.config_hash({"a": 1, "b": [1, 2]}) == io.config_hash({"b": [1, 2], "a": 1})
    assert io.config_hash({"a": 1}) != io.config_hash({"a": 2})


def test_a_checkpoints_fingerprint_follows_settings_data_and_code(tmp_path):
    # a finished job's checkpoint must not be resumed after its data or its code changed
    data = tmp_path / "data.bin"
    with io.atomic_path(data) as tmp:
        tmp.write_bytes(b"trials")
    base = io.job_fingerprint({"lr": 0.1}, data, "code1")
    assert base == io.job_fingerprint({"lr": 0.1}, data, "code1")
    assert base != io.job_fingerprint({"lr": 0.2}, data, "code1")
    assert base != io.job_fingerprint({"lr": 0.1}, data, "code2")
    with io.atomic_path(data) as tmp:
        tmp.write_bytes(b"other trials")
    assert base != io.job_fingerprint({"lr": 0.1}, data, "code1")
    # without a recorded checksum the content itself is hashed
    io.checksum_path(data).unlink()
    assert io.job_fingerprint({"lr": 0.1}, data, "code1") != base
