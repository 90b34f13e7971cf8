"""Integrity check of a results tree: every file against its recorded SHA-256, every Parquet
file read through with its page checksums, every ``.pt`` file without a record loaded.

``python -m gnode verify [results/]`` runs :func:`verify_tree`; corrupt files can be deleted
(``--delete``, or answering the prompt) so that ``snakemake`` rebuilds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from gnode import io

#: kinds of finding; only ``corrupt`` makes ``verify`` fail
CORRUPT, UNCHECKED, STALE = "corrupt", "unchecked", "stale"


@dataclass(frozen=True)
class Finding:
    path: Path
    kind: str  # corrupt | unchecked (no checksum recorded) | stale (a checksum whose file is gone)
    problem: str


def _read_structure(path: Path) -> None:
    """Parse a file whose format we know (raises on a truncated or damaged file)."""
    if path.suffix == ".parquet":
        # the file's SHA-256 was checked just before: only the page checksums here
        pq.read_table(path, page_checksum_verification=True)
    elif path.suffix == ".pt":
        import torch

        torch.load(path, map_location="cpu", weights_only=True)


def check_file(path) -> Finding | None:
    """The problem of one file, or None when it is whole (or of a kind we cannot check)."""
    path = Path(path)
    try:
        recorded = io.verify_checksum(path)
        if path.suffix == ".parquet" or (path.suffix == ".pt" and not recorded):
            _read_structure(path)  # Parquet: page checksums too; .pt without a record: must load
    except io.CorruptFileError as err:
        return Finding(path, CORRUPT, err.problem)
    except Exception as err:  # noqa: BLE001 - any failure to parse is a damaged file
        return Finding(path, CORRUPT, f"unreadable ({type(err).__name__}: {err})")
    if not recorded and path.suffix in (".parquet", ".pt"):
        return Finding(path, UNCHECKED, "no sha256 recorded (written before checksums or by another tool)")
    return None


def verify_tree(root) -> tuple[list[Finding], int]:
    """Check every file under ``root`` (a folder or one file); returns (findings, files checked)."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    findings, checked = [], 0
    for p in files:
        if p.name.startswith(".") and p.name.endswith(".tmp"):
            continue  # an atomic write in progress (or killed): not a result
        if p.name.endswith(io.CHECKSUM_SUFFIX):
            target = p.with_name(p.name[: -len(io.CHECKSUM_SUFFIX)])
            if not target.exists():
                findings.append(Finding(p, STALE, f"checksum of a missing file {target.name}"))
            continue
        checked += 1
        if (f := check_file(p)) is not None:
            findings.append(f)
    return findings, checked


def delete(findings: list[Finding]) -> list[Path]:
    """Delete corrupt files (with their checksum record) and stale records; the paths removed."""
    removed = []
    for f in findings:
        if f.kind == UNCHECKED:
            continue
        for p in (f.path, io.checksum_path(f.path)) if f.kind == CORRUPT else (f.path,):
            if p.exists():
                p.unlink()
                removed.append(p)
    return removed
