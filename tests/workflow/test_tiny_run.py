"""A tiny end-to-end run of the real Snakefile: files, schemas, values, figures."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from matplotlib import image

from gnode import io
from gnode.claims import CLAIMS_SCHEMA
from gnode.studies import flipflop
from gnode.studies import flipflop_analysis as ffa

from .conftest import CONTINUOUS, EXPERIMENTS, JOBS, MODELS, snakemake


def test_dry_run_lists_the_chain_prepare_train_evaluate_figures(tmp_path):
    from .conftest import copy_repo

    work = copy_repo(tmp_path)
    out = snakemake(work, "-n", "--configfile", "config/test/config.yaml").stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    assert counts["prepare_flipflop_data"] == len(EXPERIMENTS)
    assert counts["train_flipflop"] == counts["evaluate_flipflop"] == len(JOBS)
    assert counts["plot_flipflop"] == counts["analyse_flipflop_attractors"] == counts["plot_flipflop_attractors"] == len(EXPERIMENTS)
    assert counts["summarise_flipflop"] == counts["plot_flipflop_overview"] == counts["claims_flipflop"] == 1
    assert counts["prepare_realworld_data"] == 1 and counts["train_realworld"] == 3
    assert counts["summarise_realworld"] == 1 and counts["plot_realworld"] == 1
    assert counts["train_trainability"] == 4 and counts["summarise_trainability"] == counts["plot_trainability"] == 1


def _job_counts(out: str) -> dict[str, int]:
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_paper_dry_run_plans_all_three_benchmarks(tmp_path):
    """CharacterTrajectories and Speech Commands are not here: their data jobs are still planned
    (they fail at run time with the loader's message naming data.<name>.local_dirs)."""
    from .conftest import copy_repo

    work = copy_repo(tmp_path)
    out = snakemake(work, "-n", "--configfile", "config/paper.yaml").stdout
    counts = _job_counts(out)
    assert counts["prepare_realworld_data"] == 6 and counts["train_realworld"] == 30
    for task in ["walker2d", "characters_drop00", "characters_drop30", "characters_drop50", "characters_drop70",
                 "speech_commands"]:
        assert f"results/realworld/data/{task}.parquet" in out
        assert f"results/figures/realworld/{task}.png" in out


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


def test_walker2d_chain_on_real_rollouts(tiny_run):
    from gnode.studies import realworld

    work, proc = tiny_run
    res = work / "results" / "realworld"
    splits, meta = realworld.read_data(res / "data" / "walker2d.parquet")
    assert [len(splits[s].x) for s in ("train", "val", "test")] == [24, 12, 12]
    assert meta["kind"] == "regression" and meta["n_files"] == {"train": 18, "val": 3, "test": 3}
    assert (splits["train"].dt >= 1).all() and (splits["train"].dt > 1).any()  # irregular sampling
    models = ["gru", "node", "gnode"]  # the test overlay's
    ev = pd.concat([io.read_table(res / "walker2d" / m / "evaluation.parquet") for m in models])
    assert pq.read_schema(res / "walker2d" / "gnode" / "evaluation.parquet").remove_metadata() == realworld.EVAL_SCHEMA
    assert sorted(ev["model"]) == sorted(models * 2) and set(ev["seed"]) == {0, 1}
    ok = ev[ev["status"] == "ok"]
    assert len(ok) == 6 and np.isfinite(ok["test_metric"]).all() and (ok["test_metric"] > 0).all()
    assert ((ev["n_params"] - 600).abs() <= 60).all() and ev.groupby("model")["n_hidden"].nunique().eq(1).all()
    summary = io.read_table(res / "summary.parquet")
    assert len(summary) == 3 and (summary["n_seeds"] == 2).all() and (summary["metric"] == "mse").all()
    claims = io.read_table(res / "claims.parquet")
    assert list(claims["claim_id"]) == ["rw_gating_walker2d", "rw_gating_walker2d_significant"]
    assert (claims["study"] == "realworld").all()
    assert "<table" in (res / "summary.html").read_text()
    log = (work / "logs" / "train_realworld" / "walker2d" / "gnode.log").read_text()
    assert "epoch 1/2" in log and "test mse" in log
    img = image.imread(work / "results" / "figures" / "realworld" / "walker2d.png")
    assert img.shape[0] > 100 and img[..., :3].std() > 0.05


def test_a_second_run_has_nothing_to_do(tiny_run):
    work, proc = tiny_run
    out = snakemake(work, "-n", *proc.args[5:]).stdout  # the same configuration files
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
        assert np.isfinite(ok[["drift", "relative_drift", "error_end", "relative_error_end"]]).all().all()
        assert (ok["drift"] >= 0).all() and np.allclose(ok["relative_error_end"], ok["error_end"] / ok["stored_norm"])
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
        f"ff_low_dim_r2_{e}" for e in EXPERIMENTS if e.startswith("2bit")} | {
        f"ff_memory{k}_{e}" for k in ("", "_drift") for e in CONTINUOUS} | {
        f"ff_square_rank_{e}" for e in EXPERIMENTS if e == "2bit_square"} | {
        f"ff_fixed_targets_{e}" for e in EXPERIMENTS if e == "2bit_fixed"}
    assert set(claims.index) == expected and (claims["study"] == "flipflop").all()
    # values exist where the tiny run has the data, and holds follows from value and threshold
    for cid in ("ff_gating_best_3bit_variable", "ff_small_gnode_3bit_variable", "ff_memory_2bit_ring",
                "ff_memory_drift_2bit_ring", "ff_low_dim_r2_2bit_disk"):
        assert np.isfinite(claims.loc[cid, "value"]), cid
    assert not claims.loc["ff_gating_best_2bit_ring", "holds"]  # no nODE on the 2-bit tasks here: NaN, not held
    assert "common N" in claims.loc["ff_gating_best_2bit_ring", "note"]
    g = claims.loc["ff_gating_best_3bit_variable"]
    assert g["holds"] == (g["value"] < g["threshold"])
    assert "<table" in (work / "results" / "flipflop" / "claims.html").read_text()
    gathered = io.read_table(work / "results" / "claims.parquet")
    assert set(claims.index) <= set(gathered["claim_id"])


def test_expressivity_tables_figures_and_claims(tiny_run):
    import pyarrow.parquet as pq

    from gnode import expressivity as ex
    from gnode.claims import CLAIMS_SCHEMA

    work, _ = tiny_run
    res = work / "results"
    fits = pd.concat([io.read_table(p) for p in sorted((res / "expressivity" / "fits").glob("*.parquet"))])
    # test overlay: N in {1, 2} x 2 flows x gated/non-gated, K = 1, one target
    assert len(fits) == 2 * 2 * 2 and set(fits["n"]) == {1, 2}
    assert fits["r2"].between(-1e6, 1.0).all()
    scores = io.read_table(res / "expressivity" / "scores.parquet")
    assert pq.read_schema(res / "expressivity" / "scores.parquet").remove_metadata() == ex.SCORE_SCHEMA
    assert len(scores) == 8 and scores["auc"].between(0, 1).all() and (scores["k_star"] >= 0).all()
    claims = io.read_table(res / "claims.parquet")
    assert pq.read_schema(res / "claims.parquet").remove_metadata() == CLAIMS_SCHEMA
    assert set(claims["study"]) >= {"expressivity"} and claims["claim_id"].is_unique
    assert (claims["holds"] == (~claims["value"].isna() & claims["holds"])).all()
    for name in ["heatmaps", "iso", "params", "r2", "examples"]:
        img = image.imread(res / "figures" / "expressivity" / f"{name}.png")
        assert img[..., :3].std() > 0.02, name
    assert "<table" in (res / "claims.html").read_text()


def test_trainability_tables_figures_and_claims(tiny_run):
    from gnode.studies import trainability as tr

    work, _ = tiny_run
    res = work / "results" / "trainability"
    # tiny overlay: nODE/gnODE x L = 1 x {relu, tanh} x {xavier, critical} x 2 seeds, N = 6, 2 epochs, 20 bins
    members = io.read_table(res / "members.parquet")
    assert pq.read_schema(res / "members.parquet").remove_metadata() == tr.MEMBERS_SCHEMA
    assert len(members) == 2 * 2 * 2 * 2 and set(members["init"]) == {"xavier", "critical"}
    assert members.groupby(tr.CELL).size().eq(2).all()
    assert np.isfinite(members["eta_max"]).all()
    ok = members[members["status"] == "ok"]
    assert np.isfinite(ok[["best_test_loss", "grad_norm", "compare_loss"]]).all().all() and (ok["grad_norm"] > 0).all()
    hist = io.read_table(res / "history.parquet")
    # the best parameters are chosen among those after each epoch (epoch 0 is the initial state)
    job_member = ["model", "depth", "activation", "member"]  # members are numbered within each job
    after = hist[hist["epoch"] >= 1].groupby(job_member)["test_loss"].min().rename("after")
    both = ok.join(after, on=job_member)
    assert len(both) == len(ok) and np.allclose(both["best_test_loss"], both["after"])
    assert sorted(hist["epoch"].unique()) == [0, 1, 2] and len(hist) == len(members) * 3
    prop = io.read_table(res / "propagation.parquet")
    assert pq.read_schema(res / "propagation.parquet").remove_metadata() == tr.PROPAGATION_SCHEMA
    assert len(prop) == len(members) * 20
    # 1 at the last bin; NaN only where the forward pass exploded (a critical ReLU member may)
    lag0 = prop[prop["lag"] == 0]
    finite = np.isfinite(lag0["grad_norm"]).to_numpy()
    assert np.allclose(lag0.loc[finite, "ratio"], 1.0) and finite[(lag0["init"] == "xavier").to_numpy()].all()
    spec = io.read_table(res / "spectrum.parquet")
    assert len(spec) == len(members) * 6
    summary = io.read_table(res / "summary.parquet")
    assert len(summary) == 8 and (summary["n_members"] == 2).all()
    claims = io.read_table(res / "claims.parquet").set_index("claim_id")
    assert set(claims.index) == {"tr_eta_critical_relu", "tr_eta_critical_tanh", "tr_critical_node",
                                 "tr_gating_epochs_xavier", "tr_gating_epochs_critical"}
    assert (claims["study"] == "trainability").all()
    finite = claims[np.isfinite(claims["value"])]
    assert (finite["holds"] == [
        {"<": v < t, "<=": v <= t}[c] for v, t, c in zip(finite["value"], finite["threshold"], finite["comparison"])]).all()
    gathered = io.read_table(work / "results" / "claims.parquet")
    assert set(claims.index) <= set(gathered["claim_id"])
    assert "<table" in (res / "summary.html").read_text()
    for name in ["learning_curves", "init", "final_loss"]:
        img = image.imread(work / "results" / "figures" / "trainability" / f"{name}.png")
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.05, f"{name} is blank"
