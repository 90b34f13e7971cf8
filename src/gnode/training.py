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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

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

    def take(self, idx) -> SequenceData:
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
    _check_fit_arguments(model, settings, task, val)
    train, test = as_data(train), as_data(test)
    val = as_data(val) if val is not None else None
    loop = _Loop.start(model, train, val, test, settings, task, label)
    ckpt = Path(checkpoint) if checkpoint else None
    start_epoch = _resume(loop, ckpt, fingerprint) if ckpt is not None and ckpt.exists() else 0
    loop.start_clock()
    for epoch in range(start_epoch + 1, settings.epochs + 1):
        summary = _epoch(loop, epoch)
        if summary is None:  # every member has stopped early
            break
        if on_epoch is not None:
            on_epoch(summary)
        if ckpt is not None and _checkpoint_due(settings, epoch):
            _save_checkpoint(loop, ckpt, epoch, fingerprint)
    return _fit_result(loop, test, val, start_epoch)


def _check_fit_arguments(model: RecurrentEnsemble, settings: FitSettings, task: str, val) -> None:
    """Clear errors for settings that :func:`fit` cannot honour."""
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


@dataclass
class _Track:
    """Per-member bookkeeping of :func:`fit` (lists of E entries), saved in checkpoints.

    The field order is the order of the keys in a checkpoint. ``best_score`` is the selection
    criterion, lower is better: the loss, or minus the accuracy (``monitor='accuracy'``).
    """

    best: dict[str, Tensor]  # the best parameters, stacked (E, ...) as the model's state dict
    best_epoch: list[int]
    best_iteration: list[int]
    best_loss: list[float]
    best_accuracy: list[float]
    best_score: list[float]
    status: list[str]
    diverged_epoch: list[int]
    wait: list[int]  # epochs since the last improvement (early stopping)
    stopped_epoch: list[int]

    @classmethod
    def start(cls, model: RecurrentEnsemble) -> _Track:
        e = model.n_members
        return cls(
            best={k: v.detach().clone() for k, v in model.state_dict().items()},
            best_epoch=[0] * e,
            best_iteration=[0] * e,
            best_loss=[math.inf] * e,
            best_accuracy=[math.nan] * e,
            best_score=[math.inf] * e,
            status=[STATUS_OK] * e,
            diverged_epoch=[-1] * e,
            wait=[0] * e,
            stopped_epoch=[-1] * e,
        )


@dataclass
class _Loop:
    """One :func:`fit` call: what the loop reads (model, data, settings, optimiser) and what it
    changes besides the model (``track``, ``history``, the per-member data-order ``gens``)."""

    model: RecurrentEnsemble
    settings: FitSettings
    task: str
    train: SequenceData
    select: SequenceData  # the set that picks the best parameters: val, or test without val
    sel: str  # its name in the history: "val" or "test"
    opt: StackedAdamW
    base_lr: Tensor  # (E,) before the schedule
    gens: list[torch.Generator]
    track: _Track
    label: str
    history: list[dict] = field(default_factory=list)
    t0: float = 0.0
    elapsed_before: float = 0.0  # seconds trained before a resume

    @classmethod
    def start(cls, model, train, val, test, settings, task, label) -> _Loop:
        params = list(model.parameters())
        dev, dtype = train.x.device, params[0].dtype
        base_lr = torch.tensor(settings.lr, device=dev, dtype=dtype)
        wd = torch.tensor(settings.weight_decay, device=dev, dtype=dtype)
        opt = StackedAdamW(params, base_lr.clone(), wd, settings.betas, settings.eps)
        # one CPU generator per member: the data order does not depend on the device or on E
        gens = [torch.Generator().manual_seed(int(s)) for s in settings.seeds]
        select, sel = (val, "val") if val is not None else (test, "test")
        return cls(model, settings, task, train, select, sel, opt, base_lr, gens, _Track.start(model), label)

    @property
    def n_members(self) -> int:
        return self.model.n_members

    @property
    def device(self) -> torch.device:
        return self.train.x.device

    @property
    def classify(self) -> bool:
        return self.task == "classification"

    def start_clock(self) -> None:
        self.t0 = time.perf_counter()
        self.elapsed_before = self.history[-1]["elapsed_s"] if self.history else 0.0

    def elapsed(self) -> float:
        """Seconds of training so far, runs before a resume included."""
        return self.elapsed_before + time.perf_counter() - self.t0

    def running(self) -> list[bool]:
        """Members not stopped early (diverged ones still get history rows)."""
        return [s < 0 for s in self.track.stopped_epoch]

    def ok(self) -> list[int]:
        """The members that have not diverged."""
        return [m for m in range(self.n_members) if self.track.status[m] == STATUS_OK]


# ---------------------------------------------------------------- the loop: epoch -> batch -> step
def _epoch(loop: _Loop, epoch: int) -> dict | None:
    """Train one epoch (1-based), select, count patience, log; the epoch's summary (None: all
    members had stopped early and nothing was done)."""
    st, e = loop.settings, loop.n_members
    running = loop.running()
    active = torch.tensor([loop.track.status[m] == STATUS_OK and running[m] for m in range(e)], device=loop.device)
    if st.patience and not bool(active.any()):
        return None
    loop.opt.lr = loop.base_lr * st.lr_factor(epoch)
    improved = [False] * e
    train_loss, train_acc, selected = _train_batches(loop, epoch, active, running, improved)
    if st.select_every == "epoch":
        selected = _select(loop, epoch, running, improved)
    sel_loss, sel_acc = selected
    elapsed = loop.elapsed()
    _count_patience(loop, epoch, running, improved)
    loop.history.extend(_history_rows(loop, epoch, running, train_loss, train_acc, sel_loss, sel_acc, elapsed))
    summary = _epoch_summary(loop, epoch, train_loss, sel_loss, elapsed)
    _log_epoch(loop, summary, sel_acc)
    return summary


def _batch_order(loop: _Loop) -> Tensor:
    """(E, n) sample order of this epoch: a new random permutation per member, or the data's."""
    n_train = len(loop.train)
    if loop.settings.shuffle:
        return torch.stack([torch.randperm(n_train, generator=g) for g in loop.gens]).to(loop.device)
    # the data's order, as the authors' loader (no generator is drawn from)
    return torch.arange(n_train, device=loop.device).expand(loop.n_members, -1)


def _train_batches(
    loop: _Loop, epoch: int, active: Tensor, running: list[bool], improved: list[bool]
) -> tuple[list[float], list[float], tuple[list, list] | None]:
    """One pass over the training set in mini-batches, one optimiser step each.

    Returns the mean train loss and accuracy per member over the epoch and, with per-iteration
    selection, the selection set's (loss, accuracy) after the last step (else None).
    """
    e, dev, n_train = loop.n_members, loop.device, len(loop.train)
    bs = min(loop.settings.batch_size, n_train)
    perms = _batch_order(loop)
    sums = torch.zeros(e, device=dev, dtype=torch.float64)
    hits = torch.zeros(e, device=dev, dtype=torch.float64)
    n_seen = 0
    selected = None
    for i in range(0, n_train, bs):
        idx = perms[:, i : i + bs]  # (E, b)
        loss, correct, active = _step(loop, epoch, loop.train.take(idx), active)
        if correct is not None:
            hits += correct.double()
        sums += loss.detach().double() * idx.shape[1]
        n_seen += idx.shape[1]
        if loop.settings.select_every == "iteration":  # the parameters of this step; the last step's are the epoch's
            selected = _select(loop, epoch, running, improved)
            active = active & torch.tensor([st == STATUS_OK for st in loop.track.status], device=dev)
    return (sums / n_seen).tolist(), (hits / n_seen).tolist(), selected


def _step(loop: _Loop, epoch: int, batch: SequenceData, active: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
    """Forward, backward and one AdamW step of the ``active`` (E,) members on ``batch``.

    Returns the loss per member (E,), the correct predictions (E,) (classification; else None)
    and ``active`` without the members whose loss was not finite.
    """
    mask_bins = loop.settings.loss_mask_bins
    pred, _ = loop.model(batch.x, dt=batch.dt)
    correct = None
    if loop.classify:
        total, count, correct = member_sums(pred, batch, loop.task, mask_bins)
        loss = total / count
    else:
        loss = member_loss(pred, batch, loop.task, mask_bins)
    active = _stop_diverged(loop, epoch, loss, active)
    params = loop.opt.params
    for p in params:
        p.grad = None
    torch.where(active, loss, torch.zeros_like(loss)).sum().backward()
    if loop.settings.grad_clip:
        clip_member_grads(params, loop.settings.grad_clip)
    loop.opt.step(active)
    return loss, correct, active


def _stop_diverged(loop: _Loop, epoch: int, loss: Tensor, active: Tensor) -> Tensor:
    """Mark the active members whose batch loss (E,) is NaN/Inf as diverged; ``active`` without them."""
    finite = torch.isfinite(loss)
    for m in torch.nonzero(~finite & active).flatten().tolist():
        loop.track.status[m], loop.track.diverged_epoch[m] = STATUS_DIVERGED, epoch
        logger.warning("%smember %d diverged at epoch %d (loss %s)", loop.label, m, epoch, loss[m].item())
    return active & finite


# ------------------------------------------------------------------ selection and early stopping
@torch.no_grad()
def _select(loop: _Loop, epoch: int, running: list[bool], improved: list[bool]) -> tuple[list, list]:
    """Evaluate the selection set at the current parameters; keep each running member's
    parameters if they beat its best score so far (and mark it in ``improved``). A member whose
    selection loss is not finite diverges. Returns (loss, accuracy) per member."""
    sel_loss, sel_acc = _evaluate(loop.model, loop.select, loop.task, loop.settings.loss_mask_bins)
    track = loop.track
    for m in range(loop.n_members):
        if track.status[m] == STATUS_OK and not math.isfinite(sel_loss[m]):
            track.status[m], track.diverged_epoch[m] = STATUS_DIVERGED, epoch
        if track.status[m] != STATUS_OK or not running[m]:
            continue
        score = -sel_acc[m] if loop.settings.monitor == "accuracy" else sel_loss[m]
        if score < track.best_score[m]:
            track.best_score[m], track.best_epoch[m] = score, epoch
            track.best_iteration[m] = loop.opt.step_count
            track.best_loss[m], track.best_accuracy[m] = sel_loss[m], sel_acc[m]
            improved[m] = True
            for k, v in loop.model.state_dict().items():
                track.best[k][m] = v[m]
    return sel_loss, sel_acc


def _count_patience(loop: _Loop, epoch: int, running: list[bool], improved: list[bool]) -> None:
    """Early stopping: a running member without improvement for ``patience`` epochs stops."""
    track, patience = loop.track, loop.settings.patience
    for m in range(loop.n_members):
        if track.status[m] != STATUS_OK or not running[m]:
            continue
        if improved[m]:
            track.wait[m] = 0
            continue
        track.wait[m] += 1
        if patience and track.wait[m] >= patience:
            track.stopped_epoch[m] = epoch
            logger.info("%smember %d stopped early at epoch %d (best epoch %d)", loop.label, m, epoch,
                        track.best_epoch[m])


# ------------------------------------------------------------------------- history and logging
def _history_rows(
    loop: _Loop, epoch: int, running: list[bool], train_loss, train_acc, sel_loss, sel_acc, elapsed: float
) -> list[dict]:
    """One row per member that ran this epoch; NaN metrics for diverged members (the train loss
    of the epoch in which a member diverged is kept)."""
    track, sel = loop.track, loop.sel
    rows = []
    for m in range(loop.n_members):
        if not running[m]:
            continue
        ok = track.status[m] == STATUS_OK
        row = {
            "member": m,
            "epoch": epoch,
            "train_loss": train_loss[m] if ok or track.diverged_epoch[m] == epoch else math.nan,
            f"{sel}_loss": sel_loss[m] if ok else math.nan,
            "elapsed_s": elapsed,
        }
        if loop.classify:
            row["train_accuracy"] = train_acc[m] if ok else math.nan
            row[f"{sel}_accuracy"] = sel_acc[m] if ok else math.nan
        rows.append(row)
    return rows


def _epoch_summary(loop: _Loop, epoch: int, train_loss: list, sel_loss: list, elapsed: float) -> dict:
    """The dict given to ``on_epoch``: median train loss and best selection loss of the members
    that have not diverged."""
    ok = loop.ok()
    return {
        "epoch": epoch,
        "epochs": loop.settings.epochs,
        "train_loss_median": _median([train_loss[m] for m in ok]),
        f"{loop.sel}_loss_min": min((sel_loss[m] for m in ok), default=math.nan),
        "n_ok": len(ok),
        "n_members": loop.n_members,
        "n_stopped": sum(s >= 0 for s in loop.track.stopped_epoch),
        "elapsed_s": elapsed,
    }


def _log_epoch(loop: _Loop, summary: dict, sel_acc: list) -> None:
    """The per-epoch log line."""
    ok, sel = loop.ok(), loop.sel
    logger.info(
        "%sepoch %d/%d  train %.3e (median)  %s %.3e (best member)%s  ok %d/%d%s  %.1f s",
        loop.label,
        summary["epoch"],
        summary["epochs"],
        summary["train_loss_median"],
        sel,
        summary[f"{sel}_loss_min"],
        f"  acc {max((sel_acc[m] for m in ok), default=math.nan):.3f} (best)" if loop.classify else "",
        len(ok),
        loop.n_members,
        f"  stopped {summary['n_stopped']}" if loop.settings.patience else "",
        summary["elapsed_s"],
    )


# ----------------------------------------------------------------------------- checkpoints
def _checkpoint_due(settings: FitSettings, epoch: int) -> bool:
    """Every ``checkpoint_every`` epochs and after the last one (0: never)."""
    every = settings.checkpoint_every
    return bool(every) and (epoch % every == 0 or epoch == settings.epochs)


def _checkpoint_state(loop: _Loop, epoch: int, fingerprint: str) -> dict:
    """Everything a resumed run needs to continue as if never interrupted (tensors on the CPU)."""
    model, opt, track = loop.model, loop.opt, loop.track
    return {
        "fingerprint": fingerprint,
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "opt": {"step": opt.step_count, "m": [t.cpu() for t in opt.m], "v": [t.cpu() for t in opt.v]},
        "generators": [g.get_state() for g in loop.gens],
        "best": {k: v.cpu() for k, v in track.best.items()},
        **{f.name: getattr(track, f.name) for f in fields(track) if f.name != "best"},
        "history": loop.history,
    }


def _save_checkpoint(loop: _Loop, ckpt: Path, epoch: int, fingerprint: str) -> None:
    from gnode.io import atomic_path

    state = _checkpoint_state(loop, epoch, fingerprint)
    with atomic_path(ckpt) as tmp:
        torch.save(state, tmp)


def _resume(loop: _Loop, ckpt: Path, fingerprint: str) -> int:
    """Load ``ckpt`` into the model, optimiser, generators, bookkeeping and history when it has
    this ``fingerprint``; the epoch it was saved after (0: another configuration's, ignored)."""
    from gnode.io import CorruptFileError, verify_checksum

    try:
        verify_checksum(ckpt)
    except CorruptFileError as err:  # a damaged checkpoint costs the epochs it held, not the job
        logger.warning("%signoring checkpoint: %s", loop.label, err)
        return 0
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != fingerprint:
        logger.warning("%signoring checkpoint %s: it belongs to another configuration", loop.label, ckpt)
        return 0
    loop.model.load_state_dict(state["model"])
    loop.opt.load_state_dict({k: state["opt"][k] for k in ("step", "m", "v")})
    for g, s in zip(loop.gens, state["generators"]):
        g.set_state(s)
    track = loop.track
    track.best = {n: v.to(loop.device) for n, v in state["best"].items()}
    for f in fields(track):
        if f.name != "best" and f.name in state:
            setattr(track, f.name, state[f.name])
    if "best_score" not in state:  # a checkpoint of the test-loss-only version
        track.best_score = list(track.best_loss)
    loop.history = state["history"]
    logger.info("%sresumed from checkpoint %s at epoch %d", loop.label, ckpt, state["epoch"])
    return state["epoch"]


# ---------------------------------------------------------------------------------- result
def _fit_result(loop: _Loop, test: SequenceData, val: SequenceData | None, start_epoch: int) -> FitResult:
    """The :class:`FitResult`; with a validation set, the test set is evaluated here, once, at
    each member's best (by validation) parameters."""
    track, e = loop.track, loop.n_members
    if val is None:
        test_loss, test_acc = track.best_loss, track.best_accuracy
        val_loss, val_acc = [], []
    else:
        current = {k: v.detach().clone() for k, v in loop.model.state_dict().items()}
        loop.model.load_state_dict(track.best)
        t_loss, t_acc = _evaluate(loop.model, test, loop.task, loop.settings.loss_mask_bins)
        loop.model.load_state_dict(current)
        found = [track.best_epoch[m] > 0 for m in range(e)]
        test_loss = [t_loss[m] if found[m] else math.inf for m in range(e)]
        test_acc = [t_acc[m] if found[m] else math.nan for m in range(e)]
        val_loss, val_acc = track.best_loss, track.best_accuracy
    return FitResult(
        history=loop.history,
        best_state=track.best,
        best_epoch=track.best_epoch,
        best_test_loss=test_loss,
        status=track.status,
        diverged_epoch=track.diverged_epoch,
        elapsed_s=loop.elapsed(),
        resumed_from_epoch=start_epoch,
        test_accuracy=test_acc,
        best_val_loss=val_loss,
        best_val_accuracy=val_acc,
        stopped_epoch=track.stopped_epoch,
        best_iteration=track.best_iteration,
    )


def _median(values: list[float]) -> float:
    vals = sorted(v for v in values if math.isfinite(v))
    if not vals:
        return math.nan
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else 0.5 * (vals[mid - 1] + vals[mid])
