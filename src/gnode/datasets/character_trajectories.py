"""UEA CharacterTrajectories with randomly dropped points (protocol of Kidger et al. 2020).

2858 pen-tip trajectories (3 channels: x, y and pen-tip force, numerically differentiated and
smoothed, captured at 200 Hz), 20 character classes, lengths 60..182. As in the Neural CDE
experiments, the archive's own train/test files are combined and re-split 70/15/15
(stratified by class), and a fraction of the points of every sequence is removed at random;
the surviving points keep their original sample index as time stamp, so the model sees an
irregularly sampled sequence.

Project choices (documented in docs/datasets.md):
- exactly ``int(drop_rate * L)`` of a sequence's own ``L`` points are dropped (Kidger drop
  ``int(drop_rate * 182)`` positions of the padded grid, padding included);
- one permutation per sequence is drawn whatever the rate, so the points dropped at 30 % are
  also dropped at 50 % and 70 % (nested), and the split does not depend on the rate;
- the observed points are packed to the front (``x[i, :lengths[i]]``) and padded after;
- per-channel standardisation with mean/std of the observed training points (as Kidger).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gnode.datasets.ts_format import read_ts

URL = "http://www.timeseriesclassification.com/aeon-toolkit/CharacterTrajectories.zip"
# No published hash for this zip, and none could be computed offline: the download is not
# verified as a whole (pooch logs the hash it sees); ``load_character_trajectories`` checks the
# parsed contents instead (3 channels, declared labels, equal channel lengths).
KNOWN_HASH = None
FILES = ("CharacterTrajectories_TRAIN.ts", "CharacterTrajectories_TEST.ts")
FRACTIONS = (0.70, 0.15, 0.15)


def trim_trailing_nan(s: np.ndarray) -> np.ndarray:
    """Drop trailing time steps where all channels are NaN (NaN-padded archive variants)."""
    finite = np.isfinite(s).any(axis=0)
    return s[:, : (np.flatnonzero(finite)[-1] + 1 if finite.any() else 0)]


def stratified_split(
    y: np.ndarray, rng: np.random.Generator, fractions=FRACTIONS
) -> dict[str, np.ndarray]:
    """Indices of a class-stratified train/val/test split, each sorted ascending.

    Per class of size n: ``round(f_train n)`` train, ``round(f_val n)`` val, the rest test.
    """
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_tr = int(round(fractions[0] * len(idx)))
        n_va = int(round(fractions[1] * len(idx)))
        parts["train"].append(idx[:n_tr])
        parts["val"].append(idx[n_tr : n_tr + n_va])
        parts["test"].append(idx[n_tr + n_va :])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}


def drop_points(
    series: list[np.ndarray], drop_rate: float, rng: np.random.Generator, t_max: int
) -> dict[str, np.ndarray]:
    """Remove ``int(drop_rate * L)`` random points of each (C, L) series and pack the rest.

    Returns ``x`` (S, t_max, C) float32 observed values (0 after the end), ``t`` (S, t_max)
    float32 sample index of each observed point (the last one repeated after the end, so
    time increments there are 0), ``mask`` (S, t_max) bool, ``lengths`` (S,) int64.
    Points with a NaN channel count as not observed.
    """
    n, c = len(series), series[0].shape[0]
    x = np.zeros((n, t_max, c), np.float32)
    t = np.zeros((n, t_max), np.float32)
    mask = np.zeros((n, t_max), bool)
    lengths = np.zeros(n, np.int64)
    for i, s in enumerate(series):
        L = s.shape[1]
        perm = rng.permutation(L)  # drawn for every rate: dropped sets are nested across rates
        keep = np.ones(L, bool)
        keep[perm[: int(drop_rate * L)]] = False
        keep &= np.isfinite(s).all(axis=0)
        idx = np.flatnonzero(keep)
        k = len(idx)
        x[i, :k] = s[:, idx].T
        t[i, :k] = idx
        t[i, k:] = idx[-1] if k else 0
        mask[i, :k] = True
        lengths[i] = k
    return {"x": x, "t": t, "mask": mask, "lengths": lengths}


def load_character_trajectories(
    root: str | Path, *, drop_rate: float, seed: int, normalize: bool = True
) -> dict:
    """CharacterTrajectories, train+test combined, re-split and irregularly subsampled.

    Args:
        root: folder holding ``CharacterTrajectories_TRAIN.ts`` and ``_TEST.ts``.
        drop_rate: fraction of each sequence's points removed (protocol: 0, 0.3, 0.5, 0.7).
        seed: seeds both the split and the dropped points (independent streams).
        normalize: standardise each channel with the observed training points' mean/std.

    Returns:
        ``{"train"|"val"|"test": {"x": (S, Tmax, 3) float32 observed values packed to the front,
        zero after ``lengths``; "t": (S, Tmax) float32 time stamps in samples (1 sample =
        1/200 s), last one repeated after ``lengths``; "mask": (S, Tmax) bool; "lengths": (S,)
        int64 observed points; "y": (S,) int64 class 0..19; "index": (S,) int64 position in
        the combined TRAIN+TEST order}, "classes": [label strings, y indexes them],
        "mean", "std": (3,) float32 statistics used (zeros/ones if not normalize)}``.
        ``Tmax`` is the longest original sequence (182 for the archive) at every drop rate.
    """
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
    root = Path(root)
    series, labels, declared = [], [], []
    for name in FILES:
        s, lab, header = read_ts(root / name)
        if lab is None:
            raise ValueError(f"{root / name} has no class labels")
        series += [trim_trailing_nan(a) for a in s]
        labels += lab
        declared = declared or header["classes"]
    classes = declared or sorted(set(labels))  # header order (1..20 in the archive) if declared
    if any(a.shape[0] != 3 for a in series):
        raise ValueError(
            f"expected 3 channels in {root}, got {sorted({a.shape[0] for a in series})}"
        )
    y = np.array([classes.index(lab) for lab in labels], np.int64)
    t_max = max(a.shape[1] for a in series)

    split_rng, drop_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    idx = stratified_split(y, split_rng)
    packed = drop_points(series, drop_rate, drop_rng, t_max)

    mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    if normalize:
        train_obs = packed["x"][idx["train"]][packed["mask"][idx["train"]]]  # (P, 3)
        mean, std = train_obs.mean(0), train_obs.std(0) + np.float32(1e-5)
        packed["x"] = np.where(packed["mask"][..., None], (packed["x"] - mean) / std, 0.0)
        packed["x"] = packed["x"].astype(np.float32)
    out: dict = {
        k: {**{n: a[i] for n, a in packed.items()}, "y": y[i], "index": i} for k, i in idx.items()
    }
    out.update(classes=list(classes), mean=mean.astype(np.float32), std=std.astype(np.float32))
    return out
