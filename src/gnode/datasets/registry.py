"""Registry of the real-world benchmarks: name -> loader, download source, checksum."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gnode.datasets import character_trajectories, speech_commands, walker2d
from gnode.datasets.fetch import resolve_dataset


@dataclass(frozen=True)
class DatasetSpec:
    """How to get and load one benchmark.

    ``known_hash`` is pooch's ``"sha256:<hex>"`` of the archive, or None where it is not
    published (then the loader checks the unpacked files instead, if it can).
    """

    name: str
    load: Callable[..., dict]
    url: str
    known_hash: str | None


DATASETS: dict[str, DatasetSpec] = {
    "walker2d": DatasetSpec("walker2d", walker2d.load_walker2d, walker2d.URL, walker2d.KNOWN_HASH),
    "character_trajectories": DatasetSpec(
        "character_trajectories",
        character_trajectories.load_character_trajectories,
        character_trajectories.URL,
        character_trajectories.KNOWN_HASH,
    ),
    "speech_commands": DatasetSpec(
        "speech_commands",
        speech_commands.load_speech_commands,
        speech_commands.URL,
        speech_commands.KNOWN_HASH,
    ),
}


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
