"""The trainability study (docs/trainability.md): what critical initialisation and gating do to training.

Grid: model (nODE, gnODE) x depth L of F x nonlinearity of F x initialisation, seeds as ensemble
members, on one flip-flop task with one learning-rate setting. One job per (model, depth,
activation) trains all inits x seeds as one ensemble (the flip-flop study's data and
:func:`gnode.training.fit`), after measuring at initialisation (:mod:`gnode.diagnostics`): eta_max
and the spectrum of the Jacobian of -h + F at h0 with the mean input, the norm of the loss
gradient, and the decay of ||dL/dh_t|| back in time with the loss on the last bin.

Tables (Parquet, schemas below), per job under ``results/trainability/{model}_L{depth}_{activation}/``
and gathered under ``results/trainability/``:

- members: one row per member: its cell, seed, diagnostics at init, best test loss, status;
  gathered, with the epochs to the loss threshold and the test loss at the comparison epoch;
- history: test and train loss per member and epoch (epoch 0: at initialisation);
- propagation: ||dL/dh_t|| and its ratio to the last bin's, per member and bin;
- spectrum: the eigenvalues of the Jacobian of -h + F at init, per member;
- summary: one row per cell (model, depth, activation, init) over the seeds;
- claims: the study's claims rows (:data:`gnode.claims.CLAIMS_SCHEMA`).

The gathering, the statistics and the claims live in :mod:`gnode.studies.trainability_summary`
(editing them re-runs no training).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import Tensor

from gnode import diagnostics, io
from gnode.config import Config, TrainabilityTrainSettings
from gnode.models import ModelSpec, RecurrentEnsemble, input_means
from gnode.runtime import DTYPES, derive_seed, resolve_device, stable_id
from gnode.studies import flipflop as ff
from gnode.training import FitSettings, evaluate_loss, fit

logger = logging.getLogger(__name__)

STUDY = "trainability"
CELL = ["model", "depth", "activation", "init"]  # a cell of the grid; its members are the seeds
_KEYS = [("model", pa.string()), ("depth", pa.int32()), ("activation", pa.string()), ("init", pa.string()),
         ("seed", pa.int32()), ("member", pa.int32())]
RAW_MEMBERS_SCHEMA = pa.schema(
    _KEYS
    + [
        ("seed_init", pa.int64()),
        ("eta_max", pa.float64()),  # largest real part of eig(J(-h + F)) at h0, mean input
        ("grad_norm", pa.float64()),  # ||d loss / d parameters|| at init (MSE on every bin)
        ("grad_ratio_first", pa.float64()),  # ||dL/dh_0|| / ||dL/dh_{T-1}||, loss on the last bin
        ("initial_train_loss", pa.float64()),
        ("initial_test_loss", pa.float64()),
        ("zero_output_test_loss", pa.float64()),  # MSE of a silent readout (y = 0) on the test set
        ("status", pa.string()),
        ("diverged_epoch", pa.int32()),
        ("best_epoch", pa.int32()),
        ("best_test_loss", pa.float64()),
        ("n_params", pa.int64()),
        ("train_time_s", pa.float64()),
    ]
)
MEMBERS_SCHEMA = pa.schema(
    list(RAW_MEMBERS_SCHEMA)
    + [
        ("epochs_to_threshold", pa.float64()),  # NaN: never reached within the epochs
        ("compare_loss", pa.float64()),  # test loss at claims.compare_epoch (inf: diverged by then)
    ]
)
HISTORY_SCHEMA = pa.schema(
    _KEYS + [("epoch", pa.int32()), ("train_loss", pa.float64()), ("test_loss", pa.float64()), ("elapsed_s", pa.float64())]
)
PROPAGATION_SCHEMA = pa.schema(
    _KEYS + [("bin", pa.int32()), ("lag", pa.int32()), ("grad_norm", pa.float64()), ("ratio", pa.float64())]
)
SPECTRUM_SCHEMA = pa.schema(_KEYS + [("real", pa.float64()), ("imag", pa.float64())])
SUMMARY_SCHEMA = pa.schema(
    [(k, t) for k, t in _KEYS if k in CELL]
    + [
        ("n_members", pa.int32()),
        ("n_diverged", pa.int32()),
        ("eta_max_median", pa.float64()),
        ("grad_norm_median", pa.float64()),
        ("grad_ratio_first_median", pa.float64()),
        ("best_test_loss_median", pa.float64()),
        ("best_test_loss_min", pa.float64()),
        ("best_test_loss_max", pa.float64()),
        ("compare_loss_median", pa.float64()),
        ("epochs_to_threshold_median", pa.float64()),  # censored at epochs + 1
        ("n_reached", pa.int32()),
    ]
)
JOB_TABLES = {"members": RAW_MEMBERS_SCHEMA, "history": HISTORY_SCHEMA, "propagation": PROPAGATION_SCHEMA,
              "spectrum": SPECTRUM_SCHEMA}


# ------------------------------------------------------------------------- settings
def cells(cfg: Config) -> list[tuple[str, int, str]]:
    """(model, depth, activation) of every training job of the study (none when it is switched off)."""
    t = cfg.trainability
    if t is None:
        return []
    return [(m, d, a) for m in t.models for d in t.depths for a in t.activations]


def job_files(cfg: Config, table: str) -> list[str]:
    """The per-job files of one table (``members``, ``history``, ...) of every cell, in :func:`cells` order."""
    return [f"results/{STUDY}/{m}_L{d}_{a}/{table}.parquet" for m, d, a in cells(cfg)]


def model_spec(settings: TrainabilityTrainSettings, init: str, channels: int) -> ModelSpec:
    """The architecture of the members of one job initialised by ``init`` (``channels`` in and out)."""
    s = settings
    return ModelSpec(
        kind=s.model, n_input=channels, n_hidden=s.n, n_output=channels, depth=s.depth, width=s.width,
        activation=s.activation, tau=s.tau, dt=s.dt, substeps=s.substeps, init=init, initial_state=s.initial_state,
    )


def member_grid(settings: TrainabilityTrainSettings) -> pd.DataFrame:
    """The members of one job: init x seed, numbered 0.. (init-major)."""
    rows = [{"init": i, "seed": s} for i in settings.inits for s in settings.seeds]
    grid = pd.DataFrame(rows)
    grid.insert(0, "member", np.arange(len(grid)))
    return grid


def init_seed(settings: TrainabilityTrainSettings, init: str, seed: int) -> int:
    cell = f"{STUDY}/{settings.model}/L{settings.depth}/{settings.activation}/{init}"
    return derive_seed(settings.seed, seed, stable_id(cell))


def build_ensemble(settings: TrainabilityTrainSettings, x_train: Tensor, device, dtype) -> tuple[RecurrentEnsemble, pd.DataFrame]:
    """All members of one job in one ensemble: each init's members built by the model's own init rule
    (the critical rule takes the Jacobian at h0 with the mean training input ``x_train`` (B, T, I)).

    The ensemble's ``spec`` is that of the first init; the specs differ only in ``init``, which
    matters only when the parameters are drawn.
    """
    grid = member_grid(settings)
    mean_input, mean_first_input = input_means(x_train)
    parts = []
    for init, grp in grid.groupby("init", sort=False):
        spec = model_spec(settings, init, x_train.shape[-1])
        parts.append(RecurrentEnsemble(spec, [init_seed(settings, init, s) for s in grp["seed"]], device=device,
                                       dtype=dtype, mean_input=mean_input, mean_first_input=mean_first_input))
    grid["seed_init"] = [s for p in parts for s in p.seeds]
    return ff.concat_ensembles(parts), grid


# ------------------------------------------------------------------------- training
def train_job(settings: TrainabilityTrainSettings, data_path: str | Path, out: dict[str, str | Path],
              checkpoint_dir: str | Path | None = None, code: str = "") -> None:
    """Diagnose at init, then train, every member of one (model, depth, activation); write ``out[table]``."""
    params = settings.model_dump(mode="json")  # as the rule's params: checkpoints and provenance
    device, dtype = resolve_device(settings.device), DTYPES[settings.dtype]
    df = io.read_table(data_path)
    (xtr, ytr), (xte, yte) = ff.arrays(df, "train"), ff.arrays(df, "test")
    to = lambda a: torch.as_tensor(a, device=device, dtype=dtype)  # noqa: E731
    xtr, ytr, xte, yte = to(xtr), to(ytr), to(xte), to(yte)
    model, grid = build_ensemble(settings, xtr, device, dtype)
    e = model.n_members
    label = f"[trainability {settings.model} L={settings.depth} {settings.activation}] "
    logger.info("%s%d members (%s x seeds) on %s, %d epochs", label, e, "/".join(settings.inits), device,
                settings.epochs)

    # diagnostics at initialisation: the flow at h0 with the task's mean input, gradients on trials
    k = min(settings.diagnostic_trials, xtr.shape[0])
    xd, yd = xtr[:k], ytr[:k]
    with torch.no_grad():  # h0 averaged over the training trials (the critical rule's point)
        h0_mean = model.initial_state(xtr).mean(1)  # (E, N)
    spec_all = diagnostics.spectrum(model, h0=h0_mean, x=diagnostics.mean_input(xtr))  # (E, N)
    eta = spec_all.real.max(-1).values
    grad_norm = diagnostics.parameter_grad_norms(model, xd, yd)
    prop = diagnostics.state_gradient_norms(model, xd, yd, last_bin_only=True)  # (E, T)
    ratio = diagnostics.propagation_ratio(prop)
    init_train = evaluate_loss(model, xtr, ytr).cpu().numpy()
    init_test = evaluate_loss(model, xte, yte).cpu().numpy()
    logger.info("%sat init: eta_max %s", label, np.round(eta.cpu().numpy(), 4).tolist())

    fit_settings = FitSettings(
        epochs=settings.epochs, batch_size=settings.batch_size, lr=[settings.lr] * e,
        weight_decay=[settings.weight_decay] * e, seeds=[derive_seed(settings.seed, s, 1) for s in grid["seed"]],
        checkpoint_every=settings.checkpoint_every, select_every="epoch", shuffle=True,  # the study's protocol
    )
    ckpt = Path(checkpoint_dir) / "ensemble.pt" if checkpoint_dir else None
    res = fit(model, (xtr, ytr), (xte, yte), fit_settings, checkpoint=ckpt, fingerprint=io.job_fingerprint(params, data_path, code),
              label=label)

    keys = grid[["init", "seed", "member"]].assign(model=settings.model, depth=settings.depth,
                                                    activation=settings.activation)
    members = keys.assign(
        seed_init=grid["seed_init"], eta_max=eta.cpu().numpy(), grad_norm=grad_norm.cpu().numpy(),
        grad_ratio_first=ratio[:, 0].cpu().numpy(), initial_train_loss=init_train, initial_test_loss=init_test,
        zero_output_test_loss=yte.double().pow(2).mean().item(),
        status=res.status, diverged_epoch=res.diverged_epoch, best_epoch=res.best_epoch,
        best_test_loss=np.where(np.array(res.status) == "ok", res.best_test_loss, np.nan),
        n_params=model.member_parameter_count(), train_time_s=res.elapsed_s,
    )
    hist = pd.DataFrame(res.history)
    start = pd.DataFrame({"member": grid["member"], "epoch": 0, "train_loss": init_train, "test_loss": init_test,
                          "elapsed_s": 0.0})
    hist = pd.concat([start, hist], ignore_index=True).merge(keys, on="member")
    t = prop.shape[1]
    pr = pd.DataFrame({"member": np.repeat(grid["member"].to_numpy(), t), "bin": np.tile(np.arange(t), e),
                       "grad_norm": prop.cpu().numpy().ravel(), "ratio": ratio.cpu().numpy().ravel()})
    pr["lag"] = t - 1 - pr["bin"]
    pr = pr.merge(keys, on="member")
    n = spec_all.shape[1]
    sp = pd.DataFrame({"member": np.repeat(grid["member"].to_numpy(), n), "real": spec_all.real.cpu().numpy().ravel(),
                       "imag": spec_all.imag.cpu().numpy().ravel()}).merge(keys, on="member")
    prov = io.provenance(params, device=device)
    for name, table in {"members": members, "history": hist, "propagation": pr, "spectrum": sp}.items():
        schema = JOB_TABLES[name]
        io.write_table(table.sort_values(["member"], kind="stable")[schema.names], out[name], schema, prov)
