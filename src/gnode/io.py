"""Parquet I/O with explicit schemas and provenance, and atomic file writes.

Every table the workflow writes goes through :func:`write_table`: the file appears only when
complete (written to a temporary name in the same folder, then renamed), and its schema
metadata carries a JSON ``gnode`` entry with the provenance of the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROVENANCE_KEY = b"gnode"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are shared files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def config_hash(config: Mapping) -> str:
    """Stable short hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_revision(start: Path | None = None) -> str | None:
    """The git commit of the working tree (with '-dirty' when modified), or None outside git."""
    cwd = start or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def device_name(device) -> str:
    """A readable name of a torch device (the GPU model for CUDA)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu:{platform.processor() or platform.machine()}"
    return str(device)


def provenance(config: Mapping | None = None, *, device="cpu", **extra) -> dict:
    """The provenance record stored with every table."""
    import torch

    from gnode import __version__

    rec = {
        "config_hash": config_hash(config) if config is not None else None,
        "gnode_version": __version__,
        "git_revision": git_revision(),
        "torch_version": torch.__version__,
        "device": device_name(device),
    }
    rec.update(extra)
    return rec


def write_table(df: pd.DataFrame, path, schema: pa.Schema, prov: Mapping) -> None:
    """Write ``df`` as Parquet with an explicit ``schema`` and provenance, atomically.

    Columns are cast to the schema (a missing or extra column is an error, so a table's layout
    cannot drift silently).
    """
    missing = set(schema.names) - set(df.columns)
    extra = set(df.columns) - set(schema.names)
    if missing or extra:
        raise ValueError(f"{path}: columns differ from the schema (missing {sorted(missing)}, extra {sorted(extra)})")
    table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(dict(prov), sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path) -> pd.DataFrame:
    """Read a Parquet table into pandas."""
    return pq.read_table(path).to_pandas()


def read_provenance(path) -> dict:
    """The provenance record of a table written by :func:`write_table`."""
    meta = pq.read_schema(path).metadata or {}
    if PROVENANCE_KEY not in meta:
        raise KeyError(f"{path} has no gnode provenance")
    return json.loads(meta[PROVENANCE_KEY])
