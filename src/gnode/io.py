"""Parquet I/O with explicit schemas and provenance, atomic file writes and integrity checks.

Every table the workflow writes goes through :func:`write_table`: the file appears only when
complete (written to a temporary name in the same folder, then renamed), and its schema
metadata carries a JSON ``gnode`` entry with the provenance of the run.

Integrity. Every file written through :func:`atomic_path` (tables, ``model.pt``, checkpoints,
HTML reports) gets a SHA-256 of its content recorded beside it in ``<name>.sha256``
(``sha256sum`` format: ``sha256sum -c`` checks it too). Parquet files also carry page checksums
(CRC32 of every data page), verified on every read. Readers (:func:`read_table`,
:func:`verify_checksum` before ``torch.load``) check the content first and raise
:class:`CorruptFileError` naming the file; ``python -m gnode verify results/`` checks a whole tree.

Why a sidecar and not a manifest: each job writes only its own files, so a sidecar needs no
lock between parallel jobs, and it is renamed into place right after its file. It is not a
declared Snakemake output: when Snakemake deletes an output before re-running its job, the
sidecar stays until the job writes both again; a sidecar whose file is missing is stale and
ignored by readers (``verify`` lists it and ``--delete`` removes it). A file rewritten by
anything but :func:`atomic_path` while its sidecar stays is reported as corrupt, which errs
on the safe side (delete, rebuild).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROVENANCE_KEY = b"gnode"
_UMASK = os.umask(0)
os.umask(_UMASK)


CHECKSUM_SUFFIX = ".sha256"


class CorruptFileError(RuntimeError):
    """A result file whose content is not what was written (a flipped byte, a truncation)."""

    def __init__(self, path, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(
            f"corrupt file {path}: {problem}. Delete it (python -m gnode verify --delete) and run "
            "snakemake again to rebuild it"
        )


def checksum_path(path) -> Path:
    """Where the SHA-256 of ``path`` is recorded: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def recorded_sha256s(path) -> list[str] | None:
    """The SHA-256s recorded for ``path``, newest first, or None when no (readable) record exists.

    A record holds one line (``sha256sum`` format) except while :func:`atomic_path` replaces the
    file: then the new digest and the old one, so that a kill between the two renames leaves a
    record that still matches whichever content is there.
    """
    side = checksum_path(path)
    try:
        lines = side.read_text(encoding="ascii").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return [line.split()[0].lower() if line.split() else "" for line in lines] or [""]


def recorded_sha256(path) -> str | None:
    """The (newest) SHA-256 recorded for ``path``, or None when no (readable) record exists."""
    digests = recorded_sha256s(path)
    return None if digests is None else digests[0]


def verify_checksum(path) -> bool:
    """Check ``path`` against its recorded SHA-256; True if checked, False if none is recorded.

    Raises :class:`CorruptFileError` naming the file when the content differs or the record
    is unreadable, and ``FileNotFoundError`` when the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    expected = recorded_sha256s(path)
    if expected is None:
        return False
    if any(len(e) != 64 for e in expected) or len(expected) > 2:
        raise CorruptFileError(path, f"its checksum record {checksum_path(path).name} is damaged")
    actual = file_sha256(path)
    if actual not in expected:
        raise CorruptFileError(path, f"content sha256 {actual[:16]} differs from the recorded {expected[0][:16]}")
    return True


@contextlib.contextmanager
def atomic_path(path, *, checksum: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    With ``checksum`` the SHA-256 of the content is recorded in ``<path>.sha256``, atomically
    too: first the new digest beside the old one, then the file, then the new digest alone, so
    that a kill at any point leaves a record that matches the content there (a killed training
    job resumes from its last checkpoint instead of finding it "corrupt").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are shared files
        digest = file_sha256(tmp) if checksum else None
        if digest is not None and path.is_file():
            old = recorded_sha256(path)
            if old and len(old) == 64 and old != digest:
                _write_record(path, [digest, old])
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    side = checksum_path(path)
    if digest is not None:
        _write_record(path, [digest])
    else:
        with contextlib.suppress(FileNotFoundError):
            if side.is_file() and not path.name.endswith(CHECKSUM_SUFFIX):
                side.unlink()  # an old record of an earlier content would be stale


def _write_record(path: Path, digests: list[str]) -> None:
    """Write ``<path>.sha256`` atomically: one ``sha256sum`` line per digest, newest first."""
    with atomic_path(checksum_path(path), checksum=False) as tmp_side:
        tmp_side.write_text("".join(f"{d}  {path.name}\n" for d in digests), encoding="ascii")


def config_hash(config: Mapping) -> str:
    """Stable short hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def job_fingerprint(settings: Mapping, data_path, code: str = "", **extra) -> str:
    """What a training checkpoint must match to be resumed: the job's settings, the content of
    its data file (its recorded SHA-256, else computed) and the hash of the code it runs
    (``gnode.codegraph``). A checkpoint of other settings, data or code is ignored, not resumed.
    """
    data = recorded_sha256(data_path) or file_sha256(data_path)
    return config_hash({"job": dict(settings), "data": data, "code": code, **extra})


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
        pq.write_table(table, tmp, write_page_checksum=True)


def read_arrow(path) -> pa.Table:
    """Read a Parquet file after checking its recorded SHA-256 and every page checksum.

    Raises :class:`CorruptFileError` naming the file when either check fails or the file
    cannot be parsed (a truncation).
    """
    verify_checksum(path)
    try:
        return pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException, ValueError) as err:
        if not Path(path).is_file():
            raise
        raise CorruptFileError(path, f"unreadable Parquet ({type(err).__name__}: {err})") from None


def read_table(path) -> pd.DataFrame:
    """Read a Parquet table into pandas (verified first, see :func:`read_arrow`)."""
    return read_arrow(path).to_pandas()


def read_provenance(path) -> dict:
    """The provenance record of a table written by :func:`write_table`."""
    meta = pq.read_schema(path).metadata or {}
    if PROVENANCE_KEY not in meta:
        raise KeyError(f"{path} has no gnode provenance")
    return json.loads(meta[PROVENANCE_KEY])
