"""Walker2d kinematics, irregularly sampled (Lechner & Hasani 2020, "ODE-LSTM").

400 rollouts ``rollout_NNN.npy``, float64 (T, 17), of the MuJoCo Walker2d state. The protocol
reproduces the reference loader of that benchmark step by step, so that the windows (and hence
the numbers) are comparable:

1. the file names are sorted, then shuffled with ``RandomState(125487)``; the first
   ``int(0.15 n)`` files are test, up to ``int((0.15 + 0.1) n)`` validation, the rest training;
2. per file, pairs ``x = arr[:-1]``, ``y = arr[1:]`` (predict the next raw step);
3. each pair is kept with probability 0.9: one ``rand()`` per pair from a single
   ``RandomState(891374)``, consumed over the training files, then validation, then test, each
   in split order; ``dt`` of a kept pair is the number of steps since the previous kept one
   (the count starts at the file's first step, so ``dt = k + 1`` for a first kept index ``k``);
4. windows of 64 kept pairs, start ``0, 16, 32, ...`` while ``start < n_kept - 64`` (the
   reference uses ``range(0, n - 64, 16)``: a window ending exactly at the last pair is not
   taken, and sequences of <= 64 kept pairs give none).

Note that ``y`` is the raw next step ``arr[k + 1]`` of each kept ``arr[k]``, not the next *kept*
state: that is the reference behaviour, kept for comparability.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from gnode.datasets.fetch import parse_manifest, verify_manifest

URL = "https://pub.ist.ac.at/~mlechner/datasets/walker.zip"
# The archive's own hash is not published and could not be computed offline, so the download
# is not checked as a whole (pooch then logs the hash it sees); instead every unpacked rollout is
# checked against the shipped per-file manifest (``walker2d.sha256``) by ``load_walker2d``.
KNOWN_HASH = None
PATTERN = "rollout_*.npy"

SPLIT_SEED = 125487
SAMPLING_SEED = 891374
TEST_FRACTION = 0.15
VAL_FRACTION = 0.10
KEEP_PROB = 0.9
SEQ_LEN = 64
STRIDE = 16
N_STATE = 17


def packaged_manifest() -> dict[str, str]:
    """SHA-256 of the 400 published rollout files, as shipped with the package."""
    f = resources.files("gnode.datasets").joinpath("walker2d.sha256")
    if not f.is_file():  # a wheel built without the package-data entry for *.sha256
        raise FileNotFoundError(
            "gnode/datasets/walker2d.sha256 is missing from the installed package: add it as "
            "package data (pyproject [tool.setuptools.package-data]) or pass verify=False"
        )
    return parse_manifest(f.read_text())


def split_files(names: list[str]) -> dict[str, list[str]]:
    """Split file names into ``train``/``val``/``test`` exactly as the reference loader does."""
    files = sorted(names)
    np.random.RandomState(SPLIT_SEED).shuffle(files)  # shuffles the list in place
    n_test = int(TEST_FRACTION * len(files))
    n_test_val = int((TEST_FRACTION + VAL_FRACTION) * len(files))
    return {"train": files[n_test_val:], "val": files[n_test:n_test_val], "test": files[:n_test]}


def subsample(
    arr: np.ndarray, rng: np.random.RandomState, keep_prob: float = KEEP_PROB
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Irregularly sample one rollout ``arr`` (T, D).

    Returns ``x`` (K, D) = kept ``arr[k]``, ``y`` (K, D) = ``arr[k + 1]``, ``dt`` (K,) steps
    since the previous kept pair, all float32. Consumes ``T - 1`` draws of ``rng``.
    """
    keep = rng.rand(arr.shape[0] - 1) < keep_prob  # same stream as one rand() per step
    idx = np.flatnonzero(keep)
    dt = np.diff(idx, prepend=-1)  # the reference counts from the first step: dt[0] = idx[0] + 1
    return arr[idx].astype(np.float32), arr[idx + 1].astype(np.float32), dt.astype(np.float32)


def window_starts(n: int, seq_len: int = SEQ_LEN, stride: int = STRIDE) -> range:
    """Window starts of the reference loader: ``range(0, n - seq_len, stride)``."""
    return range(0, n - seq_len, stride)


def _windows(seqs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], seq_len: int, stride: int):
    xs, ys, dts = [], [], []
    for x, y, dt in seqs:
        for s in window_starts(len(x), seq_len, stride):
            xs.append(x[s : s + seq_len])
            ys.append(y[s : s + seq_len])
            dts.append(dt[s : s + seq_len])
    d = seqs[0][0].shape[1] if seqs else N_STATE

    def stack(a, shape):
        return np.stack(a) if a else np.zeros((0, *shape), np.float32)

    return {
        "x": stack(xs, (seq_len, d)),
        "y": stack(ys, (seq_len, d)),
        "dt": stack(dts, (seq_len,)),
    }


def load_walker2d(
    root: str | Path,
    *,
    verify: bool = True,
    manifest: dict[str, str] | None = None,
    seq_len: int = SEQ_LEN,
    stride: int = STRIDE,
) -> dict[str, dict]:
    """Windows of the irregularly-sampled Walker2d benchmark.

    Args:
        root: folder of the ``rollout_NNN.npy`` files.
        verify: check the files against ``manifest`` (default: the packaged manifest of the
            400 published rollouts) before loading; extra ``rollout_*.npy`` files are errors.
        manifest: ``{file name: sha256}`` to verify against instead of the packaged one.
        seq_len, stride: window length and stride in kept steps (protocol: 64 and 16).

    Returns:
        ``{"train"|"val"|"test": {"x": (W, seq_len, 17) float32 state at kept steps,
        "y": (W, seq_len, 17) float32 state one raw step later, "dt": (W, seq_len) float32
        elapsed raw steps since the previous kept step (integers >= 1), "files": [names]}}``.

    Raises:
        ChecksumError: if ``verify`` and a file is missing, corrupted or unexpected.
        FileNotFoundError: no rollout in ``root``.
    """
    root = Path(root)
    if verify:
        verify_manifest(
            root, packaged_manifest() if manifest is None else manifest, extra_pattern=PATTERN
        )
    names = [p.name for p in root.glob(PATTERN)]
    if not names:
        raise FileNotFoundError(f"no {PATTERN} in {root}")
    splits = split_files(names)
    rng = np.random.RandomState(SAMPLING_SEED)  # one stream across train, then val, then test
    out = {}
    for split in ("train", "val", "test"):
        seqs = [subsample(np.load(root / f), rng) for f in splits[split]]
        out[split] = {**_windows(seqs, seq_len, stride), "files": splits[split]}
    return out
