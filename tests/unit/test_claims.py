"""Claims in one shape: every study's claims function on small hand-made tables with known
outcomes gives the columns and dtypes of CLAIMS_SCHEMA, and gathering keeps every row."""

import inspect
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from gnode import codegraph, io
from gnode.claims import CLAIMS_SCHEMA, STUDY_CLAIMS, claim, claims_frame, claims_function, gather, gather_job
from gnode.config import ExpressivityClaims, FlipFlopClaims, RealWorldClaims, TrainabilityClaims

SCRIPTS = Path(__file__).resolve().parents[2] / "workflow" / "scripts"
DTYPES = {c: "object" for c in CLAIMS_SCHEMA.names} | {"threshold": "float64", "value": "float64", "holds": "bool"}


def flipflop_inputs():
    """3-bit fixed, gnODE and nODE at the common N = 8 (nODE also at 32, never compared):
    best test MSE 0.01 vs 0.02 (ratio 0.5 < 1 holds), median 0.04 vs 0.02 (ratio 2 fails)."""
    summary = pd.DataFrame(
        [("e", "3bit_fixed", "gnode", 8, 0.01, 0.04), ("e", "3bit_fixed", "node", 8, 0.02, 0.02),
         ("e", "3bit_fixed", "node", 32, 0.001, 0.001)],
        columns=["experiment", "task", "model", "n", "best_test_loss", "median_test_loss"],
    )
    return (summary, {"e": "3bit_fixed"}, {}, {}, {}), FlipFlopClaims().model_dump()


def expressivity_inputs():
    """Non-gated linear and ReLU flows at N = 2, 4 (K_max = 3): AUC grows with N and with the
    flow (Spearman 1), the ReLU flow needs a lower N at K = 2, 3 (mean sign 2/3), no gated pair
    (NaN), the linear flow has K* = N/2 (fraction 1)."""
    rows = [("linear", 0, 0, "linear", 2, 1, 0.3), ("linear", 0, 0, "linear", 4, 2, 0.6),
            ("relu", 1, 1, "relu", 2, 2, 0.5), ("relu", 1, 1, "relu", 4, 3, 0.9)]
    scores = pd.DataFrame(rows, columns=["flow", "flow_rank", "depth", "activation", "n", "k_star", "auc"])
    scores = scores.assign(gated=False, width=0, k_max=3)
    return (scores,), ExpressivityClaims().model_dump()


def realworld_inputs():
    """One MSE task, 3 seeds: nODE - gnODE = 1.0, 1.1, 1.1 (mean > 0, t = 32 > 2)."""
    rows = [{"task": "w", "model": m, "seed": s, "metric": "mse", "status": "ok", "test_metric": v, "budget": 100}
            for m, vals in (("node", [2.0, 2.2, 2.4]), ("gnode", [1.0, 1.1, 1.3])) for s, v in enumerate(vals)]
    return (pd.DataFrame(rows),), RealWorldClaims().model_dump()


def trainability_inputs():
    """tanh, depth 1, one seed: critical |eta_max| <= 0.02; nODE loss critical / xavier 0.5;
    epochs gnODE / nODE 0.5 under both inits: every row holds."""
    rows = [("node", "critical", 0.01, 0.1, 2.0), ("node", "xavier", -0.5, 0.2, 4.0),
            ("gnode", "critical", 0.02, 0.1, 1.0), ("gnode", "xavier", -0.4, 0.1, 2.0)]
    members = pd.DataFrame(rows, columns=["model", "init", "eta_max", "compare_loss", "epochs_to_threshold"])
    members = members.assign(depth=1, activation="tanh", seed=0)
    return (members,), TrainabilityClaims(compare_epoch=3).model_dump()


INPUTS = {"flipflop": flipflop_inputs, "expressivity": expressivity_inputs, "realworld": realworld_inputs,
          "trainability": trainability_inputs}
EXTRA = {"trainability": {"epochs": 10}}
# study -> claim_id -> (value, holds)
EXPECTED = {
    "flipflop": {"ff_gating_best_e": (0.5, True), "ff_gating_median_e": (2.0, False)},
    "expressivity": {"ex_grows_with_n": (1.0, True), "ex_grows_with_flow": (1.0, True),
                     "ex_richer_flow_lower_n": (2 / 3, True), "ex_gating_helps": (math.nan, False),
                     "ex_linear_check": (1.0, True)},
    "realworld": {"rw_gating_w": (1.1 - 0.1 / 3, True), "rw_gating_w_significant": (32.0, True)},
    "trainability": {"tr_eta_critical_tanh": (0.02, True), "tr_critical_node": (0.5, True),
                     "tr_gating_epochs_critical": (0.5, True), "tr_gating_epochs_xavier": (0.5, True)},
}


def run(study: str) -> pd.DataFrame:
    tables, thresholds = INPUTS[study]()
    return claims_function(study)(*tables, thresholds, **EXTRA.get(study, {}))


def test_a_claim_holds_by_its_comparison_and_never_on_nan():
    row = claim("flipflop", "x", "a finding", "a statistic", 1.0, "<", 1.0, "a note")
    assert list(row) == CLAIMS_SCHEMA.names and not row["holds"]
    assert claim("flipflop", "x", "c", "s", 1.0, "<=", 1.0)["holds"]
    assert claim("flipflop", "x", "c", "s", 2, ">", 1)["value"] == 2.0
    assert not claim("flipflop", "x", "c", "s", math.nan, ">=", -math.inf)["holds"]
    with pytest.raises(ValueError, match="=="):
        claim("flipflop", "x", "c", "s", 1.0, "==", 1.0)


def test_every_study_has_one_claims_function_named_after_it_with_thresholds_and_no_defaults():
    assert set(STUDY_CLAIMS) == {"flipflop", "expressivity", "realworld", "trainability"}
    for study in STUDY_CLAIMS:
        fn = claims_function(study)
        assert fn.__name__ == f"{study}_claims"
        params = inspect.signature(fn).parameters
        assert "thresholds" in params, study
        assert all(p.default is p.empty for p in params.values()), study  # the config holds the values
    with pytest.raises(ValueError, match="known"):
        claims_function("weather")


@pytest.mark.parametrize("study", sorted(EXPECTED))
def test_each_studys_claims_on_a_handmade_table(study):
    df = run(study)
    assert list(df["claim_id"]) == list(EXPECTED[study]) and (df["study"] == study).all()
    for cid, (value, holds) in EXPECTED[study].items():
        row = df.set_index("claim_id").loc[cid]
        assert row["value"] == pytest.approx(value, rel=0.01, nan_ok=True), cid
        assert row["holds"] == holds, cid


def test_all_studies_give_the_same_columns_and_dtypes_and_fit_the_schema():
    for study in STUDY_CLAIMS:
        df = run(study)
        assert list(df.columns) == CLAIMS_SCHEMA.names, study
        assert df.dtypes.astype(str).to_dict() == DTYPES, study
        assert pa.Table.from_pandas(df, schema=CLAIMS_SCHEMA, preserve_index=False).num_rows == len(df)
    empty = claims_frame([])
    assert list(empty.columns) == CLAIMS_SCHEMA.names and empty.dtypes.astype(str).to_dict() == DTYPES


def test_gather_keeps_every_row_ordered_by_study_and_claim(tmp_path):
    frames = {study: run(study) for study in ("trainability", "realworld", "flipflop", "expressivity")}
    out = gather([*frames.values(), claims_frame([])])
    assert len(out) == sum(map(len, EXPECTED.values())) == 13
    keys = list(zip(out["study"], out["claim_id"]))
    assert keys == sorted(keys) and set(keys) == {(s, c) for s, rows in EXPECTED.items() for c in rows}
    assert out.dtypes.astype(str).to_dict() == DTYPES
    # the job: one file per study in, one table (same rows and values) and its HTML view out
    paths = []
    for study, df in frames.items():
        paths.append(tmp_path / f"{study}.parquet")
        io.write_table(df, paths[-1], CLAIMS_SCHEMA, io.provenance())
    gather_job(paths, tmp_path / "claims.parquet", tmp_path / "claims.html")
    pd.testing.assert_frame_equal(io.read_table(tmp_path / "claims.parquet").astype(DTYPES), out)
    assert "11 of 13 hold" in (tmp_path / "claims.html").read_text()
    empty = gather([claims_frame([])])
    assert empty.empty and list(empty.columns) == CLAIMS_SCHEMA.names


def test_gather_refuses_rows_of_a_study_without_a_claims_function():
    stray = run("realworld").assign(study="weather")
    with pytest.raises(ValueError, match="weather"):
        gather([run("flipflop"), stray])


def test_claims_code_is_apart_from_the_training_and_fitting_jobs():
    def names(script):
        return {codegraph.module_name(p) for p in codegraph.reachable_files(SCRIPTS / script)}

    # the expressivity claims live with the scoring: editing them re-runs no fit
    assert "gnode.studies.expressivity_scores" not in names("fit_expressivity.py")
    assert "gnode.studies.expressivity_scores" in names("score_expressivity.py")
    # the registry names the studies' functions as text: gathering does not run the studies' code
    gathered = names("gather_claims.py")
    assert "gnode.claims" in gathered and not any(n.startswith("gnode.studies") for n in gathered)
