"""Members in cache-sized chunks: how many members of an ensemble one pass of a time loop takes.

An ensemble step's working set (every member's weights and one step's activations) outgrows a
CPU core's cache for the paper's flip-flop shapes: 27 members of the 3-bit N = 100 gnODE hold
5.5 MB of parameters. Run one chunk of members at a time through all the bins, the working set
stays in the cache (1 MiB of L2 per core on the project's machine). Measured on it, one training
step of the flip-flop shapes is mostly 1.1-1.3x faster so (``benchmarks/p8_member_chunks.py``).
Each member's arithmetic is its own in either case, so results agree to float rounding (bit for
bit in most of the shapes measured).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: bytes of weights plus one step's activations per chunk and torch thread, on a CPU. Of 0.75,
#: 1, 1.5, 2 and 3 MiB, 2 MiB was within 3 % of the best for three of four flip-flop shapes and
#: 9 % for the fourth (``benchmarks/README.md``, P8). 0 turns chunking off.
CHUNK_BYTES = 2 << 20


def member_chunks(n_members: int, member_bytes: int, batch: int, device: torch.device) -> list[slice]:
    """Slices of the members, run one after another.

    One chunk, all members: on a GPU, and for one sequence per member (``batch`` = 1, the
    expressivity fits), whose steps are all call overhead that chunks would multiply. Otherwise as
    many members per chunk as ``member_bytes`` (one member's weights and one step's activations)
    fit in :data:`CHUNK_BYTES` per torch thread; at least one.
    """
    if device.type != "cpu" or batch == 1 or CHUNK_BYTES <= 0:
        return [slice(0, n_members)]
    size = max(1, CHUNK_BYTES * torch.get_num_threads() // max(member_bytes, 1))
    return [slice(lo, min(lo + size, n_members)) for lo in range(0, n_members, size)]


def step_bytes(params: Sequence[Tensor], rows: int, batch: int) -> int:
    """Bytes of one member's parameters (``params``: an ensemble's, each (E, ...)) and of one
    step's activations, ``rows`` x ``batch`` numbers: what :func:`member_chunks` fits into a
    core's cache."""
    return params[0].element_size() * (sum(p[0].numel() for p in params) + rows * batch)
