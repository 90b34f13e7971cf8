"""Flip-flop generator: the authors' protocol (RNNTools.jl generate_data.jl) on generated data."""

import numpy as np
import pytest

from gnode.tasks import flipflop

# The authors' initial targets, written out here rather than read from the module's registry.
INITIAL = {
    "3bit_fixed": (1.0, 1.0, 1.0),
    "3bit_variable": (0.0, 0.0, 0.0),
    "2bit_fixed": (1.0, 1.0),
    "2bit_square": (0.0, 0.0),
    "2bit_rectangle": (0.0, 0.0),
    "2bit_disk": (1.5, 0.0),
    "2bit_ring": (2.0, 0.0),
}
RATE = {v: 6.0 if v == "2bit_disk" else 12.0 for v in INITIAL}
ONE_CHANNEL = ("3bit_fixed", "3bit_variable", "2bit_fixed", "2bit_square", "2bit_rectangle")
POINT = ("2bit_disk", "2bit_ring")
W = 3  # bins per pulse (the authors' width = 2: bins onset .. onset + 2)


def test_the_variants_are_the_authors_seven():
    assert set(flipflop.VARIANTS) == set(INITIAL)
    for v in flipflop.VARIANTS:
        assert flipflop.n_channels(v) == len(INITIAL[v]) and flipflop.default_rate(v) == RATE[v]


def _held(x: np.ndarray, initial) -> np.ndarray:
    """Targets recomputed bin by bin, channel by channel: the last non-zero input, else the initial."""
    n, t, c = x.shape
    y = np.zeros_like(x)
    for i in range(n):
        held = list(initial)
        for k in range(t):
            for ch in range(c):
                if x[i, k, ch] != 0:
                    held[ch] = x[i, k, ch]
                y[i, k, ch] = held[ch]
    return y


def _coverage(onsets: np.ndarray, n_bins: int, width: int = W) -> np.ndarray:
    """(n_bins,) number of pulses covering each bin."""
    cov = np.zeros(n_bins, dtype=int)
    for s in onsets:
        cov[s : s + width] += 1
    return cov


@pytest.mark.parametrize("variant", flipflop.VARIANTS)
def test_targets_hold_the_last_nonzero_input_from_the_initial_value(variant):
    d = flipflop.generate(variant, 60, seed=3)
    c = len(INITIAL[variant])
    assert d.inputs.dtype == np.float32 and d.inputs.shape == (60, 100, c) and d.targets.shape == d.inputs.shape
    np.testing.assert_array_equal(d.targets, _held(d.inputs, INITIAL[variant]))
    # before a channel's first pulse, its target is the initial value (the case is common enough to test)
    untouched = np.cumsum(d.inputs != 0, axis=1) == 0
    assert untouched.sum() > 60
    np.testing.assert_array_equal(d.targets[untouched], np.broadcast_to(INITIAL[variant], d.targets.shape)[untouched])


@pytest.mark.parametrize("variant", flipflop.VARIANTS)
def test_onsets_are_the_pulses_written_into_the_input(variant):
    d = flipflop.generate(variant, 200, seed=4)
    active = np.any(d.inputs != 0, axis=2)
    for i in range(200):
        on = d.onsets[i]
        assert on.min(initial=0) >= 0 and on.max(initial=0) <= 100 - W
        # the bins with input are exactly those covered by a listed pulse of W bins
        np.testing.assert_array_equal(active[i], _coverage(on, 100) > 0)
    # listed in draw (= write) order, not sorted; onsets drawn with replacement may repeat
    assert any(np.any(np.diff(o) < 0) for o in d.onsets)
    assert any(len(np.unique(o)) < len(o) for o in d.onsets)


@pytest.mark.parametrize("variant", flipflop.VARIANTS)
def test_kept_pulses_per_trial_are_a_thinned_poisson(variant):
    n = 2000
    d = flipflop.generate(variant, n, seed=11)
    counts = np.array([len(o) for o in d.onsets])
    # onsets uniform over the 100 bins, kept when <= 100 - W: Poisson(rate * (100 - W + 1) / 100)
    mean = RATE[variant] * (100 - W + 1) / 100
    assert abs(counts.mean() - mean) < 4 * np.sqrt(mean / n)
    assert 0.85 * mean < counts.var() < 1.15 * mean


def test_late_onsets_are_dropped_exactly_as_the_authors():
    # 10 bins, 4-bin pulses (authors' width 3): onsets 0..6 kept, 7..9 dropped: 30 * 7/10 = 21 per trial
    n = 3000
    d = flipflop.generate("3bit_variable", n, seed=8, n_bins=10, pulse_width=4, rate=30)
    on = np.concatenate(d.onsets)
    assert on.max() == 6 and on.min() == 0
    assert abs(len(on) / n - 21) < 4 * np.sqrt(21 / n)
    # the kept onsets stay uniform over 0..6
    freq = np.bincount(on, minlength=7) / len(on)
    np.testing.assert_allclose(freq, 1 / 7, atol=0.01)
    # a pulse starting at the last kept onset reaches the last bin
    assert (d.inputs[:, -1] != 0).any()


@pytest.mark.parametrize("variant", ["3bit_fixed", "2bit_ring"])
def test_pulses_overlap_and_later_ones_overwrite(variant):
    d = flipflop.generate(variant, 300, seed=5)
    overlapping = [np.any(_coverage(o, 100) > 1) for o in d.onsets]
    # 12 onsets over 98 bins: about 66 pairs, each overlapping with probability ~5/98
    assert np.mean(overlapping) > 0.8
    if variant in ONE_CHANNEL:
        # different channels of overlapping pulses are both on
        assert np.any((d.inputs != 0).sum(axis=2) > 1)
    for i in range(300):
        on = d.onsets[i]
        last = np.full(100, -1)  # index (draw order) of the last pulse written on each bin
        for j, s in enumerate(on):
            last[s : s + W] = j
        for j, _ in enumerate(on):
            bins = np.flatnonzero(last == j)
            if variant in POINT and len(bins):
                # a point pulse sets all channels: its surviving bins all carry its one value
                assert np.all(d.inputs[i, bins] == d.inputs[i, bins[0]])
        if len(on) and variant in POINT:
            # the last pulse drawn is intact over all its bins
            s = on[-1]
            assert np.all(d.inputs[i, s : s + W] == d.inputs[i, s])


@pytest.mark.parametrize("variant", ONE_CHANNEL)
def test_one_channel_pulses_and_their_amplitudes(variant):
    d = flipflop.generate(variant, 400, seed=6)
    c = len(INITIAL[variant])
    per_channel = np.zeros(c)
    for i in range(400):
        cov = _coverage(d.onsets[i], 100)
        nz = d.inputs[i] != 0
        # where a single pulse is on, exactly one channel is set
        assert np.all(nz[cov == 1].sum(axis=1) == 1)
        for s in d.onsets[i]:
            if np.all(cov[s : s + W] == 1):
                per_channel[np.flatnonzero(nz[s])[0]] += 1
    # the channel is uniform
    np.testing.assert_allclose(per_channel / per_channel.sum(), 1 / c, atol=0.03)
    for ch in range(c):
        v = d.inputs[..., ch][d.inputs[..., ch] != 0]
        if variant.endswith("fixed"):
            assert set(np.unique(v)) == {-1.0, 1.0} and abs(np.mean(v > 0) - 0.5) < 0.05
        else:
            hi = 2.0 if (variant == "2bit_rectangle" and ch == 0) else 1.0
            assert v.min() >= -hi and v.max() <= hi and len(np.unique(v)) > 100
            # uniform on [-hi, hi): the mean |v| is hi / 2 (per bin, pulses count W times: loose)
            assert abs(np.abs(v).mean() - hi / 2) < 0.05 * hi


@pytest.mark.parametrize("variant", POINT)
def test_point_pulses_set_both_channels(variant):
    x = flipflop.generate(variant, 300, seed=2).inputs
    nz = x != 0
    active = nz.any(axis=2)
    assert np.all(nz[active].all(axis=1))
    r = np.hypot(x[..., 0], x[..., 1])[active]
    if variant == "2bit_ring":
        np.testing.assert_allclose(r, 2.0, rtol=1e-6)
    else:
        assert r.min() > 1 and r.max() < 2


def test_disk_points_are_uniform_by_area_in_the_annulus():
    rng = np.random.default_rng(9)
    ch, p = flipflop.pulses("2bit_disk", 40_000, rng)
    assert np.all(ch == -1) and p.shape == (40_000, 2)
    r2 = (p**2).sum(axis=1)
    assert r2.min() > 1 and r2.max() < 4
    # uniform by area: r^2 ~ U(1, 4) and the angle ~ U(0, 2 pi); chi-square over 10 bins each
    # (the 0.999 quantile of chi2 with 9 degrees of freedom is 27.9)
    for values, lo, hi in [(r2, 1.0, 4.0), (np.arctan2(p[:, 1], p[:, 0]), -np.pi, np.pi)]:
        counts, _ = np.histogram(values, bins=10, range=(lo, hi))
        expected = len(values) / 10
        assert ((counts - expected) ** 2 / expected).sum() < 27.9
    # a disk-uniform law (r ~ U(1, 2)) would fail the same check: it puts 1/3 of points below r^2 = 2
    assert abs(np.mean(r2 < 2) - 1 / 3) < 0.01


def test_ring_points_have_radius_two_and_uniform_angle():
    _, p = flipflop.pulses("2bit_ring", 20_000, np.random.default_rng(1))
    np.testing.assert_allclose(np.hypot(p[:, 0], p[:, 1]), 2.0, rtol=1e-12)
    counts, _ = np.histogram(np.arctan2(p[:, 1], p[:, 0]), bins=10, range=(-np.pi, np.pi))
    assert ((counts - 2000) ** 2 / 2000).sum() < 27.9


@pytest.mark.parametrize("variant", flipflop.VARIANTS)
def test_stored_values_follow_the_pulse_laws(variant):
    v = flipflop.stored_values(variant, 500, np.random.default_rng(0))
    assert v.shape == (500, len(INITIAL[variant]))
    if variant.endswith("fixed"):
        assert set(np.unique(v)) == {-1.0, 1.0}
    elif variant == "2bit_rectangle":
        assert np.abs(v[:, 0]).max() > 1.5 and np.abs(v[:, 0]).max() <= 2 and np.abs(v[:, 1]).max() <= 1
    elif variant in POINT:
        r = np.hypot(v[:, 0], v[:, 1])
        assert (np.allclose(r, 2) if variant == "2bit_ring" else (r.min() > 1 and r.max() < 2))
    else:
        assert np.abs(v).max() <= 1 and np.abs(v).max() > 0.9
    assert flipflop.one_channel(variant) == (variant in ONE_CHANNEL)


def test_same_seed_same_data_other_seed_different():
    for variant in flipflop.VARIANTS:
        a = flipflop.generate(variant, 20, seed=5)
        b = flipflop.generate(variant, 20, seed=5)
        c = flipflop.generate(variant, 20, seed=6)
        np.testing.assert_array_equal(a.inputs, b.inputs)
        np.testing.assert_array_equal(a.targets, b.targets)
        assert all(np.array_equal(p, q) for p, q in zip(a.onsets, b.onsets))
        assert not np.array_equal(a.inputs, c.inputs)


def test_split_and_errors():
    d = flipflop.generate("3bit_fixed", 10, seed=0)
    tr, te = flipflop.split(d, 7)
    assert tr.n_trials == 7 and te.n_trials == 3
    np.testing.assert_array_equal(te.inputs, d.inputs[7:])
    assert len(te.onsets) == 3
    with pytest.raises(ValueError, match="is not one of"):
        flipflop.generate("4bit", 3, seed=0)
    with pytest.raises(ValueError, match="pulse_width"):
        flipflop.generate("3bit_fixed", 3, seed=0, n_bins=2, pulse_width=3)
    with pytest.raises(ValueError, match="rate"):
        flipflop.generate("3bit_fixed", 3, seed=0, rate=-1)
