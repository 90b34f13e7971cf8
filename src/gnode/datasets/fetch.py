"""Locate a benchmark on disk, or download it, and check file integrity.

A dataset is looked up first in the local directories given by the config (key
``data.<name>.local_dirs``); only when none holds the expected files is the archive downloaded
with pooch into ``cache_dir`` and unpacked. Integrity of individual files is checked with
SHA-256 manifests (``sha256sum`` text format, so ``sha256sum -c`` works on them too).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

# Files (glob patterns) whose presence marks a directory as holding the dataset, as unpacked
# from the official archive. Kept here rather than in the loader modules so that resolving
# never imports the (heavier) loaders.
EXPECTED_FILES: dict[str, tuple[str, ...]] = {
    "walker2d": ("rollout_000.npy",),  # completeness is checked by the loader's manifest
    "character_trajectories": ("CharacterTrajectories_TRAIN.ts", "CharacterTrajectories_TEST.ts"),
    "speech_commands": ("validation_list.txt", "testing_list.txt", "yes/*.wav"),
}

# Human hints printed when a dataset can be neither found nor downloaded.
_HOW_TO_GET: dict[str, str] = {
    "walker2d": "download https://pub.ist.ac.at/~mlechner/datasets/walker.zip and unzip it "
    "(it unpacks to walker/rollout_NNN.npy)",
    "character_trajectories": "download http://www.timeseriesclassification.com/aeon-toolkit/"
    "CharacterTrajectories.zip and unzip it (CharacterTrajectories_TRAIN.ts / _TEST.ts)",
    "speech_commands": "download http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz "
    "(2.3 GB) and untar it (folders yes/, no/, ... plus validation_list.txt, testing_list.txt)",
}


class DatasetUnavailable(RuntimeError):
    """The dataset is neither in a configured local directory nor downloadable."""


class ChecksumError(ValueError):
    """A file is missing, truncated or corrupted (its SHA-256 differs from the manifest)."""


def config_key(name: str) -> str:
    """Config key listing local copies of dataset ``name``."""
    return f"data.{name}.local_dirs"


def has_expected_files(directory: str | Path, name: str) -> bool:
    """True if ``directory`` holds every expected file pattern of dataset ``name``."""
    d = Path(directory)
    return d.is_dir() and all(any(d.glob(p)) for p in EXPECTED_FILES[name])


def find_dataset_dir(directory: str | Path, name: str, max_depth: int = 2) -> Path | None:
    """The first directory at most ``max_depth`` levels below ``directory`` holding the dataset.

    Archives differ in whether they wrap their files in a top folder (walker.zip -> walker/),
    so both the directory and its subdirectories are searched, breadth first, in sorted order.
    """
    level = [Path(directory)]
    for _ in range(max_depth + 1):
        for d in level:
            if has_expected_files(d, name):
                return d
        level = sorted(c for d in level if d.is_dir() for c in d.iterdir() if c.is_dir())
    return None


def _processor(url: str):
    import pooch

    if url.endswith(".zip"):
        return pooch.Unzip(extract_dir="unpacked")
    if url.endswith((".tar.gz", ".tgz", ".tar")):
        return pooch.Untar(extract_dir="unpacked")
    raise ValueError(f"don't know how to unpack {url!r} (expected .zip or .tar.gz)")


def resolve_dataset(
    name: str,
    *,
    local_dirs: Sequence[str | Path],
    url: str | None,
    known_hash: str | None,
    cache_dir: str | Path,
    download: bool = True,
) -> Path:
    """Directory holding dataset ``name``: a local copy if any, else a verified download.

    Args:
        name: a key of ``EXPECTED_FILES`` (``walker2d``, ``character_trajectories``,
            ``speech_commands``).
        local_dirs: directories searched first, in order (each may hold the files directly or
            in a subfolder up to two levels down).
        url: archive URL (.zip or .tar.gz) to download when no local copy is found.
        known_hash: ``"sha256:<hex>"`` of the archive, verified by pooch; ``None`` skips the
            archive check (then the loader must verify the unpacked files).
        cache_dir: where the archive is downloaded and unpacked (``<cache_dir>/<name>/``).
        download: set False to forbid network access.

    Returns:
        The directory containing the expected files.

    Raises:
        DatasetUnavailable: nothing found locally and the download is impossible or failed.
        ChecksumError: the downloaded archive does not match ``known_hash``.
    """
    if name not in EXPECTED_FILES:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(EXPECTED_FILES)}")
    for d in local_dirs:
        found = find_dataset_dir(d, name)
        if found is not None:
            logger.info("dataset %s: using local copy %s", name, found)
            return found

    key = config_key(name)
    searched = ", ".join(str(d) for d in local_dirs) or "(none)"

    def unavailable(reason: str) -> DatasetUnavailable:
        return DatasetUnavailable(
            f"dataset {name!r} is not available: {reason}. Searched local dirs: {searched}. "
            f"To get it, {_HOW_TO_GET[name]}, then add the unpacked folder to the config key "
            f"`{key}`."
        )

    if not download or not url:
        raise unavailable("download disabled" if url else "no download URL configured")

    import pooch  # imported lazily: only needed when downloading

    target = Path(cache_dir) / name
    # Unpacked files from an earlier download are reused without touching the network.
    found = find_dataset_dir(target / "unpacked", name) if (target / "unpacked").is_dir() else None
    if found is not None:
        return found
    processor = _processor(url)
    try:
        pooch.retrieve(
            url,
            known_hash=known_hash,
            fname=url.rstrip("/").rsplit("/", 1)[-1],
            path=target,
            processor=processor,
        )
    except ValueError as err:
        if "hash" in str(err).lower():  # pooch reports a checksum mismatch as ValueError
            raise ChecksumError(f"download of {url} failed its checksum: {err}") from err
        raise unavailable(f"download of {url} failed ({err})") from err
    except Exception as err:  # network errors come from requests/ftplib/...: all mean "offline"
        raise unavailable(f"download of {url} failed ({type(err).__name__}: {err})") from err
    found = find_dataset_dir(target / "unpacked", name)
    if found is None:
        raise unavailable(f"the archive from {url} lacks the expected files {EXPECTED_FILES[name]}")
    return found


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_manifest(directory: str | Path, pattern: str = "*") -> dict[str, str]:
    """``{file name relative to directory: sha256}`` for the files matching ``pattern``, sorted."""
    d = Path(directory)
    return {
        p.relative_to(d).as_posix(): sha256_file(p) for p in sorted(d.glob(pattern)) if p.is_file()
    }


def verify_manifest(
    directory: str | Path, manifest: dict[str, str], *, extra_pattern: str | None = None
) -> None:
    """Check every file of ``manifest`` under ``directory`` against its SHA-256.

    If ``extra_pattern`` is given, files matching it but absent from the manifest are errors too
    (an extra rollout would silently change a split made by shuffling the file list).

    Raises:
        ChecksumError: naming each missing, truncated/corrupted or unexpected file.
    """
    d = Path(directory)
    problems = []
    for rel, expected in sorted(manifest.items()):
        p = d / rel
        if not p.is_file():
            problems.append(f"missing file {p}")
        elif (actual := sha256_file(p)) != expected:
            problems.append(
                f"corrupted or truncated file {p} ({p.stat().st_size} bytes; sha256 "
                f"{actual} != expected {expected})"
            )
    if extra_pattern is not None:
        for p in sorted(d.glob(extra_pattern)):
            if p.relative_to(d).as_posix() not in manifest:
                problems.append(f"unexpected file {p} (not in the manifest)")
    if problems:
        shown = "; ".join(problems[:10]) + (
            f"; ... {len(problems) - 10} more" if len(problems) > 10 else ""
        )
        raise ChecksumError(f"{len(problems)} file(s) failed verification in {d}: {shown}")


def parse_manifest(text: str) -> dict[str, str]:
    """Parse ``sha256sum``-format text (``<hex>  <name>`` per line) into ``{name: hex}``."""
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            out[name.lstrip("*")] = digest  # '*' marks binary mode in sha256sum output
    return out


def read_manifest(path: str | Path) -> dict[str, str]:
    """Read a ``sha256sum``-format manifest file."""
    return parse_manifest(Path(path).read_text())


def write_manifest(manifest: dict[str, str], path: str | Path) -> None:
    """Write a manifest in ``sha256sum`` format (checkable with ``sha256sum -c``)."""
    Path(path).write_text("".join(f"{h}  {n}\n" for n, h in sorted(manifest.items())))
