"""Flip-flop tasks: memory of discrete or continuous quantities.

The generator follows the authors' released code (RNNTools.jl, ``src/generate_data.jl``). Each
trial has ``n_bins`` time bins over t in [0, 1]:

- k ~ Poisson(rate) pulse onsets are drawn uniformly *with replacement* over the bins;
- an onset whose pulse would run past the trial is dropped. The authors (1-based, Julia) keep
  ``tstart <= n_bins - width`` and write bins ``tstart:tstart+width``, i.e. ``width + 1`` bins,
  with ``width = 2`` in every script. Here ``pulse_width`` is the number of bins (3), so with
  0-based onsets s = tstart - 1 the rule reads: keep s <= n_bins - pulse_width, write bins
  s .. s + pulse_width - 1. A fraction (n_bins - pulse_width + 1) / n_bins of the onsets is kept;
- the kept pulses are written in draw order; a later pulse overwrites an earlier one on the
  channels it sets (pulses may overlap);
- the target follows the input: at every bin, each channel whose input is non-zero takes that
  value, every other channel keeps its previous value (from the variant's initial target).

Variants (name: channels, pulses per trial, initial target, pulse value):

- ``3bit_fixed``:     3, 12, (1, 1, 1), one random channel, +-1.
- ``3bit_variable``:  3, 12, 0, one random channel, U[-1, 1].
- ``2bit_fixed``:     2, 12, (1, 1), one random channel, +-1.
- ``2bit_square``:    2, 12, 0, one random channel, U[-1, 1].
- ``2bit_rectangle``: 2, 12, 0, one random channel, U[-2, 2] on channel 0 or U[-1, 1] on channel 1.
- ``2bit_disk``:      2, 6, (1.5, 0), both channels: a point uniform in [-2, 2]^2 redrawn until
  1 < |p| < 2 (uniform by area on the annulus).
- ``2bit_ring``:      2, 12, (2, 0), both channels: angle U[0, 2 pi), radius 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Law = Callable[[np.random.Generator, int], np.ndarray]  # (rng, n) -> n draws: (n,) or (n, C)


def _signs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=n)


def _uniform(lo: float, hi: float) -> Law:
    return lambda rng, n: rng.uniform(lo, hi, size=n)


def _annulus(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2) points uniform in [-2, 2]^2 conditioned on 1 < |p| < 2 (rejection, as the authors)."""
    kept = [np.zeros((0, 2))]
    have = 0
    while have < n:
        # acceptance 3 pi / 16 ~ 0.59: drawing twice the shortfall usually finishes in one round
        p = rng.uniform(-2.0, 2.0, size=(2 * (n - have), 2))
        r = np.hypot(p[:, 0], p[:, 1])
        p = p[(r > 1.0) & (r < 2.0)]
        kept.append(p)
        have += len(p)
    return np.concatenate(kept)[:n]


def _circle(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2) points at radius 2, angle U[0, 2 pi)."""
    theta = rng.uniform(0.0, 2 * math.pi, size=n)
    return np.stack([2.0 * np.cos(theta), 2.0 * np.sin(theta)], axis=-1)


@dataclass(frozen=True)
class Variant:
    """A flip-flop variant. Exactly one of ``amplitudes`` and ``point`` is set.

    ``amplitudes``: pulses set one random channel; entry c is the amplitude law of channel c.
    ``point``: pulses set every channel to a point drawn from this law ((n, C) per call).
    """

    n_channels: int
    rate: float
    initial: tuple[float, ...]
    amplitudes: tuple[Law, ...] | None = None
    point: Law | None = None


SPECS: dict[str, Variant] = {
    "3bit_fixed": Variant(3, 12.0, (1.0, 1.0, 1.0), amplitudes=(_signs,) * 3),
    "3bit_variable": Variant(3, 12.0, (0.0, 0.0, 0.0), amplitudes=(_uniform(-1.0, 1.0),) * 3),
    "2bit_rectangle": Variant(2, 12.0, (0.0, 0.0), amplitudes=(_uniform(-2.0, 2.0), _uniform(-1.0, 1.0))),
    "2bit_disk": Variant(2, 6.0, (1.5, 0.0), point=_annulus),
    "2bit_ring": Variant(2, 12.0, (2.0, 0.0), point=_circle),
    "2bit_square": Variant(2, 12.0, (0.0, 0.0), amplitudes=(_uniform(-1.0, 1.0),) * 2),
    "2bit_fixed": Variant(2, 12.0, (1.0, 1.0), amplitudes=(_signs,) * 2),
}
VARIANTS = tuple(SPECS)


def _spec(variant: str) -> Variant:
    if variant not in SPECS:
        raise ValueError(f"flip-flop variant {variant!r} is not one of {list(VARIANTS)}")
    return SPECS[variant]


def n_channels(variant: str) -> int:
    """Input and output channels of a variant."""
    return _spec(variant).n_channels


def default_rate(variant: str) -> float:
    """Mean pulse onsets drawn per trial (before late ones are dropped): 12, or 6 for the disk."""
    return _spec(variant).rate


def initial_target(variant: str) -> np.ndarray:
    """(C,) target held before the first pulse of a trial."""
    return np.array(_spec(variant).initial)


def one_channel(variant: str) -> bool:
    """Whether a pulse sets one random channel (else it sets all channels to a point)."""
    return _spec(variant).amplitudes is not None


def stored_values(variant: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, C) values a trial can leave held on every channel at once (memory probes).

    One-channel variants: each channel drawn from its amplitude law (what one pulse per channel
    leaves); point variants: n pulse points.
    """
    spec = _spec(variant)
    if spec.amplitudes is None:
        return spec.point(rng, n)
    return np.stack([law(rng, n) for law in spec.amplitudes], axis=-1)


def pulses(variant: str, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(k,) channel of each of k pulses (-1: all channels) and their (k, C) values (0 elsewhere)."""
    spec = _spec(variant)
    vals = np.zeros((k, spec.n_channels))
    if spec.amplitudes is None:
        vals[:] = spec.point(rng, k)
        return np.full(k, -1), vals
    ch = rng.integers(0, spec.n_channels, size=k)
    for c, law in enumerate(spec.amplitudes):
        sel = ch == c
        vals[sel, c] = law(rng, int(sel.sum()))
    return ch, vals


def onsets(n_bins: int, width: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """First bins (0-based, draw order, repeats possible) of the pulses of one trial.

    Poisson(rate) onsets uniform with replacement over the bins; those later than
    ``n_bins - width`` (the pulse would not fit) are dropped.
    """
    s = rng.integers(0, n_bins, size=int(rng.poisson(rate)))
    return s[s <= n_bins - width]


def hold_targets(inputs: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """Targets of inputs (trials, bins, C): per channel, the last non-zero input, ``initial`` before."""
    held = np.broadcast_to(np.asarray(initial, dtype=inputs.dtype), (inputs.shape[0], inputs.shape[2])).copy()
    y = np.empty_like(inputs)
    for t in range(inputs.shape[1]):
        nz = inputs[:, t] != 0
        held[nz] = inputs[:, t][nz]
        y[:, t] = held
    return y


@dataclass
class FlipFlopData:
    """Arrays of one generated set: inputs and targets (trials, bins, channels), float32."""

    inputs: np.ndarray
    targets: np.ndarray
    # per trial, the first bin (0-based) of each pulse written, in draw (= write) order; an onset
    # may repeat (drawn with replacement) and a later pulse may overwrite part of an earlier one
    onsets: list[np.ndarray]

    @property
    def n_trials(self) -> int:
        return self.inputs.shape[0]


def generate(
    variant: str,
    n_trials: int,
    *,
    seed: int,
    n_bins: int = 100,
    rate: float | None = None,
    pulse_width: int = 3,
) -> FlipFlopData:
    """Generate ``n_trials`` trials of a flip-flop variant from ``seed`` (numpy PCG64).

    ``rate``: mean onsets drawn per trial (default: the variant's); ``pulse_width``: bins per pulse.
    """
    spec = _spec(variant)
    if n_trials < 1 or n_bins < pulse_width or pulse_width < 1:
        raise ValueError("need n_trials >= 1 and n_bins >= pulse_width >= 1")
    rate = spec.rate if rate is None else float(rate)
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"rate must be finite and >= 0, got {rate}")
    rng = np.random.default_rng(seed)
    x = np.zeros((n_trials, n_bins, spec.n_channels), dtype=np.float32)
    all_onsets = []
    for i in range(n_trials):
        on = onsets(n_bins, pulse_width, rate, rng)
        ch, vals = pulses(variant, len(on), rng)
        for start, chan, v in zip(on, ch, vals):
            sl = slice(start, start + pulse_width)
            if chan < 0:
                x[i, sl, :] = v
            else:
                x[i, sl, chan] = v[chan]
        all_onsets.append(on)
    return FlipFlopData(x, hold_targets(x, initial_target(variant)), all_onsets)


def split(data: FlipFlopData, n_train: int) -> tuple[FlipFlopData, FlipFlopData]:
    """The first ``n_train`` trials and the rest."""
    a = FlipFlopData(data.inputs[:n_train], data.targets[:n_train], data.onsets[:n_train])
    b = FlipFlopData(data.inputs[n_train:], data.targets[n_train:], data.onsets[n_train:])
    return a, b
