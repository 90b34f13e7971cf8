"""The .ts reader and the CharacterTrajectories loader (Kidger et al. 2020 protocol)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gnode.datasets import load_character_trajectories, read_ts

TINY = """# A comment block, as in the archive files
#  with two lines
@problemName Tiny
@timeStamps false
@missing true
@univariate false
@dimensions 3
@equalLength false
@classLabel true a b c
@data
1.0,2.0,3.0:4,5,6:-1e-2,0.5,?:b
0.25,0.5:1.5,2.5:3.5,4.5:a

7,8,9,10:1,1,1,1:0,0,0,0:c
"""


def test_read_ts_values(tmp_path):
    p = tmp_path / "tiny.ts"
    p.write_text(TINY)
    series, labels, header = read_ts(p)
    assert labels == ["b", "a", "c"]
    assert header["classes"] == ["a", "b", "c"] and header["dimensions"] == 3
    assert header["problemname"] == "Tiny" and header["equallength"] is False
    assert [s.shape for s in series] == [(3, 3), (3, 2), (3, 4)]
    np.testing.assert_array_equal(series[0][:2], [[1, 2, 3], [4, 5, 6]])
    assert series[0][2, 0] == -0.01 and series[0][2, 1] == 0.5 and np.isnan(series[0][2, 2])
    np.testing.assert_array_equal(series[1], [[0.25, 0.5], [1.5, 2.5], [3.5, 4.5]])
    np.testing.assert_array_equal(series[2][0], [7, 8, 9, 10])


def test_read_ts_aeon_spelling_and_univariate(tmp_path):
    p = tmp_path / "u.ts"
    p.write_text(
        "@problemname U\n@timestamps false\n@univariate true\n@equallength true\n"
        "@serieslength 3\n@classlabel true 1 2\n@data\n1,2,3:2\n4,5,6:1\n"
    )
    series, labels, _ = read_ts(p)
    assert labels == ["2", "1"] and [s.shape for s in series] == [(1, 3), (1, 3)]
    q = tmp_path / "d.ts"
    q.write_text("@dimension 2\n@classlabel true x\n@data\n1,2:3,4:x\n")
    assert read_ts(q)[0][0].shape == (2, 2)


@pytest.mark.parametrize(
    "body, error",
    [
        ("@dimensions 3\n@classLabel true a\n@data\n1,2:3,4:a\n", ValueError),  # 2 channels
        ("@dimensions 2\n@classLabel true a\n@data\n1,2:3,4:z\n", ValueError),  # undeclared label
        ("@dimensions 2\n@classLabel true a\n@data\n1,2:3:a\n", ValueError),  # ragged channels
        (
            "@univariate true\n@equalLength true\n@classLabel true a\n@data\n1,2:a\n1:a\n",
            ValueError,
        ),
        ("@timeStamps true\n@classLabel true a\n@data\n(0,1):a\n", NotImplementedError),
        ("@dimensions 2\n1,2:3,4:a\n", ValueError),  # no @data
    ],
)
def test_read_ts_rejects_malformed(tmp_path, body, error):
    p = tmp_path / "bad.ts"
    p.write_text(body)
    with pytest.raises(error):
        read_ts(p)


N_PER_CLASS = 20
CLASSES = ["1", "2", "3"]


def write_uea(root: Path, seed: int = 0) -> list[int]:
    """TRAIN/TEST .ts files; channel 0 = sample index, channel 1 = sequence number (combined
    TRAIN then TEST order), channel 2 = noise. Returns the lengths in that order."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lengths, k = [], 0
    head = (
        "@problemName CharacterTrajectories\n@timeStamps false\n@missing false\n"
        "@univariate false\n@dimensions 3\n@equalLength false\n"
        f"@classLabel true {' '.join(CLASSES)}\n@data\n"
    )
    for part, n in (("TRAIN", 12), ("TEST", 8)):
        lines = []
        for c in CLASSES:
            for _ in range(n):
                L = int(rng.integers(10, 41))
                ch = [np.arange(L), np.full(L, k), rng.standard_normal(L)]
                lines.append(
                    ":".join(",".join(repr(float(v)) for v in row) for row in ch) + f":{c}"
                )
                lengths.append(L)
                k += 1
        (root / f"CharacterTrajectories_{part}.ts").write_text(head + "\n".join(lines) + "\n")
    return lengths


@pytest.fixture(scope="module")
def uea(tmp_path_factory):
    root = tmp_path_factory.mktemp("uea")
    return root, np.array(write_uea(root))


def _combined(data, key):
    """Reassemble a per-sequence array in combined order from the three splits."""
    n = sum(len(data[s]["index"]) for s in ("train", "val", "test"))
    first = data["train"][key]
    out = np.zeros((n, *first.shape[1:]), first.dtype)
    for s in ("train", "val", "test"):
        out[data[s]["index"]] = data[s][key]
    return out


def test_combined_split_is_stratified_and_labelled(uea):
    root, lengths = uea
    data = load_character_trajectories(root, drop_rate=0.0, seed=1, normalize=False)
    idx = {s: data[s]["index"] for s in ("train", "val", "test")}
    assert sorted(np.concatenate(list(idx.values())).tolist()) == list(range(60))
    assert data["classes"] == CLASSES
    for s, n in (("train", 14), ("val", 3), ("test", 3)):  # per class of 20: 70/15/15 %
        assert np.bincount(data[s]["y"], minlength=3).tolist() == [n] * 3
    # labels: file order is class 1,2,3 (12 each) in TRAIN, then (8 each) in TEST
    y = _combined(data, "y")
    expected = np.r_[np.repeat([0, 1, 2], 12), np.repeat([0, 1, 2], 8)]
    np.testing.assert_array_equal(y, expected)
    assert y.dtype == np.int64


def test_no_drop_keeps_everything(uea):
    root, lengths = uea
    data = load_character_trajectories(root, drop_rate=0.0, seed=0, normalize=False)
    Tmax = lengths.max()
    tr = data["train"]
    assert tr["x"].shape == (len(tr["y"]), Tmax, 3) and tr["x"].dtype == np.float32
    assert tr["t"].shape == tr["mask"].shape == (len(tr["y"]), Tmax) and tr["mask"].dtype == bool
    np.testing.assert_array_equal(_combined(data, "lengths"), lengths)
    x, t = _combined(data, "x"), _combined(data, "t")
    for i, L in enumerate(lengths):
        np.testing.assert_array_equal(t[i, :L], np.arange(L))
        np.testing.assert_array_equal(x[i, :L, 0], np.arange(L))  # values belong to their time
        assert np.all(x[i, :L, 1] == i) and np.all(x[i, L:] == 0) and np.all(t[i, L:] == L - 1)


@pytest.mark.parametrize("rate", [0.3, 0.5, 0.7])
def test_drop_rate_drops_that_fraction(uea, rate):
    root, lengths = uea
    data = load_character_trajectories(root, drop_rate=rate, seed=3, normalize=False)
    n_obs = _combined(data, "lengths")
    np.testing.assert_array_equal(n_obs, lengths - (rate * lengths).astype(int))
    x, t, mask = _combined(data, "x"), _combined(data, "t"), _combined(data, "mask")
    np.testing.assert_array_equal(mask.sum(1), n_obs)
    for i, k in enumerate(n_obs):
        assert np.all(mask[i, :k]) and not np.any(mask[i, k:])
        ti = t[i, :k]
        assert np.all(np.diff(ti) >= 1) and ti.max() < lengths[i]  # increasing sample indices
        np.testing.assert_array_equal(x[i, :k, 0], ti)  # the kept values are those at ti
        assert np.all(x[i, :k, 1] == i)
    # the drops are irregular: gaps of more than one sample occur
    assert (np.diff(t, axis=1)[mask[:, 1:]] > 1).mean() > rate / 2


def test_drops_are_seeded_nested_and_split_independent_of_rate(uea):
    root, _ = uea
    load = lambda rate, seed: load_character_trajectories(  # noqa: E731
        root, drop_rate=rate, seed=seed, normalize=False
    )
    a, b, c = load(0.5, 7), load(0.5, 7), load(0.5, 8)
    for s in ("train", "val", "test"):
        for k in ("x", "t", "mask", "lengths", "y", "index"):
            np.testing.assert_array_equal(a[s][k], b[s][k])
    assert not np.array_equal(_combined(a, "t"), _combined(c, "t"))
    assert not np.array_equal(a["train"]["index"], c["train"]["index"])

    def kept_sets(d):
        t, m = _combined(d, "t"), _combined(d, "mask")
        return [set(t[i][m[i]].astype(int).tolist()) for i in range(len(t))]

    d30, d50, d70 = load(0.3, 7), a, load(0.7, 7)
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(d30[s]["index"], d70[s]["index"])
    for k30, k50, k70 in zip(kept_sets(d30), kept_sets(d50), kept_sets(d70), strict=True):
        assert k70 <= k50 <= k30


def test_normalisation_uses_training_points(uea):
    root, _ = uea
    data = load_character_trajectories(root, drop_rate=0.3, seed=0)
    tr = data["train"]
    obs = tr["x"][tr["mask"]]
    np.testing.assert_allclose(obs.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(obs.std(0), 1, atol=1e-3)
    assert np.all(tr["x"][~tr["mask"]] == 0)
    raw = load_character_trajectories(root, drop_rate=0.3, seed=0, normalize=False)
    np.testing.assert_allclose(
        data["val"]["x"][data["val"]["mask"]],
        (raw["val"]["x"][raw["val"]["mask"]] - data["mean"]) / data["std"],
        rtol=1e-5,
        atol=1e-5,
    )


def test_nan_padded_variant_and_bad_rate(tmp_path):
    head = "@dimensions 3\n@equalLength true\n@classLabel true 1 2\n@data\n"
    (tmp_path / "CharacterTrajectories_TRAIN.ts").write_text(
        head + "1,2,?,?:3,4,?,?:5,6,?,?:1\n1,2,3,4:1,2,3,4:1,2,3,4:2\n"
    )
    (tmp_path / "CharacterTrajectories_TEST.ts").write_text(head + "9,8,7,?:1,1,1,?:2,2,2,?:2\n")
    data = load_character_trajectories(tmp_path, drop_rate=0.0, seed=0, normalize=False)
    lengths = _combined(data, "lengths")
    np.testing.assert_array_equal(lengths, [2, 4, 3])  # trailing NaN padding is not data
    assert data["train"]["x"].shape[1] == 4
    with pytest.raises(ValueError, match="drop_rate"):
        load_character_trajectories(tmp_path, drop_rate=1.0, seed=0)
