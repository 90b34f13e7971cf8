"""Run-time helpers shared by jobs: device resolution and checks, threads, seeds, logging (code hashes: gnode.codegraph)."""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

import numpy as np
import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA device (use device: auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device: mps was asked for, but it is not available (use device: auto or cpu)")
    return torch.device(name)


def check_device(name: str, log=None, *, here: bool = True) -> torch.device:
    """The device a run will use, checked when the workflow is planned (before any job).

    An explicit ``cuda``/``mps`` that torch cannot see raises :class:`RuntimeError` naming the
    config key; ``auto`` reports its choice through ``log`` (a callable taking one line).
    ``here=False`` (jobs run on other machines, e.g. a cluster) checks nothing: every job checks
    again on its own machine.
    """
    if not here and name != "auto":
        if log is not None and name != "cpu":
            log(f"device: {name} is checked on the machines that run the jobs")
        return torch.device(name)
    try:
        device = resolve_device(name)
    except RuntimeError as err:
        raise RuntimeError(f"config key 'device': {err}") from None
    if name == "auto" and log is not None:
        what = device_description(device)
        log(f"device: auto chose {what}")
    return device


def device_description(device: torch.device) -> str:
    """A short readable name: 'cuda (NVIDIA H200, 139.8 GiB)', 'mps', 'cpu'."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
    return device.type


def derive_seed(*parts: int) -> int:
    """A 31-bit seed mixed from integers (numpy SeedSequence): distinct inputs, independent streams."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


def stable_id(text: str) -> int:
    """A stable integer for a string (Python's hash() changes between processes)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def setup_job(threads: int = 1, log_file: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Set torch's threads and send gnode's log records to ``log_file`` and to stderr.

    Uncaught exceptions are logged too, so a failing job's traceback lands in its log.
    """
    torch.set_num_threads(max(1, int(threads)))
    root = logging.getLogger("gnode")
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)

    def hook(kind, value, tb):
        root.error("uncaught exception", exc_info=(kind, value, tb))

    sys.excepthook = hook
    return root
