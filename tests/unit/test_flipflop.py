"""Flip-flop generator: targets, pulse statistics, seeds."""

import numpy as np
import pytest

from gnode.tasks import flipflop


def _last_pulse_targets(x: np.ndarray, onsets: list, joint: bool) -> np.ndarray:
    """Targets recomputed from the inputs: from each pulse's first bin on, the pulsed channel(s)
    hold the pulse's value until the next pulse on that channel."""
    n, t, c = x.shape
    y = np.zeros_like(x)
    for i in range(n):
        held = np.zeros(c, dtype=x.dtype)
        starts = set(int(s) for s in onsets[i])
        for k in range(t):
            if k in starts:
                held = x[i, k].copy() if joint else np.where(x[i, k] != 0, x[i, k], held)
            y[i, k] = held
    return y


@pytest.mark.parametrize("variant", flipflop.VARIANTS)
def test_targets_hold_the_last_pulse_per_channel(variant):
    d = flipflop.generate(variant, 50, seed=3)
    expected = _last_pulse_targets(d.inputs, d.onsets, joint=variant.startswith("2bit"))
    np.testing.assert_array_equal(d.targets, expected)
    assert d.inputs.dtype == np.float32 and d.inputs.shape == (50, 100, flipflop.n_channels(variant))


@pytest.mark.parametrize("variant,rate", [("3bit_fixed", 12), ("3bit_variable", 12), ("2bit_disk", 6), ("2bit_ring", 12)])
def test_pulse_statistics_match_the_spec(variant, rate):
    d = flipflop.generate(variant, 600, seed=11)
    counts = np.array([len(o) for o in d.onsets])
    # Poisson(rate): mean within 4 standard errors, variance close to the mean
    assert abs(counts.mean() - rate) < 4 * np.sqrt(rate / 600)
    assert 0.75 * rate < counts.var() < 1.3 * rate
    active = np.any(d.inputs != 0, axis=2)
    for i in range(600):
        on = d.onsets[i]
        # every pulse is exactly 3 bins wide, and pulses never overlap
        assert active[i].sum() == 3 * len(on)
        for s in on:
            assert active[i, s : s + 3].all()
        assert np.all(np.diff(on) >= 3)
    # pulses fall anywhere in the trial: both halves receive pulses
    onsets = np.concatenate(d.onsets)
    assert 0.4 < np.mean(onsets < 50) < 0.6


def test_pulse_values_of_each_variant():
    fixed = flipflop.generate("3bit_fixed", 200, seed=1).inputs
    assert set(np.unique(fixed)) == {-1.0, 0.0, 1.0}
    assert np.all((fixed != 0).sum(axis=2) <= 1)  # one channel at a time
    var = flipflop.generate("3bit_variable", 200, seed=1).inputs
    vals = var[var != 0]
    assert vals.min() >= -1 and vals.max() <= 1 and len(np.unique(vals)) > 100
    for variant, check in [
        ("2bit_ring", lambda r, p: np.allclose(r, 2.0, atol=1e-5)),
        ("2bit_disk", lambda r, p: (r > 1).all() and (r < 2).all() and abs(np.mean(r**2) - 2.5) < 0.15),
        ("2bit_rectangle", lambda r, p: (abs(p[:, 0]) <= 2).all() and (abs(p[:, 1]) <= 1).all()
                                        and abs(p[:, 0]).max() > 1.5),
    ]:
        x = flipflop.generate(variant, 200, seed=2).inputs
        pts = x[np.any(x != 0, axis=2)]
        assert check(np.hypot(pts[:, 0], pts[:, 1]), pts), variant


def test_same_seed_same_data_other_seed_different():
    a = flipflop.generate("3bit_variable", 20, seed=5)
    b = flipflop.generate("3bit_variable", 20, seed=5)
    c = flipflop.generate("3bit_variable", 20, seed=6)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    np.testing.assert_array_equal(a.targets, b.targets)
    assert not np.array_equal(a.inputs, c.inputs)


def test_split_and_errors():
    d = flipflop.generate("3bit_fixed", 10, seed=0)
    tr, te = flipflop.split(d, 7)
    assert tr.n_trials == 7 and te.n_trials == 3
    np.testing.assert_array_equal(te.inputs, d.inputs[7:])
    with pytest.raises(ValueError, match="is not one of"):
        flipflop.generate("4bit", 3, seed=0)
