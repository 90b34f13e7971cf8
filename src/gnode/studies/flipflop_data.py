"""The flip-flop study's data step: one seeded data set per task, as a long Parquet table.

Kept apart from training (:mod:`gnode.studies.flipflop`) so that the data job imports only the
generators and I/O: editing a model or the trainer does not re-generate the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from gnode import io
from gnode.runtime import derive_seed, stable_id
from gnode.strict import FlipflopDataSettings
from gnode.tasks import flipflop

if TYPE_CHECKING:  # typing only: the data job does not import the config (nor the models it names)
    from gnode.config import Config

DATA_SCHEMA = pa.schema(
    [
        ("trial", pa.int32()),
        ("split", pa.string()),
        ("bin", pa.int32()),
        ("t", pa.float32()),
        ("channel", pa.int8()),
        ("input", pa.float32()),
        ("target", pa.float32()),
    ]
)


def data_settings(cfg: Config, task: str) -> FlipflopDataSettings:
    """Everything a task's data depends on (a rule's params: a change re-generates the data)."""
    return FlipflopDataSettings(task=task, base_seed=cfg.seed, **cfg.flipflop.data.model_dump())


def make_data(settings: FlipflopDataSettings) -> pd.DataFrame:
    """Generate a task's trials as a long table, one row per (trial, bin, channel)."""
    task, n_train = settings.task, settings.n_train
    data = flipflop.generate(
        task,
        settings.n_trials,
        seed=derive_seed(settings.base_seed, settings.seed, stable_id(task)),
        n_bins=settings.n_bins,
        pulse_width=settings.pulse_width,
    )
    n, t, c = data.inputs.shape
    trial, b, ch = np.meshgrid(np.arange(n), np.arange(t), np.arange(c), indexing="ij")
    return pd.DataFrame(
        {
            "trial": trial.ravel(),
            "split": np.where(trial.ravel() < n_train, "train", "test"),
            "bin": b.ravel(),
            "t": ((b.ravel() + 1) / t).astype(np.float32),
            "channel": ch.ravel(),
            "input": data.inputs.ravel(),
            "target": data.targets.ravel(),
        }
    )


def prepare_data(settings: FlipflopDataSettings, out: str | Path) -> None:
    """Write the data table of one task."""
    io.write_table(make_data(settings), out, DATA_SCHEMA, io.provenance(settings.model_dump(mode="json")))


def arrays(df: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (trials, bins, channels) float32, of one split of a data table."""
    part = df[df["split"] == split].sort_values(["trial", "bin", "channel"])
    n, t, c = part["trial"].nunique(), part["bin"].nunique(), part["channel"].nunique()
    # copies: the columns of a table read by pyarrow are read-only, and torch warns (and would
    # share the memory) when it wraps them
    return (
        part["input"].to_numpy(np.float32, copy=True).reshape(n, t, c),
        part["target"].to_numpy(np.float32, copy=True).reshape(n, t, c),
    )
