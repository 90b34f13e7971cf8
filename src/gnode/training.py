"""Training of model ensembles: AdamW, BPTT, per-member hyper-parameters.

All members of a :class:`~gnode.models.RecurrentEnsemble` train at once. Member ``e`` has its
own learning rate, weight decay and data-order seed, its own best parameters and its own status
(a member whose loss becomes NaN/Inf is stopped and marked ``diverged``; the others go on).
Training member ``e`` alone gives the same result up to float rounding.

Two tasks (``fit(..., task=...)``):

- ``regression`` (default): MSE between the readout after every bin and the targets
  (B, T, O); bins at or after a sequence's ``lengths`` are left out.
- ``classification``: cross-entropy of the readout at the *last valid bin* of each sequence
  (``lengths - 1``, or the last bin) against class labels (B,); accuracy is reported too.

Data are ``(x, y)`` tuples or :class:`SequenceData` (which adds per-sample bin widths ``dt``
for irregular sampling, passed to the model, and ``lengths`` for variable-length sequences).
Without a validation set the best parameters are chosen by test loss (the flip-flop protocol);
``settings.select_every`` checks it after every epoch (ours) or after every optimiser step
(the authors'), and ``settings.shuffle`` draws the mini-batches in a new random order each
epoch (ours) or takes them in the data's order (the authors'). With ``val=`` they are chosen on
the validation set, ``settings.patience`` stops a member after
that many epochs without improvement (early stopping), and the test set is evaluated once, at
each member's best parameters.

Members sharing one ensemble share the batch size; train different batch sizes as separate
ensembles.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as nnf
from torch import Tensor

from gnode.models import RecurrentEnsemble

logger = logging.getLogger(__name__)

STATUS_OK, STATUS_DIVERGED = "ok", "diverged"
TASKS = ("regression", "classification")
MONITORS = ("loss", "accuracy")
SCHEDULES = ("constant", "cosine")
SELECT_EVERY = ("epoch", "iteration")


@dataclass
class SequenceData:
    """A data set for :func:`fit`: inputs, targets, and optional irregular time and lengths.

    Attributes:
        x: (B, T, I) inputs.
        y: (B, T, O) float targets (regression) or (B,) int64 class labels (classification).
        dt: optional (B, T) bin widths in the model's time units (irregular sampling; the
            model integrates bin ``t`` over ``dt[:, t]``). None: every bin is ``spec.dt`` wide.
        lengths: optional (B,) int64 valid bins per sequence (1..T); None: all T bins.
        weights: optional (O,) weights of the output channels in the regression loss: with
            targets standardised as ``(y - mean) / std``, ``std**2`` makes the loss the MSE of
            the raw targets. Shared by all samples (not indexed by :meth:`take`).
    """

    x: Tensor
    y: Tensor
    dt: Tensor | None = None
    lengths: Tensor | None = None
    weights: Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, idx) -> "SequenceData":
        """The samples ``idx`` (a slice, or an (E, b) index tensor: one batch per member)."""
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return SequenceData(self.x[idx], self.y[idx], pick(self.dt), pick(self.lengths), self.weights)


def as_data(data) -> SequenceData:
    """``(x, y)`` or :class:`SequenceData` -> :class:`SequenceData`."""
    if isinstance(data, SequenceData):
        return data
    x, y = data
    return SequenceData(x, y)


@dataclass
class FitSettings:
    """What :func:`fit` needs besides the model and the data; lists have one entry per member."""

    epochs: int
    batch_size: int
    lr: Sequence[float]
    weight_decay: Sequence[float]
    seeds: Sequence[int]  # data order
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float | None = None  # max gradient norm per member
    checkpoint_every: int = 0  # epochs; 0 = no checkpoints
    loss_mask_bins: int = 0  # ignore the first bins in the loss (0: all bins count)
    patience: int = 0  # with a validation set: stop a member after this many epochs without improvement (0: never)
    monitor: str = "loss"  # validation metric that picks the best parameters: loss, or accuracy (classification)
    schedule: str = "constant"  # learning rate per epoch: constant, or cosine decay to lr * min_lr_factor
    min_lr_factor: float = 0.0
    # check the selection set (test, or val) after every epoch, or after every optimiser step
    # (the authors': one more forward pass over that set per step)
    select_every: str = "epoch"
    shuffle: bool = True  # a new random batch order each epoch (per member); False: the data's order

    def __post_init__(self):
        if self.select_every not in SELECT_EVERY:
            raise ValueError(f"select_every={self.select_every!r} is not one of {list(SELECT_EVERY)}")
        if not isinstance(self.shuffle, bool):
            raise ValueError(f"shuffle must be a bool, got {self.shuffle!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor={self.monitor!r} is not one of {list(MONITORS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not one of {list(SCHEDULES)}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of the base learning rates during ``epoch`` (1-based)."""
        if self.schedule == "constant" or self.epochs <= 1:
            return 1.0
        progress = (epoch - 1) / (self.epochs - 1)
        return self.min_lr_factor + (1 - self.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass
class FitResult:
    """History rows, final status and the best parameters of each member.

    Without a validation set the best parameters are those of the lowest test loss and
    ``best_test_loss`` is that loss. With one, they are chosen on the validation set
    (``best_val_loss``, ``best_val_accuracy``) and ``best_test_loss``/``test_accuracy`` are
    the test set's at those parameters. Accuracies are NaN for regression.
    """

    history: list[dict]
    best_state: dict[str, Tensor]
    best_epoch: list[int]  # the epoch in which the best parameters were reached (0: none)
    best_test_loss: list[float]
    status: list[str]
    diverged_epoch: list[int]
    elapsed_s: float
    resumed_from_epoch: int = 0
    extra: dict = field(default_factory=dict)
    test_accuracy: list[float] = field(default_factory=list)
    best_val_loss: list[float] = field(default_factory=list)
    best_val_accuracy: list[float] = field(default_factory=list)
    stopped_epoch: list[int] = field(default_factory=list)  # early stopping (-1: ran all epochs)
    best_iteration: list[int] = field(default_factory=list)  # optimiser steps up to the best parameters (0: none)


class StackedAdamW:
    """AdamW on stacked parameters (E, ...) with one lr and weight decay per member.

    The arithmetic is that of ``torch.optim.AdamW`` (decoupled weight decay, bias correction);
    torch's optimiser cannot hold per-member hyper-parameters inside one tensor, this one does.
    """

    def __init__(self, params: Sequence[Tensor], lr: Tensor, weight_decay: Tensor, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)
        self.lr, self.wd = lr, weight_decay  # (E,)
        self.betas, self.eps = betas, eps
        self.step_count = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, active: Tensor) -> None:
        """Update the members where ``active`` (E,) is True; the others stay unchanged."""
        self.step_count += 1
        b1, b2 = self.betas
        bc1 = 1 - b1**self.step_count
        bc2 = 1 - b2**self.step_count
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            lr, wd, act = self.lr.view(shape), self.wd.view(shape), active.view(shape)
            g = torch.where(act, p.grad, torch.zeros_like(p.grad))
            m.copy_(torch.where(act, m * b1 + g * (1 - b1), m))
            v.copy_(torch.where(act, v * b2 + g * g * (1 - b2), v))
            denom = v.sqrt() / math.sqrt(bc2) + self.eps
            new = p * (1 - lr * wd) - (lr / bc1) * m / denom
            p.copy_(torch.where(act, new, p))

    def state_dict(self) -> dict:
        return {"step": self.step_count, "m": self.m, "v": self.v}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = state["step"]
        for dst, src in zip(self.m + self.v, state["m"] + state["v"]):
            dst.copy_(src)


def member_mse(pred: Tensor, target: Tensor, mask_bins: int = 0) -> Tensor:
    """Mean squared error per member: (E, B, T, O) x (E|-, B, T, O) -> (E,)."""
    err = (pred - target)[:, :, mask_bins:]
    return err.pow(2).flatten(1).mean(1)


def clip_member_grads(params: Sequence[Tensor], max_norm: float) -> Tensor:
    """Scale each member's gradient to norm <= max_norm; returns the norms before (E,)."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view((-1,) + (1,) * (g.dim() - 1)))
    return norms


def valid_bins(lengths: Tensor, n_bins: int) -> Tensor:
    """(..., T) bool mask of the bins before ``lengths`` (...,)."""
    return torch.arange(n_bins, device=lengths.device) < lengths.unsqueeze(-1)


def last_valid(pred: Tensor, lengths: Tensor | None) -> Tensor:
    """Readout at each sequence's last valid bin: (E, B, T, C) -> (E, B, C).

    ``lengths`` (B,) or (E, B) int; None takes the last bin.
    """
    if lengths is None:
        return pred[:, :, -1]
    e, b, _, c = pred.shape
    last = (lengths.long() - 1).expand(e, b) if lengths.dim() == 1 else lengths.long() - 1
    return pred.gather(2, last.view(e, b, 1, 1).expand(e, b, 1, c)).squeeze(2)


def _labels(y: Tensor, e: int) -> Tensor:
    """Class labels (B,) or (E, B) -> (E, B) int64."""
    return (y.expand(e, -1) if y.dim() == 1 else y).long()


def member_sums(pred: Tensor, data: SequenceData, task: str, mask_bins: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Per-member sums over a batch: (loss sum, number of loss terms, correct predictions), each (E,).

    Regression: squared errors over valid bins (after ``mask_bins``) and channels, each channel
    times ``data.weights`` when given.
    Classification: cross-entropy per sequence at its last valid bin; correct = argmax matches.
    """
    e = pred.shape[0]
    if task == "classification":
        logits = last_valid(pred, data.lengths)  # (E, B, C)
        labels = _labels(data.y, e)
        ce = nnf.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(e, -1)
        correct = (logits.argmax(-1) == labels).sum(1)
        n = torch.full((e,), ce.shape[1], device=pred.device, dtype=pred.dtype)
        return ce.sum(1), n, correct
    if task != "regression":
        raise ValueError(f"task={task!r} is not one of {list(TASKS)}")
    sq = (pred - data.y)[:, :, mask_bins:].pow(2)  # (E, B, T', O)
    if data.weights is not None:
        sq = sq * data.weights
    if data.lengths is None:
        n = torch.full((e,), sq[0].numel(), device=pred.device, dtype=pred.dtype)
        return sq.flatten(1).sum(1), n, torch.zeros(e, device=pred.device)
    mask = valid_bins(data.lengths, pred.shape[2])[..., mask_bins:]  # (B|E, B, T')
    mask = mask.expand(e, *mask.shape[-2:]).unsqueeze(-1).to(sq.dtype)
    n = mask.flatten(1).sum(1) * sq.shape[-1]
    return (sq * mask).flatten(1).sum(1), n, torch.zeros(e, device=pred.device)


def member_loss(pred: Tensor, data: SequenceData, task: str = "regression", mask_bins: int = 0) -> Tensor:
    """Per-member mean loss of a batch, (E,): MSE (regression) or cross-entropy (classification).

    Regression without ``lengths`` and ``weights`` is exactly :func:`member_mse`.
    """
    if task == "regression" and data.lengths is None and data.weights is None:
        return member_mse(pred, data.y, mask_bins)
    total, n, _ = member_sums(pred, data, task, mask_bins)
    return total / n.clamp(min=1)


@torch.no_grad()
def evaluate(
    model: RecurrentEnsemble, data, *, task: str = "regression", batch: int = 1000, mask_bins: int = 0
) -> dict[str, Tensor]:
    """Per-member metrics over a whole set, in chunks of ``batch`` sequences.

    Returns ``{"loss": (E,) float64, "accuracy": (E,) float64}``: mean loss per loss term (MSE
    per valid bin and channel; cross-entropy per sequence) and the fraction of sequences
    classified correctly (NaN for regression).
    """
    data = as_data(data)
    e, dev = model.n_members, data.x.device
    loss = torch.zeros(e, device=dev, dtype=torch.float64)
    count = torch.zeros(e, device=dev, dtype=torch.float64)
    correct = torch.zeros(e, device=dev, dtype=torch.float64)
    for i in range(0, len(data), batch):
        part = data.take(slice(i, i + batch))
        pred, _ = model(part.x, dt=part.dt)
        s, n, c = member_sums(pred, part, task, mask_bins)
        loss += s.double()
        count += n.double()
        correct += c.double()
    acc = correct / len(data) if task == "classification" else torch.full_like(loss, math.nan)
    return {"loss": loss / count.clamp(min=1), "accuracy": acc}


@torch.no_grad()
def evaluate_loss(model: RecurrentEnsemble, x: Tensor, y: Tensor, *, batch: int = 1000, mask_bins: int = 0) -> Tensor:
    """Per-member MSE over a whole set (B, T, I) / (B, T, O), in chunks of ``batch`` trials."""
    total = torch.zeros(model.n_members, device=x.device, dtype=torch.float64)
    for i in range(0, x.shape[0], batch):
        pred, _ = model(x[i : i + batch])
        n = pred.shape[1]
        total += member_mse(pred, y[i : i + batch], mask_bins).double() * n
    return total / x.shape[0]


def _checkpoint_state(model, opt, epoch, gens, track: dict, history, fingerprint):
    return {
        "fingerprint": fingerprint,
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "opt": {"step": opt.step_count, "m": [t.cpu() for t in opt.m], "v": [t.cpu() for t in opt.v]},
        "generators": [g.get_state() for g in gens],
        "best": {k: v.cpu() for k, v in track["best"].items()},
        **{k: v for k, v in track.items() if k != "best"},
        "history": history,
    }


def _evaluate(model: RecurrentEnsemble, data: SequenceData, task: str, mask_bins: int) -> tuple[list, list]:
    """(loss, accuracy) per member as lists; the plain MSE path is :func:`evaluate_loss` itself."""
    if task == "regression" and data.dt is None and data.lengths is None and data.weights is None:
        loss = evaluate_loss(model, data.x, data.y, mask_bins=mask_bins).tolist()
        return loss, [math.nan] * model.n_members
    out = evaluate(model, data, task=task, mask_bins=mask_bins)
    return out["loss"].tolist(), out["accuracy"].tolist()


def fit(
    model: RecurrentEnsemble,
    train,
    test,
    settings: FitSettings,
    *,
    val=None,
    task: str = "regression",
    checkpoint: str | os.PathLike | None = None,
    fingerprint: str = "",
    on_epoch: Callable[[dict], None] | None = None,
    label: str = "",
) -> FitResult:
    """Train all members of ``model`` with AdamW, backpropagating through time.

    Args:
        model: the ensemble, trained in place (its final parameters are those of the last
            epoch it trained; the best ones are in the result).
        train, test: ``(inputs (B, T, I), targets)`` or :class:`SequenceData` on the model's
            device; targets (B, T, O) for regression, (B,) labels for classification.
        settings: epochs, batch size, per-member lr, weight decay and data-order seeds, and
            early stopping (``patience``, ``monitor``) and the lr ``schedule``.
        val: optional validation set. Given, it picks the best parameters and drives early
            stopping, and ``test`` is evaluated once at the best parameters; otherwise the
            best parameters are those of the lowest test loss, evaluated every epoch or every
            optimiser step (``settings.select_every``).
        task: ``regression`` (MSE on every valid bin) or ``classification`` (cross-entropy at
            the last valid bin).
        checkpoint: a file to save to every ``settings.checkpoint_every`` epochs (atomically) and
            to resume from when it exists with the same ``fingerprint``.
        on_epoch: called with a summary dict after each epoch (progress reporting).

    Returns:
        a :class:`FitResult`; ``history`` has one row per member and epoch trained, with
        ``train_loss`` and ``test_loss`` (``val_loss`` instead when ``val`` is given) and, for
        classification, ``train_accuracy`` and ``test_accuracy``/``val_accuracy``.
    """
    from gnode.io import atomic_path

    if task not in TASKS:
        raise ValueError(f"task={task!r} is not one of {list(TASKS)}")
    if settings.monitor == "accuracy" and task != "classification":
        raise ValueError("monitor='accuracy' needs task='classification'")
    if settings.patience and val is None:
        raise ValueError("early stopping (patience > 0) needs a validation set (val=...), not the test set")
    e = model.n_members
    for key in ("lr", "weight_decay", "seeds"):
        if len(getattr(settings, key)) != e:
            raise ValueError(f"settings.{key} has {len(getattr(settings, key))} entries for {e} members")
    train, test = as_data(train), as_data(test)
    val = as_data(val) if val is not None else None
    select, sel = (val, "val") if val is not None else (test, "test")
    classify = task == "classification"
    dev, n_train = train.x.device, len(train)
    bs = min(settings.batch_size, n_train)
    params = list(model.parameters())
    base_lr = torch.tensor(settings.lr, device=dev, dtype=params[0].dtype)
    opt = StackedAdamW(
        params,
        base_lr.clone(),
        torch.tensor(settings.weight_decay, device=dev, dtype=params[0].dtype),
        settings.betas,
        settings.eps,
    )
    # one CPU generator per member: the data order does not depend on the device or on E
    gens = [torch.Generator().manual_seed(int(s)) for s in settings.seeds]
    # per-member bookkeeping; "score" is the selection criterion, lower is better
    track = {
        "best": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "best_epoch": [0] * e,
        "best_iteration": [0] * e,
        "best_loss": [math.inf] * e,
        "best_accuracy": [math.nan] * e,
        "best_score": [math.inf] * e,
        "status": [STATUS_OK] * e,
        "diverged_epoch": [-1] * e,
        "wait": [0] * e,
        "stopped_epoch": [-1] * e,
    }
    history: list[dict] = []
    start_epoch = 0

    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            opt.load_state_dict({k: state["opt"][k] for k in ("step", "m", "v")})
            for g, s in zip(gens, state["generators"]):
                g.set_state(s)
            for k in track:
                if k == "best":
                    track[k] = {n: v.to(dev) for n, v in state["best"].items()}
                elif k in state:
                    track[k] = state[k]
            if "best_score" not in state:  # a checkpoint of the test-loss-only version
                track["best_score"] = list(track["best_loss"])
            history, start_epoch = state["history"], state["epoch"]
            logger.info("%sresumed from checkpoint %s at epoch %d", label, ckpt, start_epoch)
        else:
            logger.warning("%signoring checkpoint %s: it belongs to another configuration", label, ckpt)

    best, status, stopped = track["best"], track["status"], track["stopped_epoch"]
    per_step = settings.select_every == "iteration"

    @torch.no_grad()
    def consider(sel_loss: list, sel_acc: list, epoch: int, running: list, improved: list) -> None:
        """Keep each running member's parameters if they beat its best score so far."""
        for m in range(e):
            if status[m] == STATUS_OK and not math.isfinite(sel_loss[m]):
                status[m], track["diverged_epoch"][m] = STATUS_DIVERGED, epoch
            if status[m] != STATUS_OK or not running[m]:
                continue
            score = -sel_acc[m] if settings.monitor == "accuracy" else sel_loss[m]
            if score < track["best_score"][m]:
                track["best_score"][m], track["best_epoch"][m] = score, epoch
                track["best_iteration"][m] = opt.step_count
                track["best_loss"][m], track["best_accuracy"][m] = sel_loss[m], sel_acc[m]
                improved[m] = True
                for k, v in model.state_dict().items():
                    best[k][m] = v[m]

    t0 = time.perf_counter()
    elapsed_before = history[-1]["elapsed_s"] if history else 0.0
    for epoch in range(start_epoch + 1, settings.epochs + 1):
        running = [stopped[m] < 0 for m in range(e)]  # not stopped early (diverged ones still get rows)
        active = torch.tensor([status[m] == STATUS_OK and running[m] for m in range(e)], device=dev)
        if settings.patience and not bool(active.any()):
            break
        opt.lr = base_lr * settings.lr_factor(epoch)
        if settings.shuffle:
            perms = torch.stack([torch.randperm(n_train, generator=g) for g in gens]).to(dev)  # (E, n)
        else:  # the data's order, as the authors' loader (no generator is drawn from)
            perms = torch.arange(n_train, device=dev).expand(e, -1)
        sums = torch.zeros(e, device=dev, dtype=torch.float64)
        hits = torch.zeros(e, device=dev, dtype=torch.float64)
        n_seen = 0
        improved = [False] * e
        for i in range(0, n_train, bs):
            idx = perms[:, i : i + bs]  # (E, b)
            part = train.take(idx)
            pred, _ = model(part.x, dt=part.dt)
            if classify:
                total, count, correct = member_sums(pred, part, task, settings.loss_mask_bins)
                loss = total / count
                hits += correct.double()
            else:
                loss = member_loss(pred, part, task, settings.loss_mask_bins)
            finite = torch.isfinite(loss)
            for m in torch.nonzero(~finite & active).flatten().tolist():
                status[m], track["diverged_epoch"][m] = STATUS_DIVERGED, epoch
                logger.warning("%smember %d diverged at epoch %d (loss %s)", label, m, epoch, loss[m].item())
            active = active & finite
            for p in params:
                p.grad = None
            torch.where(active, loss, torch.zeros_like(loss)).sum().backward()
            if settings.grad_clip:
                clip_member_grads(params, settings.grad_clip)
            opt.step(active)
            sums += loss.detach().double() * idx.shape[1]
            n_seen += idx.shape[1]
            if per_step:  # the parameters of this step; the last step's are the epoch's
                sel_loss, sel_acc = _evaluate(model, select, task, settings.loss_mask_bins)
                consider(sel_loss, sel_acc, epoch, running, improved)
                active = active & torch.tensor([st == STATUS_OK for st in status], device=dev)
        train_loss = (sums / n_seen).tolist()
        train_acc = (hits / n_seen).tolist()
        if not per_step:
            sel_loss, sel_acc = _evaluate(model, select, task, settings.loss_mask_bins)
            consider(sel_loss, sel_acc, epoch, running, improved)
        elapsed = elapsed_before + time.perf_counter() - t0
        for m in range(e):
            if status[m] != STATUS_OK or not running[m]:
                continue
            if improved[m]:
                track["wait"][m] = 0
            else:
                track["wait"][m] += 1
                if settings.patience and track["wait"][m] >= settings.patience:
                    stopped[m] = epoch
                    logger.info("%smember %d stopped early at epoch %d (best epoch %d)", label, m, epoch,
                                track["best_epoch"][m])
        for m in range(e):
            if not running[m]:
                continue
            ok = status[m] == STATUS_OK
            row = {
                "member": m,
                "epoch": epoch,
                "train_loss": train_loss[m] if ok or track["diverged_epoch"][m] == epoch else math.nan,
                f"{sel}_loss": sel_loss[m] if ok else math.nan,
                "elapsed_s": elapsed,
            }
            if classify:
                row["train_accuracy"] = train_acc[m] if ok else math.nan
                row[f"{sel}_accuracy"] = sel_acc[m] if ok else math.nan
            history.append(row)
        ok = [m for m in range(e) if status[m] == STATUS_OK]
        summary = {
            "epoch": epoch,
            "epochs": settings.epochs,
            "train_loss_median": _median([train_loss[m] for m in ok]),
            f"{sel}_loss_min": min((sel_loss[m] for m in ok), default=math.nan),
            "n_ok": len(ok),
            "n_members": e,
            "n_stopped": sum(s >= 0 for s in stopped),
            "elapsed_s": elapsed,
        }
        logger.info(
            "%sepoch %d/%d  train %.3e (median)  %s %.3e (best member)%s  ok %d/%d%s  %.1f s",
            label,
            epoch,
            settings.epochs,
            summary["train_loss_median"],
            sel,
            summary[f"{sel}_loss_min"],
            f"  acc {max((sel_acc[m] for m in ok), default=math.nan):.3f} (best)" if classify else "",
            len(ok),
            e,
            f"  stopped {summary['n_stopped']}" if settings.patience else "",
            elapsed,
        )
        if on_epoch is not None:
            on_epoch(summary)
        if ckpt is not None and settings.checkpoint_every and (
            epoch % settings.checkpoint_every == 0 or epoch == settings.epochs
        ):
            state = _checkpoint_state(model, opt, epoch, gens, track, history, fingerprint)
            with atomic_path(ckpt) as tmp:
                torch.save(state, tmp)

    if val is None:
        test_loss, test_acc = track["best_loss"], track["best_accuracy"]
        val_loss, val_acc = [], []
    else:
        # the test set is looked at once, at each member's best (by validation) parameters
        current = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(best)
        t_loss, t_acc = _evaluate(model, test, task, settings.loss_mask_bins)
        model.load_state_dict(current)
        found = [track["best_epoch"][m] > 0 for m in range(e)]
        test_loss = [t_loss[m] if found[m] else math.inf for m in range(e)]
        test_acc = [t_acc[m] if found[m] else math.nan for m in range(e)]
        val_loss, val_acc = track["best_loss"], track["best_accuracy"]
    return FitResult(
        history=history,
        best_state=best,
        best_epoch=track["best_epoch"],
        best_test_loss=test_loss,
        status=status,
        diverged_epoch=track["diverged_epoch"],
        elapsed_s=elapsed_before + time.perf_counter() - t0,
        resumed_from_epoch=start_epoch,
        test_accuracy=test_acc,
        best_val_loss=val_loss,
        best_val_accuracy=val_acc,
        stopped_epoch=stopped,
        best_iteration=track["best_iteration"],
    )


def _median(values: list[float]) -> float:
    vals = sorted(v for v in values if math.isfinite(v))
    if not vals:
        return math.nan
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else 0.5 * (vals[mid - 1] + vals[mid])
