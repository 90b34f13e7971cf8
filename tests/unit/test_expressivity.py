"""Tests of the expressivity measure: targets, the analytic checks, scoring and claims.

The fits use small budgets on one CPU thread; the whole module runs in well under a minute.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gnode import expressivity as ex
from gnode.config import ExpressivityClaims, ExpressivitySettings
from gnode.studies import expressivity_scores as es

torch.set_num_threads(1)

LINEAR = {"depth": 0, "width": 0, "activation": "linear"}
THRESHOLDS = ExpressivityClaims().model_dump()  # the config's defaults
RELU = {"depth": 1, "width": 16, "activation": "relu"}


DEFAULT = ExpressivitySettings.model_fields  # the config's defaults, the only ones
BAND = {"f_min": DEFAULT["f_min"].default, "min_gap": DEFAULT["min_gap"].default, "slack": DEFAULT["band_slack"].default}


def _targets(k_values, per_k, *, seed, t_steps=200, output_dim=DEFAULT["output_dim"].default):
    """:func:`ex.make_targets` with the config's band (200 steps unless given)."""
    return ex.make_targets(k_values, per_k, t_steps=t_steps, output_dim=output_dim, seed=seed, **BAND)


def _budget(**given) -> dict:
    """The keyword arguments of :func:`ex.fit_model_class`: the config's defaults (the only ones),
    CPU and float32, updated with ``given`` (restarts, steps and seed at least)."""
    keys = ("lr", "lr_schedule", "weight_decay", "grad_clip", "alpha", "clamp", "init")
    return {k: DEFAULT[k].default for k in keys} | {"device": "cpu", "dtype": torch.float32} | given


# ------------------------------------------------------------------------- targets
def test_targets_unit_variance_min_gap_and_band():
    tg = _targets([1, 2, 3, 4], 4, t_steps=200, output_dim=2, seed=3)
    assert tg.y.shape == (16, 200, 2)
    np.testing.assert_allclose(tg.y.mean(1), 0.0, atol=1e-12)
    np.testing.assert_allclose(tg.y.var(1), 1.0, atol=1e-12)
    for row in tg.meta.itertuples():
        freqs = np.array([float(f) for f in row.freqs.split(";")])
        assert len(freqs) == row.k
        assert np.all(np.diff(freqs) >= 1.5 - 1e-3)  # distinct, at least min_gap apart
        lo, hi = ex.frequency_band(row.k, **BAND)
        assert (lo, hi) == (row.f_lo, row.f_hi) == (2.0, 2.0 + 1.5 * (row.k - 1) + 2.5)
        assert lo <= freqs.min() and freqs.max() <= hi


def test_target_is_the_zscored_sum_of_its_sinusoids():
    y, freqs, phases = ex.sinusoid_target(3, t_steps=150, output_dim=1, seed=11, **BAND)
    t = np.arange(1, 151) / 150
    s = np.cos(2 * np.pi * freqs[None, :] * t[:, None] + phases[:, 0][None, :]).sum(1)
    np.testing.assert_allclose(y[:, 0], (s - s.mean()) / s.std(), atol=1e-12)
    assert np.all(np.diff(freqs) >= 1.5)


def test_targets_reproducible_and_seed_dependent():
    a = _targets([1, 2, 3], 2, seed=5)
    b = _targets([1, 2, 3], 2, seed=5)
    c = _targets([1, 2, 3], 2, seed=6)
    np.testing.assert_array_equal(a.y, b.y)
    pd.testing.assert_frame_equal(a.meta, b.meta)
    assert np.abs(a.y - c.y).max() > 0.5
    # target (K, j) does not depend on how many targets or K values are drawn
    d = _targets([3], 5, seed=5)
    np.testing.assert_array_equal(d.y[:2], a.y[4:6])


def test_rotation_init_puts_the_euler_map_on_the_unit_circle():
    w = ex._rotation_flow(5, 0.1, np.array([2.0, 4.0]), 200)
    a = 0.9 * np.eye(5) + 0.1 * w
    eig = np.linalg.eigvals(a)
    np.testing.assert_allclose(np.abs(eig), 1.0, atol=1e-12)
    angles = sorted(np.abs(np.angle(eig)))
    np.testing.assert_allclose(angles, sorted([0.0] + [2 * np.pi * f / 200 for f in (2.0, 4.0)] * 2), atol=1e-12)


@pytest.mark.parametrize(
    "flow,kind",
    [(LINEAR, "rotation"), ({"depth": 2, "width": 9, "activation": "relu"}, "embedded-rotation"),
     ({"depth": 1, "width": 4, "activation": "linear"}, "embedded-rotation")],
)  # fmt: skip
def test_oscillator_init_makes_every_flow_the_same_rotation(flow, kind):
    tg = _targets([2], 1, t_steps=100, seed=0)
    members = ex._group_members([3, 4], flow, True, tg, 1, 0)
    model, _, kinds = ex._build_ensemble(members, flow, True, tg, alpha=0.1, output_dim=1, init="oscillator",
                                         device=None, dtype=torch.float64)  # fmt: skip
    assert kinds == {3: kind, 4: kind}
    lo, hi = ex.frequency_band(2, **BAND)
    h = torch.randn(2, 1, 4, dtype=torch.float64)
    h[0, :, 3:] = 0  # member 0 has N = 3: its 4th unit is padding
    f = model.flow(h, {"U_1": model.b_1}).detach()
    for e, n in enumerate((3, 4)):
        rot = ex._rotation_flow(n, 0.05, np.array([(lo + hi) / 2] if n < 4 else [lo + (hi - lo) / 4, lo + 3 * (hi - lo) / 4]), 100)
        np.testing.assert_allclose(f[e, 0, :n].numpy(), h[e, 0, :n].numpy() @ rot, atol=1e-12)
    # the gate starts constant: z = sigmoid(b_z) with |b_z| ~ 1e-3
    z = model.gate(h, {"U_z": model.b_z})
    assert torch.allclose(z, torch.full_like(z, 0.5), atol=1e-2)
    assert ex.init_kind(4, {"depth": 1, "width": 7, "activation": "relu"}, "oscillator") == "xavier"  # too narrow
    assert ex.init_kind(4, {"depth": 1, "width": 64, "activation": "tanh"}, "oscillator") == "xavier"
    assert ex.init_kind(4, LINEAR, "xavier") == "xavier"


# ------------------------------------------------------------------------- analytic checks
@pytest.fixture(scope="module")
def linear_fits():
    """Linear non-gated F, N = 2 and 4 in one padded ensemble, K = 1..3, 2 targets x 2 restarts."""
    tg = _targets([1, 2, 3], 2, t_steps=200, seed=0)
    return ex.fit_model_class([2, 4], LINEAR, False, tg, **_budget(restarts=2, steps=300, seed=0))


def test_linear_flow_fits_k_sinusoids_iff_2k_le_n(linear_fits):
    for row in linear_fits.itertuples():
        if 2 * row.k <= row.n:
            assert row.r2 >= 0.99, row
        else:  # at most floor(N/2) frequencies: the fit clearly fails
            assert row.r2 < ex.threshold_for(row.k) - 0.05, row
            assert row.r2 < 0.8, row
    assert (linear_fits["status"] == "ok").all()
    assert (linear_fits["skipped_steps"] == 0).all()


def test_linear_flow_capacity_is_floor_n_over_2(linear_fits):
    sc = ex.score(linear_fits).set_index("n")
    assert sc.loc[2, "k_star"] == 1
    assert sc.loc[4, "k_star"] == 2
    # n_params: W (N x N), b (N), readout (N + 1), h0 (N)
    assert sc.loc[2, "n_params"] == 4 + 2 + 3 + 2
    assert sc.loc[4, "n_params"] == 16 + 4 + 5 + 4


def test_one_dimensional_models_cannot_fit_a_sine_period():
    # an autonomous 1-D system read out linearly gives y_{k+1} = g(y_k): no oscillation
    tg = _targets([1], 2, t_steps=120, seed=1)
    for gated in (False, True):
        df = ex.fit_model_class(1, RELU, gated, tg, **_budget(restarts=2, steps=150, seed=0))
        assert (df["r2"] < ex.threshold_for(1)).all(), df
        assert df["r2"].max() < 0.4
        assert ex.score(df)["k_star"].iloc[0] == 0


def test_score_is_invariant_to_target_scale():
    tg = _targets([1, 2], 1, t_steps=120, seed=2)
    kw = _budget(restarts=1, steps=80, seed=4)
    a = ex.fit_model_class(2, RELU, True, tg, **kw)
    b = ex.fit_model_class(2, RELU, True, tg.scaled(10.0, 3.0), **kw)
    np.testing.assert_allclose(a["r2"], b["r2"], atol=1e-3)
    sa, sb = ex.score(a), ex.score(b)
    assert sa["k_star"].tolist() == sb["k_star"].tolist()
    assert sa["auc"].iloc[0] == pytest.approx(sb["auc"].iloc[0], abs=1e-3)
    # and R^2 itself is invariant to an affine map of prediction and target together
    p, y = torch.randn(3, 50, 2), torch.randn(3, 50, 2)
    torch.testing.assert_close(ex._r2(10 * p + 3, 10 * y + 3), ex._r2(p, y), atol=1e-5, rtol=0)


def test_padded_batching_equals_separate_fits():
    tg = _targets([1, 2], 1, t_steps=40, seed=0)
    kw = _budget(restarts=1, steps=15, seed=1, dtype=torch.float64)
    both = ex.fit_model_class([2, 3], {"depth": 1, "width": 8, "activation": "tanh"}, True, tg, **kw)
    alone = ex.fit_model_class(3, {"depth": 1, "width": 8, "activation": "tanh"}, True, tg, **kw)
    np.testing.assert_allclose(both.loc[both["n"] == 3, "r2"].to_numpy(), alone["r2"].to_numpy(), atol=1e-10)
    assert both.loc[both["n"] == 3, "n_params"].iloc[0] == alone["n_params"].iloc[0]


def test_clamp_guard_is_counted_and_fits_stay_finite():
    tg = _targets([1], 1, t_steps=30, seed=0)
    df = ex.fit_model_class(2, LINEAR, False, tg, **_budget(restarts=1, steps=3, seed=0, clamp=1e-3, init="xavier"))
    assert df["clamp_hits"].iloc[0] > 0
    assert np.isfinite(df["r2"]).all()


# ------------------------------------------------------------------------- score and claims
def _handmade_fits() -> pd.DataFrame:
    """Two flows x gating x N in {1, 2, 4}, K = 1..3, 3 targets; median R^2 per (class, K)
    is set by ``table`` (the other two targets sit at median +- 0.01)."""
    table = {
        # (flow, gated, n): median R^2 for K = 1, 2, 3
        ("linear", False, 1): (0.1, 0.1, 0.0),
        ("linear", False, 2): (1.0, 0.5, 0.4),
        ("linear", False, 4): (1.0, 1.0, 0.7),
        ("linear", True, 1): (0.1, 0.1, 0.0),
        ("linear", True, 2): (1.0, 0.8, 0.5),  # 0.8 >= 1 - 1/4 -> K* = 2
        ("linear", True, 4): (1.0, 1.0, 0.9),  # 0.9 >= 1 - 1/6 -> K* = 3
        ("relu L1xM16", False, 1): (0.2, 0.1, 0.0),
        ("relu L1xM16", False, 2): (1.0, 0.9, 0.5),
        ("relu L1xM16", False, 4): (1.0, 1.0, 0.95),
        ("relu L1xM16", True, 1): (0.2, 0.1, 0.0),
        ("relu L1xM16", True, 2): (1.0, 0.95, 0.6),
        ("relu L1xM16", True, 4): (1.0, 1.0, 0.99),
    }
    rows = []
    for (flow, gated, n), meds in table.items():
        depth, width, act = (0, 0, "linear") if flow == "linear" else (1, 16, "relu")
        for k, m in enumerate(meds, 1):
            for j, d in enumerate((-0.01, 0.0, 0.01)):
                rows.append({"n": n, "depth": depth, "width": width, "activation": act, "gated": gated,
                             "flow": flow, "k": k, "target": j, "r2": m + d, "n_params": 10 * n + depth,
                             "status": "ok", "steps": 100, "restarts": 2})  # fmt: skip
    return pd.DataFrame(rows)


def test_threshold_adaptive_and_fixed():
    np.testing.assert_allclose(ex.threshold_for(np.array([1, 2, 5])), [0.5, 0.75, 0.9])
    assert ex.threshold_for(3, 0.9) == 0.9
    with pytest.raises(ValueError):
        ex.threshold_for(1, "median")


def test_score_on_handmade_table():
    sc = ex.score(_handmade_fits()).set_index(["flow", "gated", "n"])
    expect_k = {("linear", False): (0, 1, 2), ("linear", True): (0, 2, 3),
                ("relu L1xM16", False): (0, 2, 3), ("relu L1xM16", True): (0, 2, 3)}  # fmt: skip
    for (flow, gated), ks in expect_k.items():
        assert [sc.loc[(flow, gated, n), "k_star"] for n in (1, 2, 4)] == list(ks)
    assert sc.loc[("linear", False, 4), "auc"] == pytest.approx((1 + 1 + 0.7) / 3)
    assert sc.loc[("linear", False, 1), "auc"] == pytest.approx(0.2 / 3)
    assert sc.loc[("relu L1xM16", False, 2), "flow_rank"] == 1
    assert sc.loc[("linear", True, 2), "n_params"] == 20
    # a fixed threshold: 0.9 everywhere
    sc9 = ex.score(_handmade_fits(), threshold=0.9).set_index(["flow", "gated", "n"])
    assert sc9.loc[("linear", True, 2), "k_star"] == 1
    assert sc9.loc[("relu L1xM16", False, 2), "k_star"] == 2
    # contiguous K* vs any-K: a class failing K = 2 but passing K = 3
    odd = _handmade_fits()
    sel = (odd["flow"] == "linear") & (~odd["gated"]) & (odd["n"] == 4)
    odd.loc[sel & (odd["k"] == 2), "r2"] = 0.3
    odd.loc[sel & (odd["k"] == 3), "r2"] = 0.95
    row = ex.score(odd).set_index(["flow", "gated", "n"]).loc[("linear", False, 4)]
    assert (row["k_star"], row["k_star_any"]) == (1, 3)


def test_claims_on_handmade_table():
    cl = es.expressivity_claims(ex.score(_handmade_fits()), THRESHOLDS).set_index("claim_id")
    assert list(cl.index) == ["ex_grows_with_n", "ex_grows_with_flow", "ex_richer_flow_lower_n", "ex_gating_helps",
                              "ex_linear_check"]
    assert (cl["study"] == "expressivity").all()
    assert cl["holds"].all(), cl
    assert list(cl["comparison"]) == [">=", ">=", ">", ">", ">="]
    assert list(cl["threshold"]) == [0.5, 0.5, 0.0, 0.0, 1.0]
    assert cl.loc["ex_grows_with_n", "value"] == pytest.approx(1.0)  # AUC increases in N everywhere
    # K = 1: both flows need N = 2 (0); K = 2 non-gated: 4 vs 2 (+1), gated 2 vs 2 (0);
    # K = 3 non-gated: not reached (5) vs 4 (+1), gated 4 vs 4 (0) -> mean 2/6
    assert cl.loc["ex_richer_flow_lower_n", "value"] == pytest.approx(2 / 6)
    gate = cl.loc["ex_gating_helps", "value"]
    assert gate == pytest.approx(np.median([0.4 / 3, 0.2 / 3, 0.15 / 3, 0.04 / 3]))
    assert cl.loc["ex_linear_check", "value"] == 1.0
    # the thresholds are the config's: a required mean sign above 2/6 makes that row fail
    strict = es.expressivity_claims(ex.score(_handmade_fits()), THRESHOLDS | {"richer_flow_sign": 0.5})
    assert not strict.set_index("claim_id").loc["ex_richer_flow_lower_n", "holds"]


def test_claims_fail_honestly():
    fits = _handmade_fits()
    fits.loc[fits["flow"] == "relu L1xM16", "r2"] = 0.05  # the richer flow learns nothing
    cl = es.expressivity_claims(ex.score(fits), THRESHOLDS).set_index("claim_id")
    assert not cl.loc["ex_grows_with_flow", "holds"] and cl.loc["ex_grows_with_flow", "value"] < 0
    assert not cl.loc["ex_richer_flow_lower_n", "holds"]
    # a single flow: the flow claims cannot be computed -> NaN, not holding
    one = es.expressivity_claims(ex.score(_handmade_fits().query("flow == 'linear'")), THRESHOLDS)
    one = one.set_index("claim_id")
    assert math.isnan(one.loc["ex_grows_with_flow", "value"]) and not one.loc["ex_grows_with_flow", "holds"]


# ------------------------------------------------------------------------- sweep plumbing
TINY = {"n": [1, 2], "flows": [LINEAR, {"depth": 1, "width": 4, "activation": "relu"}], "gated": [False, True],
        "k_max": 2, "targets_per_k": 1, "restarts": 1, "steps": 4, "t_steps": 30}  # fmt: skip


def test_sweep_settings_are_the_configs_model_with_its_defaults():
    with pytest.raises(ValueError, match="stepz"):
        ex.sweep_settings(TINY | {"stepz": 3})
    with pytest.raises(ValueError, match="steps"):  # no default of its own: the config requires it
        ex.sweep_settings({k: v for k, v in TINY.items() if k != "steps"})
    s = ex.sweep_settings(TINY)
    assert isinstance(s, ExpressivitySettings) and ex.sweep_settings(s) is s
    assert s.n == [1, 2] and s.alpha == DEFAULT["alpha"].default == 0.1
    assert ex.resolve_settings(s)["flows"][0] == LINEAR


def test_n_groups_respect_max_members():
    assert ex._n_groups([6, 1, 2, 4], 10, 25) == [[1, 2], [4, 6]]
    assert ex._n_groups([1, 2], 50, 25) == [[1], [2]]


def test_run_sweep_and_examples_tiny(tmp_path):
    settings = TINY
    fits, scores = ex.run_sweep(settings, device="cpu", dtype=torch.float32, seed=0)
    assert len(fits) == 2 * 2 * 2 * 2 and list(fits.columns) == ex.FIT_COLUMNS
    assert len(scores) == 8 and list(scores.columns) == ex.SCORE_COLUMNS
    assert set(scores["flow"]) == {"linear", "relu L1xM4"}
    cl = es.expressivity_claims(scores, THRESHOLDS)
    assert len(cl) == 5 and cl["holds"].dtype == bool
    exm = ex.example_fits([{"n": 2, **LINEAR, "gated": False}], [1, 2], settings, device="cpu", dtype=torch.float32,
                          seed=0)
    assert set(exm.columns) >= {"n", "depth", "width", "activation", "gated", "k", "t", "target", "output"}
    assert len(exm) == 2 * 30
    # the tables cast to their Parquet schemas without loss
    import pyarrow as pa

    for df, schema in ((fits, ex.FIT_SCHEMA), (scores, ex.SCORE_SCHEMA), (exm, ex.EXAMPLE_SCHEMA)):
        table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
        pd.testing.assert_frame_equal(table.to_pandas(), df.reset_index(drop=True), check_dtype=False)
    # the example output is the trajectory whose R^2 is reported
    for _, g in exm.groupby("k"):
        r2 = 1 - ((g["output"] - g["target"]) ** 2).sum() / ((g["target"] - g["target"].mean()) ** 2).sum()
        assert r2 == pytest.approx(g["r2"].iloc[0], abs=1e-4)

    from gnode.plotting import expressivity as pl

    written = []
    written += pl.plot_score_heatmaps(scores, tmp_path / "heat.png")
    written += pl.plot_iso_expressivity(scores, tmp_path / "iso")
    written += pl.plot_score_vs_params(scores, tmp_path / "params.pdf")
    written += pl.plot_r2_vs_k(fits, tmp_path / "r2k.png")
    written += pl.plot_example_fits(exm, tmp_path / "examples.png")
    assert len(written) == 10
    assert all(p.exists() and p.stat().st_size > 1000 for p in written)


def _rollout_autograd(model, t_steps: int, clamp: float):
    """The reference rollout: the model's own ``flow`` and ``gate`` step by step, torch autograd."""
    xp = {"U_1": model.b_1, **({"U_z": model.b_z} if model.spec.gated else {})}
    h, states = model.h0, []
    for _ in range(t_steps):
        w = model.spec.alpha * (model.gate(h, xp) if model.spec.gated else 1.0)
        h = torch.lerp(h, model.flow(h, xp), w).clamp(-clamp, clamp)
        states.append(h)
    return torch.stack(states, dim=2)[:, 0]


@pytest.mark.parametrize(
    "flow,gated",
    [(LINEAR, True), ({"depth": 0, "width": 0, "activation": "tanh"}, False), ({"depth": 2, "width": 5, "activation": "relu"}, True)],
)
def test_rollout_matches_autograd_with_clamp_and_padding(flow, gated):
    """The expressivity rollout (the shared Euler scan with a clamp) against autograd, on a padded
    ensemble (N = 2 and 3) whose states hit the clamp; padded units and their gradients stay 0."""
    tg = _targets([1, 2], 1, t_steps=25, seed=0)
    members = ex._group_members([2, 3], flow, gated, tg, 1, 0)
    model, _, _ = ex._build_ensemble(members, flow, gated, tg, alpha=0.3, output_dim=1, init="xavier",
                                     device=None, dtype=torch.float64)  # fmt: skip
    with torch.no_grad():
        model.h0.mul_(4)  # large enough that some states hit the clamp below
    results = []
    for fn in (_rollout_autograd, ex._rollout):
        model.zero_grad(set_to_none=True)
        states = fn(model, 25, 2.0)
        (ex._readout(model, states).pow(3).sum() + states.sin().sum()).backward()
        results.append((states.detach(), {n: p.grad for n, p in model.named_parameters() if p.numel()}))
    (s_ref, g_ref), (s_new, g_new) = results
    assert (s_ref.abs() >= 2.0).any()
    n_members = len(members)
    padded = [e for e in range(n_members) if members["n"].iloc[e] == 2]
    assert padded and (s_new[padded, :, 2] == 0).all()
    torch.testing.assert_close(s_new, s_ref, rtol=0, atol=1e-12)
    for name, g in g_ref.items():
        torch.testing.assert_close(g_new[name], g, rtol=1e-9, atol=1e-10, msg=name)


@pytest.mark.parametrize("flow", [LINEAR, {"depth": 2, "width": 5, "activation": "relu"}])
def test_padded_units_stay_exactly_zero_through_training(flow):
    """Padding (member N = 2 in an N = 3 ensemble) is all zeros, gets zero gradients and stays 0
    under AdamW with weight decay and clipping: nothing masks it, so this is what keeps each
    member the unpadded model of its own N."""
    tg = _targets([1, 2], 1, t_steps=30, seed=0)
    members = ex._group_members([2, 3], flow, True, tg, 1, 0)
    model, _, _ = ex._build_ensemble(members, flow, True, tg, alpha=0.2, output_dim=1, init="xavier",
                                     device=None, dtype=torch.float64)  # fmt: skip
    y = torch.as_tensor(ex._standardise(tg.y)[members["row"].to_numpy()], dtype=torch.float64)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ex._train(model, y, steps=5, lr=0.05, lr_schedule="constant", weight_decay=0.1, grad_clip=1.0, clamp=1e3)
    padded = [e for e in range(len(members)) if members["n"].iloc[e] == 2]
    checked = 0
    for name, p in model.named_parameters():
        assert not torch.equal(p, before[name]) or name in ("U_1", "U_z"), name  # it trained
        for dim in (1, 2):
            if p.shape[dim] == 3:  # an N axis (the width is 5, the output 1)
                assert (p[padded].select(dim, 2) == 0).all(), name
                checked += 1
    assert checked >= 6


def test_non_finite_member_is_skipped_without_touching_the_others():
    tg = _targets([1, 2], 1, t_steps=30, seed=0)
    flow = {"depth": 1, "width": 6, "activation": "relu"}
    members = ex._group_members([2], flow, True, tg, 1, 0)
    y = torch.as_tensor(ex._standardise(tg.y), dtype=torch.float64)
    runs = []
    for poison in (False, True):
        model, _, _ = ex._build_ensemble(members, flow, True, tg, alpha=0.1, output_dim=1, init="oscillator",
                                         device=None, dtype=torch.float64)  # fmt: skip
        if poison:
            with torch.no_grad():
                model.h0[0, 0, 0] = math.nan
        runs.append(ex._train(model, y, steps=6, lr=1e-2, lr_schedule="cosine", weight_decay=0.0,
                              grad_clip=1.0, clamp=1e3))  # fmt: skip
    clean, poisoned = runs
    assert poisoned["skipped"].tolist() == [6, 0]
    assert clean["skipped"].tolist() == [0, 0]
    assert not np.isfinite(poisoned["best_r2"][0])
    assert poisoned["best_r2"][1] == pytest.approx(clean["best_r2"][1], abs=1e-12)


def test_claims_ignore_saturated_groups():
    # at N = 6 every class fits everything: AUC differences of 1e-4 are noise, not an ordering
    fits = _handmade_fits()
    extra = []
    for n in (6, 8):
        e = fits[fits["n"] == 4].copy()
        e["n"] = n
        e["r2"] = np.where(e["flow"] == "linear", 1.0, 0.9999)
        extra.append(e)
    both = ex.score(pd.concat([fits, *extra], ignore_index=True))
    cl = es.expressivity_claims(both, THRESHOLDS).set_index("claim_id")
    assert cl.loc["ex_grows_with_flow", "value"] == pytest.approx(1.0) and cl.loc["ex_grows_with_flow", "holds"]
    # with auc_tol = 0 the four saturated groups count (rho = -1) against the four informative ones
    cl0 = es.expressivity_claims(both, THRESHOLDS | {"auc_tol": 0.0}).set_index("claim_id")
    assert cl0.loc["ex_grows_with_flow", "value"] == pytest.approx(0.0) and not cl0.loc["ex_grows_with_flow", "holds"]
    assert "AUC range < 0.0 left out" in cl0.loc["ex_grows_with_flow", "statistic"]
