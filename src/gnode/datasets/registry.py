"""Registry of the real-world benchmarks: one entry per dataset with everything the study needs.

An entry (:class:`DatasetSpec`) holds the download source and checksum, the raw loader, the
task kind (regression or classification, hence the metric), the shapes (features per bin,
outputs), the time unit, the function that turns the raw data into the study's
train/val/test :class:`Split` s, an optional standardisation, and the memory the
workflow's jobs ask for.

To add a dataset: write its loader module in ``gnode/datasets/`` (numpy arrays, docs in
docs/datasets.md), add its expected files and download hint to :mod:`gnode.datasets.fetch`,
one :class:`DatasetSpec` here, its name to ``DATASET_NAMES`` and a source entry
``data.<name>`` in :mod:`gnode.config` (the config does not import this module, so that editing
a loader does not change the code hash of every job); tests in
``tests/unit/test_datasets*.py`` (a test asserts that these lists agree).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gnode.datasets import character_trajectories, speech_commands, walker2d
from gnode.datasets.fetch import resolve_dataset

if TYPE_CHECKING:  # typing only: the config does not import this module, nor this module the config
    from gnode.config import RealworldDataSettings

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# the test metric of each task kind: mse (lower is better), accuracy (higher is better)
METRICS = {"regression": "mse", "classification": "accuracy"}


@dataclass
class Split:
    """One split as arrays: ``x`` (S, T, I) float32, ``dt`` (S, T) float32 elapsed time of each
    bin, ``lengths`` (S,) int64 valid bins, ``y`` (S, T, O) float32 or (S,) int64 labels."""

    x: np.ndarray
    dt: np.ndarray
    lengths: np.ndarray
    y: np.ndarray


# settings: the data rule's settings (gnode.config.RealworldDataSettings); seed: the task's
# data seed; meta: the metadata being built (the function adds its own entries)
SplitsFn = Callable[[Path, "RealworldDataSettings", int, dict], "dict[str, Split]"]


@dataclass(frozen=True)
class DatasetSpec:
    """How to get, load and use one benchmark.

    ``known_hash`` is pooch's ``"sha256:<hex>"`` of the archive, or None where it is not
    published (then the loader checks the unpacked files instead, if it can).
    ``n_output``: the predicted state's size (regression) or the number of classes (logits).
    ``standardise``: (splits, meta) -> None, in place, applied when the task's ``standardize``
    is on (None: the loader standardises already). ``memory_mb``: (data preparation, training)
    jobs, in MB.
    """

    name: str
    load: Callable[..., dict]
    url: str
    known_hash: str | None
    kind: str
    n_features: int
    n_output: int
    time_unit: str
    splits: SplitsFn
    standardise: Callable[[dict, dict], None] | None
    memory_mb: tuple[int, int]

    @property
    def metric(self) -> str:
        """The test metric of the task: mse (regression) or accuracy (classification)."""
        return METRICS[self.kind]

    @property
    def shape(self) -> tuple[int, int]:
        """(features per bin, outputs)."""
        return self.n_features, self.n_output


def elapsed_from_times(t: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Bin widths from time stamps (S, T): ``t_k - t_{k-1}``, the first from a virtual sample at
    ``t = -1`` (so a sequence starting at sample 0 has a first bin of width 1); 0 after
    ``lengths`` (the state of a continuous model then stays where it is)."""
    dt = np.diff(t, axis=1, prepend=-1.0).astype(np.float32)
    dt[~(np.arange(t.shape[1]) < lengths[:, None])] = 0.0
    return dt


# ----------------------------------------------------------------- per-dataset splits
def _walker2d_splits(root: Path, settings: RealworldDataSettings, seed: int, meta: dict) -> dict[str, Split]:
    """Windows of the Walker2d rollouts, checked against the packaged manifest as the source's
    ``verify`` says (all, present: the rollouts present, none); full-length sequences."""
    mode = settings.source.verify
    manifest = walker2d.packaged_manifest()
    if mode == "present":  # each rollout present must be a published one, unchanged
        manifest = {f: h for f, h in manifest.items() if (Path(root) / f).exists()}
        meta["rollouts"] = len(manifest)
    raw = walker2d.load_walker2d(root, verify=mode != "none", manifest=manifest)
    meta["verify"] = mode
    meta["n_files"] = {s: len(raw[s]["files"]) for s in SPLITS}
    if mode != "all":
        logger.info("walker2d: %d rollout files (verify=%s)", sum(meta["n_files"].values()), mode)
    return {
        s: Split(raw[s]["x"], raw[s]["dt"], np.full(len(raw[s]["x"]), raw[s]["x"].shape[1], np.int64), raw[s]["y"])
        for s in SPLITS
    }


def _walker2d_standardise(splits: dict[str, Split], meta: dict) -> None:
    # inputs and targets are the same 17-D state: one mean/std (training inputs) for both;
    # the loss weights channel c by std_c**2, so it is the MSE of the raw state
    tr = splits["train"].x.reshape(-1, splits["train"].x.shape[-1])
    mean, std = tr.mean(0, dtype=np.float64), tr.std(0, dtype=np.float64) + 1e-6
    for s in SPLITS:
        splits[s].x = ((splits[s].x - mean) / std).astype(np.float32)
        splits[s].y = ((splits[s].y - mean) / std).astype(np.float32)
    meta["state_mean"], meta["state_std"] = mean.tolist(), std.tolist()
    meta["output_weights"] = (std**2).tolist()


def _character_splits(root: Path, settings: RealworldDataSettings, seed: int, meta: dict) -> dict[str, Split]:
    """Pen trajectories with ``drop_rate`` of the points dropped; bin widths from the time stamps."""
    raw = character_trajectories.load_character_trajectories(root, drop_rate=settings.drop_rate, seed=seed)
    meta["classes"] = list(raw["classes"])
    return {
        s: Split(raw[s]["x"], elapsed_from_times(raw[s]["t"], raw[s]["lengths"]), raw[s]["lengths"], raw[s]["y"])
        for s in SPLITS
    }


def _speech_splits(root: Path, settings: RealworldDataSettings, seed: int, meta: dict) -> dict[str, Split]:
    """MFCC frames (at most ``max_per_class`` clips per word and split); every bin one frame wide."""
    raw = speech_commands.load_speech_commands(root, max_per_class=settings.max_per_class, seed=seed)
    meta["classes"] = list(raw["classes"])
    splits = {}
    for s in SPLITS:
        x = raw[s]["x"]
        splits[s] = Split(x, np.ones(x.shape[:2], np.float32), np.full(len(x), x.shape[1], np.int64), raw[s]["y"])
    return splits


DATASETS: dict[str, DatasetSpec] = {
    "walker2d": DatasetSpec(
        "walker2d", walker2d.load_walker2d, walker2d.URL, walker2d.KNOWN_HASH,
        kind="regression", n_features=walker2d.N_STATE, n_output=walker2d.N_STATE, time_unit="simulation step",
        splits=_walker2d_splits, standardise=_walker2d_standardise, memory_mb=(2000, 4000),
    ),
    "character_trajectories": DatasetSpec(
        "character_trajectories", character_trajectories.load_character_trajectories,
        character_trajectories.URL, character_trajectories.KNOWN_HASH,
        kind="classification", n_features=3, n_output=20, time_unit="sample (5 ms)",
        splits=_character_splits, standardise=None, memory_mb=(2000, 4000),
    ),
    # ~35k clips x 161 frames x 20 coefficients in memory
    "speech_commands": DatasetSpec(
        "speech_commands", speech_commands.load_speech_commands, speech_commands.URL, speech_commands.KNOWN_HASH,
        kind="classification", n_features=speech_commands.N_MFCC, n_output=len(speech_commands.WORDS),
        time_unit="frame (6.25 ms)", splits=_speech_splits, standardise=None, memory_mb=(8000, 16000),
    ),
}  # fmt: skip


def get_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``; ValueError listing the valid names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; valid: {sorted(DATASETS)}") from None


def load_dataset(
    name: str,
    *,
    local_dirs: Sequence[str | Path],
    cache_dir: str | Path,
    download: bool = True,
    **kwargs,
) -> dict:
    """Resolve (local copy first, else download) and load benchmark ``name``.

    ``kwargs`` go to the loader (e.g. ``drop_rate``/``seed`` for character_trajectories).
    """
    spec = get_spec(name)
    root = resolve_dataset(
        name,
        local_dirs=local_dirs,
        url=spec.url,
        known_hash=spec.known_hash,
        cache_dir=cache_dir,
        download=download,
    )
    return spec.load(root, **kwargs)
