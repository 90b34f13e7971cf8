"""Flip-flop tasks: memory of discrete or continuous quantities.

Each trial has ``n_bins`` time bins over t in [0, 1]. Pulses arrive as a Poisson process
(``rate`` per trial on average), each ``pulse_width`` bins wide; pulses never overlap. The
target holds, on each channel, the value of that channel's last pulse (0 before any pulse),
from the pulse's first bin on.

Variants (SPEC):
- ``3bit_fixed``:    3 channels, a pulse on one random channel, amplitude +-1.
- ``3bit_variable``: 3 channels, amplitude U[-1, 1].
- ``2bit_rectangle``: 2 channels pulse together with a point (U[-2, 2], U[-1, 1]).
- ``2bit_disk``:      a point uniform (by area) in the annulus 1 < r < 2; 6 pulses per trial.
- ``2bit_ring``:      a point on the circle r = 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

VARIANTS = ("3bit_fixed", "3bit_variable", "2bit_rectangle", "2bit_disk", "2bit_ring")
DEFAULT_RATE = {"2bit_disk": 6.0}


def n_channels(variant: str) -> int:
    """Input and output channels of a variant."""
    _check_variant(variant)
    return 3 if variant.startswith("3bit") else 2


def default_rate(variant: str) -> float:
    """Mean pulses per trial of the SPEC: 12, or 6 for the disk task."""
    _check_variant(variant)
    return DEFAULT_RATE.get(variant, 12.0)


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"flip-flop variant {variant!r} is not one of {list(VARIANTS)}")


@dataclass
class FlipFlopData:
    """Arrays of one generated set: inputs and targets (trials, bins, channels), float32."""

    inputs: np.ndarray
    targets: np.ndarray
    onsets: list[np.ndarray]  # per trial, the first bin of each pulse

    @property
    def n_trials(self) -> int:
        return self.inputs.shape[0]


def _pulse_values(variant: str, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(k,) channel indices (-1: all channels) and (k, C) values of k pulses."""
    c = n_channels(variant)
    vals = np.zeros((k, c))
    if variant.startswith("3bit"):
        ch = rng.integers(0, c, size=k)
        amp = rng.choice([-1.0, 1.0], size=k) if variant == "3bit_fixed" else rng.uniform(-1.0, 1.0, size=k)
        vals[np.arange(k), ch] = amp
        return ch, vals
    if variant == "2bit_rectangle":
        vals[:, 0] = rng.uniform(-2.0, 2.0, size=k)
        vals[:, 1] = rng.uniform(-1.0, 1.0, size=k)
    else:
        theta = rng.uniform(0.0, 2 * math.pi, size=k)
        # uniform by area on the annulus 1 < r < 2: r^2 ~ U(1, 4)
        r = np.sqrt(rng.uniform(1.0, 4.0, size=k)) if variant == "2bit_disk" else np.full(k, 2.0)
        vals[:, 0], vals[:, 1] = r * np.cos(theta), r * np.sin(theta)
    return np.full(k, -1), vals


def _onsets(n_bins: int, width: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted first bins of non-overlapping pulses; the count is Poisson(rate), capped to fit.

    Choosing k distinct positions among ``n_bins - k*(width-1)`` slots and adding
    ``i*(width-1)`` to the i-th (in sorted order) spreads the pulses uniformly over all
    non-overlapping layouts that fit entirely in the trial.
    """
    k = min(int(rng.poisson(rate)), n_bins // width)
    slots = n_bins - k * (width - 1)
    pos = np.sort(rng.choice(slots, size=k, replace=False))
    return pos + np.arange(k) * (width - 1)


def generate(
    variant: str,
    n_trials: int,
    *,
    seed: int,
    n_bins: int = 100,
    rate: float | None = None,
    pulse_width: int = 3,
) -> FlipFlopData:
    """Generate ``n_trials`` trials of a flip-flop variant from ``seed`` (numpy PCG64)."""
    _check_variant(variant)
    if n_trials < 1 or n_bins < pulse_width or pulse_width < 1:
        raise ValueError("need n_trials >= 1 and n_bins >= pulse_width >= 1")
    rate = default_rate(variant) if rate is None else rate
    rng = np.random.default_rng(seed)
    c = n_channels(variant)
    x = np.zeros((n_trials, n_bins, c), dtype=np.float32)
    y = np.zeros((n_trials, n_bins, c), dtype=np.float32)
    all_onsets = []
    for i in range(n_trials):
        on = _onsets(n_bins, pulse_width, rate, rng)
        ch, vals = _pulse_values(variant, len(on), rng)
        for start, chan, v in zip(on, ch, vals):
            sl = slice(start, start + pulse_width)
            if chan < 0:
                x[i, sl, :] = v
                y[i, start:, :] = v
            else:
                x[i, sl, chan] = v[chan]
                y[i, start:, chan] = v[chan]
        all_onsets.append(on)
    return FlipFlopData(x, y, all_onsets)


def split(data: FlipFlopData, n_train: int) -> tuple[FlipFlopData, FlipFlopData]:
    """The first ``n_train`` trials and the rest."""
    a = FlipFlopData(data.inputs[:n_train], data.targets[:n_train], data.onsets[:n_train])
    b = FlipFlopData(data.inputs[n_train:], data.targets[n_train:], data.onsets[n_train:])
    return a, b
