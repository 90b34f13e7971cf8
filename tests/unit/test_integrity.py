"""Integrity of intermediates: every single-byte flip of a Parquet or model.pt file is caught by
``python -m gnode verify`` and by the reader, which names the file; stale and missing records."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gnode import io, verify
from gnode.__main__ import main
from gnode.models import ModelSpec, RecurrentEnsemble, load_model, save_model

SCHEMA = pa.schema([("model", pa.string()), ("n", pa.int32()), ("loss", pa.float64())])
N_OFFSETS = 200


def _table(path):
    df = pd.DataFrame({"model": ["gnode", "node"] * 20, "n": np.arange(40, dtype=np.int32), "loss": np.linspace(0, 1, 40)})
    io.write_table(df, path, SCHEMA, io.provenance({"a": 1}))
    return df


def _model(path):
    spec = ModelSpec(kind="gnode", n_input=3, n_hidden=4, n_output=2, depth=1, width=5)
    save_model(RecurrentEnsemble(spec, [0, 1]), path, extra={"best": [0.5, 0.25]})


def _flips(path, n=N_OFFSETS):
    """Yield after flipping one byte at each of ``n`` offsets spread over the file (restored after)."""
    original = path.read_bytes()
    for off in np.unique(np.linspace(0, len(original) - 1, n).astype(int)):
        bad = bytearray(original)
        bad[off] ^= 0x01  # one bit: the smallest change (o -> n, d -> e)
        path.write_bytes(bytes(bad))
        yield int(off)
    path.write_bytes(original)


def test_the_writer_records_a_sha256sum_line_and_page_checksums(tmp_path):
    p = tmp_path / "t.parquet"
    _table(p)
    digest, name = io.checksum_path(p).read_text().split()
    assert name == "t.parquet" and digest == io.file_sha256(p) and io.verify_checksum(p)
    meta = pq.ParquetFile(p).metadata
    assert meta.num_row_groups >= 1
    assert pq.read_table(p, page_checksum_verification=True).num_rows == 40


@pytest.mark.parametrize("kind", ["parquet", "model"])
def test_every_single_byte_flip_is_caught_by_verify_and_by_the_reader(tmp_path, kind, capsys):
    path = tmp_path / ("t.parquet" if kind == "parquet" else "model.pt")
    (_table if kind == "parquet" else _model)(path)
    read = io.read_table if kind == "parquet" else load_model
    read(path)  # whole: reads
    tried = caught_verify = caught_read = 0
    for _ in _flips(path):
        tried += 1
        found = verify.check_file(path)
        caught_verify += found is not None and found.kind == verify.CORRUPT
        try:
            read(path)
        except io.CorruptFileError as err:
            caught_read += str(path) in str(err)
    print(f"{kind}: {tried} single-byte flips, {caught_verify} caught by verify, {caught_read} by the reader")
    assert tried >= N_OFFSETS * 0.95 and caught_verify == tried and caught_read == tried
    assert verify.check_file(path) is None  # restored


def test_page_checksums_catch_flips_in_data_pages_even_without_a_record(tmp_path):
    p = tmp_path / "t.parquet"
    _table(p)
    io.checksum_path(p).unlink()
    caught = sum(verify.check_file(p).kind == verify.CORRUPT for _ in _flips(p))
    # footer bytes (schema, statistics) are covered by no page checksum; data pages are
    print(f"without a sha256 record: {caught} of {N_OFFSETS} flips caught by page checksums and parsing")
    assert caught > N_OFFSETS // 4


def test_a_truncated_file_is_corrupt_and_verify_names_deletes_it(tmp_path, capsys):
    res = tmp_path / "results"
    _table(res / "a" / "t.parquet")
    _model(res / "b" / "model.pt")
    _table(res / "ok.parquet")
    (res / "a" / "t.parquet").write_bytes((res / "a" / "t.parquet").read_bytes()[:-10])
    io.checksum_path(res / "b" / "model.pt").unlink()
    raw = (res / "b" / "model.pt").read_bytes()
    (res / "b" / "model.pt").write_bytes(raw[: len(raw) // 2])
    io.checksum_path(res / "gone.parquet").write_text("0" * 64 + "  gone.parquet\n")
    assert main(["verify", str(res)]) == 1
    out = capsys.readouterr().out
    assert f"CORRUPT   {res / 'a' / 't.parquet'}: content sha256" in out
    assert f"CORRUPT   {res / 'b' / 'model.pt'}: unreadable" in out
    assert f"STALE     {res / 'gone.parquet.sha256'}" in out
    assert "verify: 3 files checked, 2 corrupt, 0 without checksum, 1 stale checksums" in out
    with pytest.raises(io.CorruptFileError, match=r"corrupt file .*t\.parquet"):
        io.read_table(res / "a" / "t.parquet")
    assert main(["verify", "--delete", str(res)]) == 1
    assert not (res / "a" / "t.parquet").exists() and not io.checksum_path(res / "a" / "t.parquet").exists()
    assert not (res / "b" / "model.pt").exists() and not (res / "gone.parquet.sha256").exists()
    assert (res / "ok.parquet").exists()
    assert main(["verify", str(res)]) == 0


def test_a_rewrite_replaces_the_record_and_a_damaged_record_is_reported(tmp_path):
    p = tmp_path / "t.parquet"
    _table(p)
    first = io.recorded_sha256(p)
    io.write_table(pd.DataFrame({"model": ["rnn"], "n": [1], "loss": [0.0]}), p, SCHEMA, {})
    assert io.recorded_sha256(p) != first and io.verify_checksum(p)
    io.checksum_path(p).write_text("not a digest\n")
    with pytest.raises(io.CorruptFileError, match="checksum record"):
        io.read_table(p)


class _Killed(BaseException):
    """Stands for SIGKILL at one point of a rewrite (nothing after it runs)."""


@pytest.mark.parametrize("kill_at", ["data rename", "final record"])
def test_a_kill_during_a_rewrite_leaves_a_record_that_matches_the_content_there(tmp_path, monkeypatch, kill_at):
    p = tmp_path / "ckpt.pt"
    with io.atomic_path(p) as tmp:
        tmp.write_bytes(b"epoch 4")
    old = io.recorded_sha256(p)
    real_replace, real_record = io.os.replace, io._write_record

    def replace(src, dst):
        if kill_at == "data rename" and str(dst) == str(p):
            raise _Killed
        real_replace(src, dst)

    def record(path, digests):
        if kill_at == "final record" and len(digests) == 1:
            raise _Killed
        real_record(path, digests)

    monkeypatch.setattr(io.os, "replace", replace)
    monkeypatch.setattr(io, "_write_record", record)
    with pytest.raises(_Killed):
        with io.atomic_path(p) as tmp:
            tmp.write_bytes(b"epoch 5")
    monkeypatch.undo()
    assert p.read_bytes() == (b"epoch 4" if kill_at == "data rename" else b"epoch 5")
    assert io.verify_checksum(p)  # the new digest and the old one are both recorded in the window
    assert len(io.recorded_sha256s(p)) == 2 and io.recorded_sha256s(p)[1] == old
    p.write_bytes(b"epoch 6")  # any other content is still caught
    with pytest.raises(io.CorruptFileError, match="differs from the recorded"):
        io.verify_checksum(p)
    with io.atomic_path(p) as tmp:  # the next complete write leaves one line again
        tmp.write_bytes(b"epoch 7")
    assert io.recorded_sha256s(p) == [io.file_sha256(p)]
