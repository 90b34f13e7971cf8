"""Reader for the ``.ts`` time-series format of the UEA/UCR archive (aeon/sktime format).

A file is ``#`` comment lines, then ``@key value`` header lines ending with ``@data``, then one
case per line: the channels separated by ``:``, each a comma-separated list of values (``?`` or
``NaN`` for missing), followed by ``:<class label>`` when ``@classLabel true``. Header keys are
case-insensitive (``@dimension`` and ``@dimensions`` both occur in the wild). Timestamped
series (``@timeStamps true``) are not needed here and are rejected. Written here because the
maintained readers come with heavy packages (aeon, sktime).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_BOOL = {"true": True, "false": False}


def _parse_header(lines: list[str], path: Path) -> tuple[dict, int]:
    header: dict = {}
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("@"):
            raise ValueError(f"{path}:{i + 1}: data before @data")
        key, _, value = line[1:].partition(" ")
        key, tokens = key.lower(), value.split()
        if key == "data":
            return header, i + 1
        if key in ("timestamps", "missing", "univariate", "equallength", "targetlabel"):
            header[key] = _BOOL[tokens[0].lower()]
        elif key in ("dimension", "dimensions", "serieslength"):
            header["dimensions" if key.startswith("dim") else key] = int(tokens[0])
        elif key == "classlabel":
            header["classlabel"] = _BOOL[tokens[0].lower()]
            header["classes"] = tokens[1:]
        else:  # problemname and unknown keys are kept as text
            header[key] = value.strip()
    raise ValueError(f"{path}: no @data line")


def _to_float(token: str) -> float:
    token = token.strip()
    return np.nan if token in ("?", "") or token.lower() == "nan" else float(token)


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str] | None, dict]:
    """Read a ``.ts`` file.

    Returns:
        ``series``: one float64 array (n_channels, length_i) per case (missing values NaN);
        ``labels``: the class label string of each case, or None without ``@classLabel true``;
        ``header``: the parsed header (``classes`` lists the declared labels in order).

    Raises:
        ValueError: malformed line, wrong channel count, unequal channel lengths within a case,
            unequal case lengths under ``@equalLength true``, or an undeclared class label.
        NotImplementedError: ``@timeStamps true``.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    header, start = _parse_header(lines, path)
    if header.get("timestamps"):
        raise NotImplementedError(f"{path}: timestamped .ts series are not supported")
    n_dims = 1 if header.get("univariate", False) else header.get("dimensions")
    has_label = header.get("classlabel", False) or header.get("targetlabel", False)
    series, labels = [], []
    for i, raw in enumerate(lines[start:], start=start + 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = raw.strip().split(":")
        if has_label:
            labels.append(fields.pop().strip())
        if n_dims is not None and len(fields) != n_dims:
            raise ValueError(f"{path}:{i}: {len(fields)} channels, header says {n_dims}")
        chans = [[_to_float(v) for v in f.split(",")] for f in fields]
        if len({len(c) for c in chans}) != 1:
            raise ValueError(f"{path}:{i}: channels of unequal length {[len(c) for c in chans]}")
        series.append(np.asarray(chans, dtype=np.float64))
    if header.get("equallength") and len({s.shape[1] for s in series}) > 1:
        raise ValueError(f"{path}: @equalLength true but cases have different lengths")
    if header.get("classlabel") and header["classes"]:
        unknown = sorted(set(labels) - set(header["classes"]))
        if unknown:
            raise ValueError(f"{path}: labels {unknown} not declared in @classLabel")
    return series, (labels if header.get("classlabel") else None), header
