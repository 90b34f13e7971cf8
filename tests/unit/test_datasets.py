"""Walker2d loader, manifests and dataset resolution (local dirs, download, offline)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gnode.datasets import (
    DATASETS,
    ChecksumError,
    DatasetUnavailable,
    load_dataset,
    load_walker2d,
    resolve_dataset,
    sha256_manifest,
    verify_manifest,
)
from gnode.datasets.fetch import config_key
from gnode.datasets.walker2d import packaged_manifest, split_files

# the real 400 rollouts, where present (tests needing them are skipped otherwise)
SHARED_WALKER = Path(os.environ.get("GNODE_WALKER2D_DIR", "/work/shared/data/walker2d"))


def write_rollouts(d: Path, lengths: list[int], seed: int = 0) -> Path:
    """Rollouts whose column 0 is the step index and column 1 the file number."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, T in enumerate(lengths):
        arr = rng.standard_normal((T, 17))
        arr[:, 0] = np.arange(T)
        arr[:, 1] = i
        np.save(d / f"rollout_{i:03d}.npy", arr)
    return d


def reference_windows(d: Path) -> dict:
    """Scalar transcription of the published protocol (one rand() per step), for comparison."""
    names = sorted(p.name for p in d.glob("rollout_*.npy"))
    np.random.RandomState(125487).shuffle(names)
    n_test, n_tv = int(0.15 * len(names)), int((0.15 + 0.1) * len(names))
    splits = {"train": names[n_tv:], "val": names[n_test:n_tv], "test": names[:n_test]}
    rng = np.random.RandomState(891374)
    out = {}
    for s in ("train", "val", "test"):
        xs, ys, ts = [], [], []
        for f in splits[s]:
            arr = np.load(d / f)
            kx, ky, kt, skip = [], [], [], 0
            for t in range(arr.shape[0] - 1):
                skip += 1
                if rng.rand() < 0.9:
                    kx.append(arr[t]), ky.append(arr[t + 1]), kt.append(skip)
                    skip = 0
            for w in range(0, len(kx) - 64, 16):
                xs.append(kx[w : w + 64]), ys.append(ky[w : w + 64]), ts.append(kt[w : w + 64])
        out[s] = (np.array(xs, np.float32), np.array(ys, np.float32), np.array(ts, np.float32))
    out["files"] = splits
    return out


@pytest.fixture(scope="module")
def rollouts(tmp_path_factory) -> Path:
    lengths = [60, 66, 80, 81, 97, 130, 150, 200, 250, 300] * 2
    return write_rollouts(tmp_path_factory.mktemp("walker"), lengths)


def test_walker_split_sizes_and_files(rollouts):
    data = load_walker2d(rollouts, verify=False)
    files = {s: data[s]["files"] for s in ("train", "val", "test")}
    assert [len(files[s]) for s in ("train", "val", "test")] == [15, 2, 3]  # 20 files: 15/10/75 %
    assert sorted(sum(files.values(), [])) == sorted(p.name for p in rollouts.glob("*.npy"))
    assert files == reference_windows(rollouts)["files"]
    # 400 names: 60 test, 40 val, 300 train
    sizes = {
        k: len(v) for k, v in split_files([f"rollout_{i:03d}.npy" for i in range(400)]).items()
    }
    assert sizes == {"train": 300, "val": 40, "test": 60}


def test_walker_matches_scalar_reference_and_is_reproducible(rollouts):
    data = load_walker2d(rollouts, verify=False)
    ref = reference_windows(rollouts)
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(data[s]["x"], ref[s][0])
        np.testing.assert_array_equal(data[s]["y"], ref[s][1])
        np.testing.assert_array_equal(data[s]["dt"], ref[s][2])
    again = load_walker2d(rollouts, verify=False)
    for s in ("train", "val", "test"):
        for k in ("x", "y", "dt"):
            np.testing.assert_array_equal(data[s][k], again[s][k])


def test_walker_window_semantics(rollouts):
    data = load_walker2d(rollouts, verify=False)
    tr = data["train"]
    W = tr["x"].shape[0]
    assert W > 0 and tr["x"].shape == (W, 64, 17) and tr["y"].shape == (W, 64, 17)
    assert tr["dt"].shape == (W, 64) and tr["x"].dtype == tr["dt"].dtype == np.float32
    for s in ("train", "val", "test"):
        x, y, dt = data[s]["x"], data[s]["y"], data[s]["dt"]
        assert np.all(dt >= 1) and np.array_equal(dt, np.round(dt))
        step = x[..., 0]  # column 0 holds the raw step index
        np.testing.assert_array_equal(y[..., 0], step + 1)  # target: the next raw step
        np.testing.assert_array_equal(y[..., 1], x[..., 1])  # same file
        np.testing.assert_array_equal(np.diff(step, axis=1), dt[:, 1:])  # dt = elapsed steps
        assert np.all(step[:, 0] + 1 >= dt[:, 0])
        # where the next step was kept, y is the next kept x
        nxt = dt[:, 1:] == 1
        np.testing.assert_array_equal(y[:, :-1][nxt], x[:, 1:][nxt])
    # rollouts of 60 steps (files 0 and 10) have < 65 pairs: no window of 64 (+1) kept pairs
    file_ids = np.concatenate([data[s]["x"][:, 0, 1] for s in ("train", "val", "test")])
    assert not np.isin(file_ids, [0, 10]).any()
    assert {9, 19} <= set(file_ids.astype(int).tolist())  # the 300-step files do give windows


def test_walker_keep_rate_is_point_nine(tmp_path):
    d = write_rollouts(tmp_path / "w", [1001] * 10)
    data = load_walker2d(d, verify=False, seq_len=64, stride=64)
    dt = np.concatenate([data[s]["dt"].ravel() for s in ("train", "val", "test")])
    assert abs(1 / dt.mean() - 0.9) < 0.02  # mean gap between kept steps is 1/0.9


def test_manifest_detects_corruption_truncation_missing_and_extra(rollouts, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(rollouts, d)
    manifest = sha256_manifest(d, "rollout_*.npy")
    assert len(manifest) == 20 and all(len(h) == 64 for h in manifest.values())
    verify_manifest(d, manifest, extra_pattern="rollout_*.npy")
    load_walker2d(d, manifest=manifest)  # verifies, then loads

    f = d / "rollout_007.npy"
    raw = bytearray(f.read_bytes())
    raw[-5] ^= 0x01  # one bit of one float
    f.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match=r"rollout_007\.npy"):
        load_walker2d(d, manifest=manifest)

    g = d / "rollout_011.npy"
    g.write_bytes(g.read_bytes()[:100])
    (d / "rollout_003.npy").unlink()
    np.save(d / "rollout_999.npy", np.zeros((3, 17)))
    with pytest.raises(ChecksumError) as err:
        verify_manifest(d, manifest, extra_pattern="rollout_*.npy")
    msg = str(err.value)
    for name in ("rollout_007.npy", "rollout_011.npy", "rollout_003.npy", "rollout_999.npy"):
        assert name in msg
    assert "missing file" in msg and "unexpected file" in msg and "corrupted or truncated" in msg
    assert "rollout_001.npy" not in msg


def test_packaged_manifest_lists_the_400_rollouts():
    manifest = packaged_manifest()
    assert sorted(manifest) == [f"rollout_{i:03d}.npy" for i in range(400)]
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in manifest.values())
    assert len(set(manifest.values())) == 400


@pytest.mark.skipif(not SHARED_WALKER.is_dir(), reason="shared Walker2d copy not present")
def test_shared_walker_copy_verifies_and_gives_reference_counts():
    verify_manifest(SHARED_WALKER, packaged_manifest(), extra_pattern="rollout_*.npy")
    data = load_walker2d(SHARED_WALKER)  # verify=True against the packaged manifest
    counts = {s: data[s]["x"].shape[0] for s in ("train", "val", "test")}
    assert counts == {"train": 9684, "val": 1272, "test": 1937}
    assert [len(data[s]["files"]) for s in ("train", "val", "test")] == [300, 40, 60]


@pytest.mark.skipif(not SHARED_WALKER.is_dir(), reason="shared Walker2d copy not present")
def test_corrupted_copy_of_shared_walker_names_the_file(tmp_path):
    d = tmp_path / "walker"
    shutil.copytree(SHARED_WALKER, d, ignore=shutil.ignore_patterns("README*"))
    f = d / "rollout_123.npy"
    raw = bytearray(f.read_bytes())
    raw[200] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match=r"corrupted or truncated file .*rollout_123\.npy"):
        load_walker2d(d)
    f.write_bytes(bytes(raw[:-17]))  # truncated
    with pytest.raises(ChecksumError, match=r"rollout_123\.npy"):
        load_walker2d(d)


# --- resolve_dataset -----------------------------------------------------------------------


class _Server:
    """Static file server on 127.0.0.1 that counts requests (a real HTTP download for pooch)."""

    def __init__(self, root: Path):
        self.requests = 0
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def walker_zip(rollouts, tmp_path, no_proxy):
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "walker.zip", "w") as z:  # same layout as the real archive
        for p in sorted(rollouts.glob("*.npy")):
            z.write(p, f"walker/{p.name}")
    server = _Server(served)
    yield server, served / "walker.zip"
    server.close()


def _closed_port_url(name: str) -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: connection refused, like being offline
    return f"http://127.0.0.1:{port}/{name}"


def test_resolve_prefers_local_dir_and_finds_nested_folder(walker_zip, rollouts, tmp_path):
    server, _ = walker_zip
    empty = tmp_path / "empty"
    empty.mkdir()
    parent = tmp_path / "data"
    shutil.copytree(rollouts, parent / "walker")
    got = resolve_dataset(
        "walker2d",
        local_dirs=[tmp_path / "absent", empty, parent],
        url=f"{server.url}/walker.zip",
        known_hash=None,
        cache_dir=tmp_path / "cache",
    )
    assert got == parent / "walker"
    assert server.requests == 0 and not (tmp_path / "cache").exists()


def test_resolve_downloads_verifies_and_reuses(walker_zip, tmp_path):
    server, archive = walker_zip
    digest = "sha256:" + sha256_manifest(archive.parent, "walker.zip")["walker.zip"]
    kw = dict(
        local_dirs=[], url=f"{server.url}/walker.zip", known_hash=digest, cache_dir=tmp_path / "c"
    )
    got = resolve_dataset("walker2d", **kw)
    assert got.name == "walker" and len(list(got.glob("rollout_*.npy"))) == 20
    assert server.requests == 1
    assert resolve_dataset("walker2d", **kw) == got and server.requests == 1  # cached unpack
    bad = dict(kw, known_hash="sha256:" + "0" * 64, cache_dir=tmp_path / "c2")
    with pytest.raises(ChecksumError, match="walker.zip"):
        resolve_dataset("walker2d", **bad)


def test_resolve_untars_tar_gz(tmp_path, no_proxy):
    import tarfile

    src = tmp_path / "src"
    for f in ("validation_list.txt", "testing_list.txt", "yes/a.wav"):
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        (src / f).write_text("x")
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "sc.tar.gz", "w:gz") as t:  # the real archive has no top folder
        for p in sorted(src.rglob("*")):
            t.add(p, p.relative_to(src).as_posix(), recursive=False)
    server = _Server(served)
    try:
        got = resolve_dataset(
            "speech_commands",
            local_dirs=[],
            url=f"{server.url}/sc.tar.gz",
            known_hash=None,
            cache_dir=tmp_path / "c",
        )
    finally:
        server.close()
    assert (got / "yes" / "a.wav").is_file() and (got / "testing_list.txt").is_file()


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_resolve_raises_unavailable_with_config_key(name, tmp_path, no_proxy):
    key = config_key(name)
    assert key == f"data.{name}.local_dirs"
    with pytest.raises(DatasetUnavailable, match=rf"`{key}`") as err:
        resolve_dataset(
            name,
            local_dirs=[tmp_path],
            url=DATASETS[name].url,
            known_hash=DATASETS[name].known_hash,
            cache_dir=tmp_path / "c",
            download=False,
        )
    assert str(tmp_path) in str(err.value) and "download" in str(err.value)
    url = _closed_port_url(DATASETS[name].url.rsplit("/", 1)[-1])
    with pytest.raises(DatasetUnavailable, match=rf"`{key}`"):
        resolve_dataset(
            name, local_dirs=[tmp_path], url=url, known_hash=None, cache_dir=tmp_path / "c"
        )


def test_load_dataset_resolves_then_loads(rollouts, tmp_path):
    data = load_dataset(
        "walker2d", local_dirs=[rollouts], cache_dir=tmp_path, download=False, verify=False
    )
    np.testing.assert_array_equal(
        data["test"]["x"], load_walker2d(rollouts, verify=False)["test"]["x"]
    )
    with pytest.raises(ValueError, match="valid"):
        load_dataset("mnist", local_dirs=[], cache_dir=tmp_path)


def test_registry_entries():
    assert set(DATASETS) == {"walker2d", "character_trajectories", "speech_commands"}
    assert DATASETS["walker2d"].url == "https://pub.ist.ac.at/~mlechner/datasets/walker.zip"
    assert DATASETS["speech_commands"].known_hash.startswith("sha256:")
    with pytest.raises(ValueError, match="unknown dataset"):
        resolve_dataset("mnist", local_dirs=[], url=None, known_hash=None, cache_dir=".")



def test_registry_facts_agree_with_the_loaders_and_the_config():
    from gnode.config import DATASET_NAMES, DataSources
    from gnode.datasets.fetch import EXPECTED_FILES
    from gnode.datasets.registry import METRICS, get_spec

    # every list of dataset names is the registry's (fetch and the config do not import it)
    assert set(DATASETS) == set(DATASET_NAMES) == set(EXPECTED_FILES)
    assert set(DATASETS) <= set(DataSources.model_fields)
    assert {n: (d.kind, d.metric, d.shape) for n, d in DATASETS.items()} == {
        "walker2d": ("regression", "mse", (17, 17)),  # the 17-D state predicts the next one
        "character_trajectories": ("classification", "accuracy", (3, 20)),  # pen x, y, force; 20 letters
        "speech_commands": ("classification", "accuracy", (20, 10)),  # 20 MFCCs; ten words
    }
    assert set(METRICS) == {d.kind for d in DATASETS.values()}
    from gnode.datasets import speech_commands, walker2d

    assert DATASETS["speech_commands"].shape == (speech_commands.N_MFCC, len(speech_commands.WORDS))
    assert DATASETS["walker2d"].n_features == walker2d.N_STATE
    # only walker2d is standardised by the study (the loaders of the others already are)
    assert [n for n, d in DATASETS.items() if d.standardise is not None] == ["walker2d"]
    assert all(prep <= train for prep, train in (d.memory_mb for d in DATASETS.values()))
    assert get_spec("walker2d") is DATASETS["walker2d"]
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'; valid: \['character_trajectories'"):
        get_spec("mnist")
