"""Members in cache-sized chunks: how many members of an ensemble one pass of a time loop takes.

An ensemble step's working set (every member's weights and one step's activations) outgrows a
CPU core's cache for the paper's flip-flop shapes: 27 members of the 3-bit N = 100 gnODE hold
4.4 MB of weights. Run one chunk of members at a time through all the bins, the working set
stays in the cache (1 MiB of L2 per core on the project's machine). Measured on it, one training
step of the flip-flop shapes is 1.1-1.4x faster so, and gives the same numbers
(``benchmarks/p8_member_chunks.py``). Each member's arithmetic is its own in either case, so
results agree to float rounding (bit for bit in all but one of the shapes measured).
"""

from __future__ import annotations

import torch

#: bytes of weights plus one step's activations per chunk and torch thread, on a CPU (about
#: twice a core's L2 here: the best of 0.5, 1, 2 and 4 MiB in ``benchmarks/p8_member_chunks.py``).
#: 0 turns chunking off.
CHUNK_BYTES = 2 << 20


def member_chunks(n_members: int, member_bytes: int, device: torch.device) -> list[slice]:
    """Slices of the members, run one after another.

    On a GPU, one chunk: all members. On a CPU, as many members per chunk as ``member_bytes``
    (one member's weights and one step's activations) fit in :data:`CHUNK_BYTES` per torch
    thread; at least one.
    """
    if device.type != "cpu" or CHUNK_BYTES <= 0:
        return [slice(0, n_members)]
    size = max(1, CHUNK_BYTES * torch.get_num_threads() // max(member_bytes, 1))
    return [slice(lo, min(lo + size, n_members)) for lo in range(0, n_members, size)]
