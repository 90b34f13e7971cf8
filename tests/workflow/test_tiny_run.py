"""A tiny end-to-end run of the real Snakefile: files, schemas, values, figures."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from matplotlib import image

from gnode import io
from gnode.claims import CLAIMS_SCHEMA
from gnode.studies import flipflop
from gnode.studies import flipflop_analysis as ffa

from .conftest import snakemake

MODELS = ["rnn", "gru", "mgru", "node", "gnode"]
EXPERIMENTS = ["3bit_fixed", "3bit_variable", "2bit_rectangle", "2bit_disk", "2bit_ring"]
# (experiment, model, N) of the tiny overlay
JOBS = [("3bit_fixed", m, 4) for m in MODELS] + [("3bit_variable", "node", 4), ("3bit_variable", "gnode", 3),
        ("3bit_variable", "gnode", 4)] + [(e, "gnode", 2) for e in EXPERIMENTS[2:]]


def test_dry_run_lists_the_chain_prepare_train_evaluate_figures(tmp_path):
    from .conftest import copy_repo

    work = copy_repo(tmp_path)
    out = snakemake(work, "-n", "--configfile", "config/test/config.yaml").stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    assert counts["prepare_flipflop_data"] == 5
    assert counts["train_flipflop"] == counts["evaluate_flipflop"] == len(JOBS)
    assert counts["plot_flipflop"] == counts["analyse_flipflop_attractors"] == counts["plot_flipflop_attractors"] == 5
    assert counts["summarise_flipflop"] == counts["plot_flipflop_overview"] == counts["flipflop_claims"] == 1


def test_lint_is_clean(tmp_path):
    from .conftest import copy_repo

    proc = snakemake(copy_repo(tmp_path), "--lint")
    out = proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in out


def test_tables_have_their_schemas_and_sane_values(tiny_run):
    work, _ = tiny_run
    res = work / "results" / "flipflop"
    data = pq.read_table(res / "data" / "3bit_fixed.parquet")
    assert data.schema.remove_metadata() == flipflop.DATA_SCHEMA
    df = data.to_pandas()
    assert len(df) == 24 * 20 * 3 and set(df["split"]) == {"train", "test"}
    assert (df["split"] == "train").sum() == 16 * 20 * 3

    ev = pd.concat([io.read_table(res / "3bit_fixed" / f"{m}_N4" / "evaluation.parquet") for m in MODELS])
    assert sorted(ev["model"].unique()) == sorted(MODELS)
    assert len(ev) == 5 * 2  # two seeds per model
    ok = ev[ev["status"] == "ok"]
    assert len(ok) == 10 and np.isfinite(ok["test_loss"]).all() and (ok["test_loss"] > 0).all()
    # an untrained-scale model cannot be perfect, nor absurdly bad, on +-1 targets
    assert (ok["test_loss"] < 5).all()
    assert (ev["n_params"] > 0).all() and ev.groupby("model")["n_params"].nunique().eq(1).all()

    hist = io.read_table(res / "3bit_fixed" / "gnode_N4" / "history.parquet")
    assert sorted(hist["epoch"].unique()) == [1, 2] and hist["member"].nunique() == 2
    assert (hist["elapsed_s"] > 0).all()

    summary = io.read_table(res / "summary.parquet")
    assert pq.read_schema(res / "summary.parquet").remove_metadata() == flipflop.SUMMARY_SCHEMA
    assert len(summary) == len(JOBS)
    summary = summary[summary["experiment"] == "3bit_fixed"]
    assert np.allclose(
        summary.set_index("model")["best_test_loss"].sort_index(),
        ok.groupby("model")["test_loss"].min().sort_index(),
    )
    assert "<table" in (res / "summary.html").read_text()

    ex = io.read_table(res / "3bit_fixed" / "gnode_N4" / "examples.parquet")
    assert len(ex) == 20 * 3 and np.isfinite(ex["output"]).all()
    for path in [res / "summary.parquet", res / "3bit_fixed" / "gnode_N4" / "evaluation.parquet"]:
        prov = io.read_provenance(path)
        assert prov["gnode_version"] and prov["torch_version"] and prov["device"].startswith("cpu")


def test_figures_are_real_images(tiny_run):
    work, _ = tiny_run
    figs = sorted((work / "results" / "figures" / "flipflop").glob("*.png"))
    names = ["attractors", "example", "gates", "learning_curves", "memory", "test_loss"]
    assert [f.name for f in figs] == sorted([f"{e}_{n}.png" for e in EXPERIMENTS for n in names]
                                            + ["test_loss_all_tasks.png"])
    for f in figs:
        img = image.imread(f)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.05, f"{f.name} is blank"


def test_logs_show_one_line_per_epoch(tiny_run):
    work, _ = tiny_run
    log = (work / "logs" / "train_flipflop" / "3bit_fixed" / "gnode_N4.log").read_text()
    assert "epoch 1/2" in log and "epoch 2/2" in log and " s" in log


def test_a_second_run_has_nothing_to_do(tiny_run):
    work, _ = tiny_run
    out = snakemake(work, "-n", "--configfile", "config/test/config.yaml").stdout
    assert "Nothing to be done" in out


def test_attractor_tables_have_their_schemas_and_sane_values(tiny_run):
    work, _ = tiny_run
    for exp in EXPERIMENTS:
        folder = work / "results" / "flipflop" / exp / "attractors"
        tables = {}
        for name, schema in ffa.SCHEMAS.items():
            assert pq.read_schema(folder / f"{name}.parquet").remove_metadata() == schema, (exp, name)
            tables[name] = io.read_table(folder / f"{name}.parquet")
        jobs = {(m, n) for e, m, n in JOBS if e == exp}
        fp, traj, grid, gates, mem = (tables[k] for k in ("fixed_points", "trajectories", "speed_grid", "gates", "memory"))
        assert set(zip(traj["model"], traj["n"])) == jobs
        assert set(zip(mem["model"], mem["n"])) == jobs and (mem.groupby(["model", "n"])["is_best"].sum() == 1).all()
        assert len(mem) == 2 * len(jobs)  # two seeds: every member is tested
        ok = mem[mem["status"] == "ok"]
        assert np.isfinite(ok[["drift", "relative_drift", "error_end"]]).all().all() and (ok["drift"] >= 0).all()
        assert np.allclose(mem["duration"], 2.0 * 20 * 0.05)  # 2 trial lengths of 20 bins of 0.05
        assert len(traj) == 3 * 20 * len(jobs)  # 3 trials x 20 bins
        assert (traj["h"].map(len) == traj["n"]).all()
        # points found move slower than the slow-point threshold and lie in the visited region
        assert (fp["speed"] < 0.05).all() and (fp["h"].map(len) == fp["n"]).all()
        assert (fp["is_fixed"] <= (fp["speed"] < 1e-3)).all()
        assert set(grid["model"]) == {m for m, n in jobs if n == 2} and (grid["speed"] >= 0).all()
        assert set(gates["model"]) <= {"gnode", "gru", "mgru"} and (gates["model"] == "gnode").any()
        z = np.concatenate(gates["z"].to_list())
        assert ((z > 0) & (z < 1)).all()
        basis = traj.groupby("n")["basis"].first()
        assert all(basis[n] == ("state" if n <= 3 else "pca") for n in basis.index)


def test_claims_table_lists_every_finding(tiny_run):
    work, _ = tiny_run
    path = work / "results" / "flipflop" / "claims.parquet"
    assert pq.read_schema(path).remove_metadata() == CLAIMS_SCHEMA
    claims = io.read_table(path).set_index("claim_id")
    expected = {f"ff_gating_{w}_{e}" for w in ("best", "median") for e in EXPERIMENTS} | {
        "ff_small_gnode_3bit_variable", "ff_ring_radius_cv_2bit_ring", "ff_ring_coverage_2bit_ring"} | {
        f"ff_low_dim_r2_{e}" for e in EXPERIMENTS[2:]} | {f"ff_memory_{e}" for e in EXPERIMENTS[1:]}
    assert set(claims.index) == expected and (claims["study"] == "flipflop").all()
    # values exist where the tiny run has the data, and holds follows from value and threshold
    for cid in ("ff_gating_best_3bit_variable", "ff_small_gnode_3bit_variable", "ff_memory_2bit_ring",
                "ff_low_dim_r2_2bit_disk"):
        assert np.isfinite(claims.loc[cid, "value"]), cid
    assert not claims.loc["ff_gating_best_2bit_ring", "holds"]  # no nODE on the 2-bit tasks here: NaN, not held
    assert "common N" in claims.loc["ff_gating_best_2bit_ring", "note"]
    g = claims.loc["ff_gating_best_3bit_variable"]
    assert g["holds"] == (g["value"] < g["threshold"])
    assert "<table" in (work / "results" / "flipflop" / "claims.html").read_text()
