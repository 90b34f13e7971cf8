"""Data loaders of the three real-world benchmarks (numpy arrays; see docs/datasets.md)."""

from gnode.datasets.character_trajectories import load_character_trajectories
from gnode.datasets.fetch import (
    ChecksumError,
    DatasetUnavailable,
    resolve_dataset,
    sha256_manifest,
    verify_manifest,
)
from gnode.datasets.registry import DATASETS, DatasetSpec, load_dataset
from gnode.datasets.speech_commands import load_speech_commands
from gnode.datasets.ts_format import read_ts
from gnode.datasets.walker2d import load_walker2d

__all__ = [
    "DATASETS",
    "ChecksumError",
    "DatasetSpec",
    "DatasetUnavailable",
    "load_character_trajectories",
    "load_dataset",
    "load_speech_commands",
    "load_walker2d",
    "read_ts",
    "resolve_dataset",
    "sha256_manifest",
    "verify_manifest",
]
