"""The real-world benchmarks, one function per workflow step: prepare, train (+ test), summarise.

Three standard continuous-time benchmarks (SPEC "Real-world tasks"; protocols in
docs/datasets.md, project choices in docs/realworld.md; per-dataset facts in the registry
:data:`gnode.datasets.registry.DATASETS`):

- ``walker2d``: per-step regression of the next Walker2d state from irregularly sampled
  windows (Lechner & Hasani 2020); metric: test MSE on the raw state.
- ``character_trajectories``: classification of pen trajectories with a fraction of the
  points dropped (Kidger et al. 2020); metric: test accuracy.
- ``speech_commands``: classification of ten words from 161 x 20 MFCC frames; test accuracy.

Every model sees the same sequences. nODE/gnODE integrate each bin over its actual elapsed time
``dt`` (Euler, ``alpha = dt / (substeps tau)`` per sub-step); RNN, GRU and mGRU get ``dt`` as
an extra input channel instead. The readout is linear: after every bin for regression, at the
last valid bin for classification. Hidden sizes are chosen per model so that every model has
the task's parameter budget (within its tolerance). All seeds of a (task, model) train together
as one ensemble; the best parameters are chosen on the validation set with early stopping, and
the test set is evaluated once, at those parameters.

Tables (Parquet; schemas below):
- data: one row per sequence (split, item, label, length) with the arrays as fixed-size lists
  (``x``: T*I floats, ``dt``: T floats, ``y``: T*O floats for regression), see :func:`read_data`;
- history: one row per (seed, epoch) with train and validation loss (and accuracy);
- evaluation: one row per (task, model, seed) with the test metric at the best parameters;
- summary: one row per (task, model): mean and standard deviation over seeds;
- claims: gnODE vs nODE per task (:data:`gnode.claims.CLAIMS_SCHEMA`).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from gnode import io, models
from gnode.config import Config, RealworldDataSettings, RealWorldTask, RealworldTrainSettings
from gnode.datasets.registry import SPLITS, Split, elapsed_from_times, get_spec  # noqa: F401 (re-exported)
from gnode.models import MODELS, ModelSpec, RecurrentEnsemble, save_model
from gnode.runtime import DTYPES, derive_seed, resolve_device, stable_id
from gnode.training import FitResult, FitSettings, SequenceData, fit

logger = logging.getLogger(__name__)

HISTORY_SCHEMA = pa.schema(
    [
        ("task", pa.string()),
        ("model", pa.string()),
        ("seed", pa.int32()),
        ("epoch", pa.int32()),
        ("train_loss", pa.float64()),
        ("val_loss", pa.float64()),
        ("train_accuracy", pa.float64()),
        ("val_accuracy", pa.float64()),
        ("elapsed_s", pa.float64()),
    ]
)
EVAL_SCHEMA = pa.schema(
    [
        ("task", pa.string()),
        ("dataset", pa.string()),
        ("model", pa.string()),
        ("seed", pa.int32()),
        ("metric", pa.string()),  # mse (lower is better) | accuracy (higher is better)
        ("test_metric", pa.float64()),  # the metric on the test set at the best parameters
        ("test_loss", pa.float64()),  # MSE or cross-entropy
        ("test_accuracy", pa.float64()),  # NaN for regression
        ("val_loss", pa.float64()),
        ("val_accuracy", pa.float64()),
        ("status", pa.string()),
        ("best_epoch", pa.int32()),
        ("stopped_epoch", pa.int32()),  # -1: ran all epochs
        ("n_hidden", pa.int32()),
        ("width", pa.int32()),  # flow width M (0 for discrete models)
        ("n_params", pa.int64()),
        ("budget", pa.int64()),
        ("n_train", pa.int32()),
        ("train_time_s", pa.float64()),
    ]
)


# ------------------------------------------------------------------------------ data
def data_settings(cfg: Config, task: str) -> RealworldDataSettings:
    """Everything a task's prepared data depends on (the data rule's params)."""
    t = cfg.realworld.tasks[task]
    return RealworldDataSettings(
        task=task, dataset=t.dataset, seed=cfg.seed, drop_rate=t.drop_rate, max_per_class=t.max_per_class,
        limit=t.limit, standardize=t.standardize, source=getattr(cfg.data, t.dataset), cache_dir=cfg.data.cache_dir,
    )


def _subset(split: Split, n: int | None, rng: np.random.Generator) -> Split:
    """A seeded random subset of ``n`` sequences, in their original order (all if n is None)."""
    s = len(split.x)
    if n is None or n >= s:
        return split
    keep = np.sort(rng.choice(s, n, replace=False))
    return Split(split.x[keep], split.dt[keep], split.lengths[keep], split.y[keep])


def load_splits(settings: RealworldDataSettings) -> tuple[dict[str, Split], dict]:
    """Resolve (local copy first, else download) and load a task's data as :class:`Split` s.

    Returns the splits (after the seeded subsets of ``limit``, then the dataset's
    standardisation if the task asks for it) and metadata (kind, time unit, classes, input
    statistics).
    """
    from gnode.datasets import resolve_dataset

    name, src = settings.dataset, settings.source
    spec = get_spec(name)
    root = resolve_dataset(
        name, local_dirs=list(src.local_dirs), url=spec.url, known_hash=spec.known_hash,
        cache_dir=settings.cache_dir, download=src.download,
    )
    meta: dict = {"dataset": name, "kind": spec.kind, "time_unit": spec.time_unit, "root": str(root)}
    seed = derive_seed(settings.seed, stable_id(settings.task))
    splits = spec.splits(root, settings, seed, meta)
    rng = np.random.default_rng(seed)
    splits = {s: _subset(splits[s], getattr(settings.limit, s), rng) for s in SPLITS}
    if spec.standardise is not None and settings.standardize:
        spec.standardise(splits, meta)
    return splits, meta


def data_schema(seq_len: int, n_input: int, n_output: int) -> pa.Schema:
    """The prepared-data table: one row per sequence; arrays flattened to fixed-size lists.

    ``n_output = 0`` (classification) leaves out the ``y`` column: ``label`` holds the class.
    """
    fields = [
        ("split", pa.string()),
        ("item", pa.int32()),  # position within its split
        ("label", pa.int32()),  # class index (-1 for regression)
        ("length", pa.int32()),  # valid bins
        ("x", pa.list_(pa.float32(), seq_len * n_input)),
        ("dt", pa.list_(pa.float32(), seq_len)),
    ]
    if n_output:
        fields.append(("y", pa.list_(pa.float32(), seq_len * n_output)))
    return pa.schema(fields)


def _fixed_list(a: np.ndarray) -> pa.FixedSizeListArray:
    a = np.ascontiguousarray(a, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), int(np.prod(a.shape[1:])))


def write_data(splits: dict[str, Split], meta: dict, out: str | Path, prov: dict) -> None:
    """Write prepared splits as one Parquet table (:func:`data_schema`) with shapes in its metadata."""
    first = splits["train"]
    regression = first.y.ndim == 3
    seq_len, n_input = first.x.shape[1:]
    n_output = first.y.shape[-1] if regression else 0
    schema = data_schema(seq_len, n_input, n_output)
    parts = []
    for s in SPLITS:
        sp = splits[s]
        n = len(sp.x)
        cols = {
            "split": pa.array([s] * n, pa.string()),
            "item": pa.array(np.arange(n, dtype=np.int32)),
            "label": pa.array(np.full(n, -1, np.int32) if regression else sp.y.astype(np.int32)),
            "length": pa.array(sp.lengths.astype(np.int32)),
            "x": _fixed_list(sp.x),
            "dt": _fixed_list(sp.dt),
        }
        if regression:
            cols["y"] = _fixed_list(sp.y)
        parts.append(pa.table(cols, schema=schema))
    table = pa.concat_tables(parts)
    shape = {"seq_len": int(seq_len), "n_input": int(n_input), "n_output": int(n_output)}
    record = dict(prov) | {"data": meta | shape}
    table = table.replace_schema_metadata({io.PROVENANCE_KEY: json.dumps(record, sort_keys=True, default=str).encode()})
    with io.atomic_path(out) as tmp:
        pq.write_table(table, tmp, write_page_checksum=True)


def prepare_data(settings: RealworldDataSettings, out: str | Path) -> None:
    """Load one task's data (local copy or download) and write it as the prepared table."""
    splits, meta = load_splits(settings)
    logger.info("%s: %s sequences (train/val/test)", settings.task, "/".join(str(len(splits[s].x)) for s in SPLITS))
    write_data(splits, meta, out, io.provenance(settings.model_dump(mode="json")))


def read_data(path: str | Path) -> tuple[dict[str, Split], dict]:
    """The splits of a prepared table and its metadata (``data`` entry of the provenance)."""
    table = io.read_arrow(path)  # verified: recorded SHA-256 and page checksums
    meta = io.read_provenance(path)["data"]
    t, i, o = meta["seq_len"], meta["n_input"], meta["n_output"]
    split_col = table.column("split").to_numpy(zero_copy_only=False)

    def arr(name, shape):
        flat = table.column(name).combine_chunks().flatten().to_numpy()
        return flat.reshape(len(table), *shape)

    x, dt = arr("x", (t, i)), arr("dt", (t,))
    y = arr("y", (t, o)) if o else table.column("label").to_numpy().astype(np.int64)
    lengths = table.column("length").to_numpy().astype(np.int64)
    out = {}
    for s in SPLITS:
        m = split_col == s
        out[s] = Split(x[m], dt[m], lengths[m], y[m])
    return out, meta


# --------------------------------------------------------------------------- models
def input_channels(kind: str, n_features: int) -> int:
    """Inputs of a model: the features, plus the elapsed time for discrete-time models."""
    return n_features if MODELS[kind].continuous else n_features + 1


def model_spec(task: RealWorldTask, kind: str, n_features: int, n_output: int, n_hidden: int) -> ModelSpec:
    """The architecture of one model of a task at hidden size ``n_hidden``.

    The time unit is the data's own (``spec.dt = 1``): a bin of elapsed time ``dt`` gets
    ``substeps`` Euler steps of ``alpha = dt / (substeps tau)``.
    """
    continuous = MODELS[kind].continuous
    f, g = task.flow, task.integration
    return ModelSpec(
        kind=kind,
        n_input=input_channels(kind, n_features),
        n_hidden=n_hidden,
        n_output=n_output,
        depth=f.depth,
        width=max(1, round(f.width_factor * n_hidden)) if continuous else 1,
        activation=f.activation,
        tau=g.tau,
        dt=1.0,
        substeps=g.substeps,
        init=g.init if continuous else "xavier",
        initial_state="zeros",
    )


def parameter_count(spec: ModelSpec) -> int:
    """Trainable parameters of one model of ``spec`` (a test checks it against
    :meth:`RecurrentEnsemble.member_parameter_count`)."""
    return models.parameter_count(spec)


def matched_size(task: RealWorldTask, kind: str, n_features: int, n_output: int, max_hidden: int = 4096) -> ModelSpec:
    """The spec whose parameter count is closest to ``task.budget`` (ties: the smaller N).

    Raises:
        ValueError: when even the closest count is off by more than ``task.tolerance``.
    """
    best, best_gap = None, math.inf
    for n in range(1, max_hidden + 1):
        spec = model_spec(task, kind, n_features, n_output, n)
        count = parameter_count(spec)
        gap = abs(count - task.budget)
        if gap < best_gap:
            best, best_gap = spec, gap
        if count > task.budget:  # counts grow with N: nothing closer beyond here
            break
    if best_gap > task.tolerance * task.budget:
        raise ValueError(
            f"{kind}: no hidden size gives {task.budget} parameters within {task.tolerance:.0%} "
            f"(closest {parameter_count(best)} at N={best.n_hidden}); change realworld.tasks.<task>.budget"
        )
    return best


def task_shape(dataset: str) -> tuple[int, int]:
    """(features per bin, outputs) of a dataset: regression outputs the state, classification logits."""
    return get_spec(dataset).shape


# ------------------------------------------------------------------------- training
def to_sequence_data(split: Split, kind: str, device, dtype, weights=None) -> SequenceData:
    """Tensors for :func:`gnode.training.fit`: continuous models get ``dt`` to integrate over,
    discrete ones get it as a last input channel. ``weights`` (O,): output weights of the loss."""
    continuous = MODELS[kind].continuous
    x = split.x if continuous else np.concatenate([split.x, split.dt[..., None]], axis=-1)
    to = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=device, dtype=dtype)  # noqa: E731
    y = torch.as_tensor(split.y, device=device) if split.y.ndim == 1 else to(split.y)
    return SequenceData(
        x=to(x),
        y=y,
        dt=to(split.dt) if continuous else None,
        lengths=torch.as_tensor(split.lengths, device=device),
        weights=None if weights is None else to(weights),
    )


def train_job(
    settings: RealworldTrainSettings,
    data_path: str | Path,
    out_model: str | Path,
    out_history: str | Path,
    out_eval: str | Path,
    checkpoint_dir: str | Path | None = None,
    code: str = "",
) -> pd.DataFrame:
    """Train every seed of one (task, model) as an ensemble; evaluate each on the test set.

    ``settings.spec`` is the model at the task's parameter budget (:func:`matched_size`, chosen
    when the job is planned). Returns the evaluation table.
    """
    params = settings.model_dump(mode="json")  # as the rule's params: checkpoints and provenance
    task, model, spec, seeds = settings.task, settings.model, settings.spec, list(settings.seeds)
    device, dtype = resolve_device(settings.device), DTYPES[settings.dtype]
    splits, meta = read_data(data_path)
    dataset = get_spec(meta["dataset"])
    weights = meta.get("output_weights")  # standardised walker2d targets: the loss is the raw MSE
    data = {s: to_sequence_data(splits[s], model, device, dtype, weights) for s in SPLITS}
    _check_data(data, meta, spec, data_path)
    init_seeds = [derive_seed(settings.seed, s, stable_id(f"realworld/{task}/{model}")) for s in seeds]
    ens = RecurrentEnsemble(spec, init_seeds, device=device, dtype=dtype)
    label = f"[{task} {model} N={spec.n_hidden}] "
    logger.info(
        "%s%d seeds, %d parameters (budget %d), %d train / %d val / %d test sequences, on %s",
        label, len(seeds), ens.member_parameter_count(), settings.budget,
        *(len(data[s]) for s in SPLITS), device,
    )
    ckpt = Path(checkpoint_dir) / "fit.pt" if checkpoint_dir else None
    res = fit(ens, data["train"], data["test"], _fit_settings(settings), val=data["val"], task=dataset.kind,
              checkpoint=ckpt, fingerprint=io.job_fingerprint(params, data_path, code), label=label)
    ens.load_state_dict(res.best_state)
    save_model(ens, out_model, extra={"task": task, "model": model, "seeds": seeds, "best_epoch": res.best_epoch})

    prov = io.provenance(params, device=device)
    io.write_table(_history_table(res, task, model, seeds), out_history, HISTORY_SCHEMA, prov)
    ev = _evaluation_table(res, settings, meta, dataset.metric, ens.member_parameter_count(), len(data["train"]))
    io.write_table(ev, out_eval, EVAL_SCHEMA, prov)
    for _, r in ev.iterrows():
        logger.info("%sseed %d: test %s %.4g (best epoch %d, %s)", label, r["seed"], dataset.metric,
                    r["test_metric"], r["best_epoch"], r["status"])
    return ev


def _check_data(data: dict[str, SequenceData], meta: dict, spec: ModelSpec, data_path) -> None:
    """ValueError naming the file when a split is empty or the data does not fit the model."""
    empty = [s for s in SPLITS if len(data[s]) == 0]
    if empty:
        raise ValueError(f"{data_path}: no sequences in split(s) {empty} (too few files or too small a limit)")
    if data["train"].x.shape[-1] != spec.n_input:
        raise ValueError(f"{data_path}: {data['train'].x.shape[-1]} input channels, the model expects {spec.n_input}")
    if len(meta.get("classes", ())) > spec.n_output:
        raise ValueError(f"{data_path}: {len(meta['classes'])} classes, the readout has {spec.n_output}")


def _fit_settings(settings: RealworldTrainSettings) -> FitSettings:
    """One setting for every seed; the best epoch by validation loss, early stopping on it."""
    n = len(settings.seeds)
    return FitSettings(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=[settings.lr] * n,
        weight_decay=[settings.weight_decay] * n,
        seeds=[derive_seed(settings.seed, s, 1) for s in settings.seeds],
        grad_clip=settings.grad_clip,
        checkpoint_every=settings.checkpoint_every,
        patience=settings.patience,
        monitor="loss",
        schedule=settings.schedule,
        min_lr_factor=settings.min_lr_factor,
        select_every="epoch",  # on the validation set
        shuffle=True,
    )


def _history_table(res: FitResult, task: str, model: str, seeds: list[int]) -> pd.DataFrame:
    """One row per seed and epoch (:data:`HISTORY_SCHEMA`)."""
    hist = pd.DataFrame(res.history)
    for col in ("train_accuracy", "val_accuracy"):
        if col not in hist:
            hist[col] = math.nan
    hist["seed"] = [seeds[m] for m in hist.pop("member")]
    hist.insert(0, "task", task)
    hist.insert(1, "model", model)
    return hist.sort_values(["seed", "epoch"])


def _evaluation_table(res: FitResult, settings: RealworldTrainSettings, meta: dict, metric: str, n_params: int,
                      n_train: int) -> pd.DataFrame:
    """One row per seed (:data:`EVAL_SCHEMA`); a diverged seed's test values are NaN."""
    spec = settings.spec
    test_metric = {"mse": res.best_test_loss, "accuracy": res.test_accuracy}[metric]
    ev = pd.DataFrame(
        {
            "task": settings.task,
            "dataset": meta["dataset"],
            "model": settings.model,
            "seed": list(settings.seeds),
            "metric": metric,
            "test_metric": test_metric,
            "test_loss": res.best_test_loss,
            "test_accuracy": res.test_accuracy,
            "val_loss": res.best_val_loss,
            "val_accuracy": res.best_val_accuracy,
            "status": res.status,
            "best_epoch": res.best_epoch,
            "stopped_epoch": res.stopped_epoch,
            "n_hidden": spec.n_hidden,
            "width": spec.width if spec.continuous else 0,
            "n_params": n_params,
            "budget": settings.budget,
            "n_train": n_train,
            "train_time_s": res.elapsed_s,
        }
    )
    bad = ev["status"] != "ok"
    ev.loc[bad, ["test_metric", "test_loss", "test_accuracy"]] = math.nan
    return ev
