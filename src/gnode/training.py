"""Training of model ensembles: AdamW, MSE, BPTT, per-member hyper-parameters.

All members of a :class:`~gnode.models.RecurrentEnsemble` train at once. Member ``e`` has its
own learning rate, weight decay and data-order seed, its own best-by-test-loss parameters and
its own status (a member whose loss becomes NaN/Inf is stopped and marked ``diverged``; the
others go on). Training member ``e`` alone gives the same result up to float rounding.

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
from torch import Tensor

from gnode.models import RecurrentEnsemble

logger = logging.getLogger(__name__)

STATUS_OK, STATUS_DIVERGED = "ok", "diverged"


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


@dataclass
class FitResult:
    """History rows, final status and the best parameters (by test loss) of each member."""

    history: list[dict]
    best_state: dict[str, Tensor]
    best_epoch: list[int]
    best_test_loss: list[float]
    status: list[str]
    diverged_epoch: list[int]
    elapsed_s: float
    resumed_from_epoch: int = 0
    extra: dict = field(default_factory=dict)


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


@torch.no_grad()
def evaluate_loss(model: RecurrentEnsemble, x: Tensor, y: Tensor, *, batch: int = 1000, mask_bins: int = 0) -> Tensor:
    """Per-member MSE over a whole set (B, T, I) / (B, T, O), in chunks of ``batch`` trials."""
    total = torch.zeros(model.n_members, device=x.device, dtype=torch.float64)
    for i in range(0, x.shape[0], batch):
        pred, _ = model(x[i : i + batch])
        n = pred.shape[1]
        total += member_mse(pred, y[i : i + batch], mask_bins).double() * n
    return total / x.shape[0]


def _checkpoint_state(model, opt, epoch, gens, best, best_epoch, best_loss, status, div_epoch, history, fingerprint):
    return {
        "fingerprint": fingerprint,
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "opt": {"step": opt.step_count, "m": [t.cpu() for t in opt.m], "v": [t.cpu() for t in opt.v]},
        "generators": [g.get_state() for g in gens],
        "best": {k: v.cpu() for k, v in best.items()},
        "best_epoch": best_epoch,
        "best_loss": best_loss,
        "status": status,
        "diverged_epoch": div_epoch,
        "history": history,
    }


def fit(
    model: RecurrentEnsemble,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    settings: FitSettings,
    *,
    checkpoint: str | os.PathLike | None = None,
    fingerprint: str = "",
    on_epoch: Callable[[dict], None] | None = None,
    label: str = "",
) -> FitResult:
    """Train all members of ``model`` with AdamW on MSE, backpropagating through time.

    Args:
        model: the ensemble, trained in place (its final parameters are those of the last
            epoch; the best ones are in the result).
        train, test: (inputs (B, T, I), targets (B, T, O)) on the model's device.
        settings: epochs, batch size and per-member lr, weight decay and data-order seeds.
        checkpoint: a file to save to every ``settings.checkpoint_every`` epochs (atomically) and
            to resume from when it exists with the same ``fingerprint``.
        on_epoch: called with a summary dict after each epoch (progress reporting).

    Returns:
        a :class:`FitResult`; ``history`` has one row per member and epoch.
    """
    from gnode.io import atomic_path

    e = model.n_members
    for key in ("lr", "weight_decay", "seeds"):
        if len(getattr(settings, key)) != e:
            raise ValueError(f"settings.{key} has {len(getattr(settings, key))} entries for {e} members")
    x_tr, y_tr = train
    x_te, y_te = test
    dev, n_train = x_tr.device, x_tr.shape[0]
    bs = min(settings.batch_size, n_train)
    params = list(model.parameters())
    opt = StackedAdamW(
        params,
        torch.tensor(settings.lr, device=dev, dtype=params[0].dtype),
        torch.tensor(settings.weight_decay, device=dev, dtype=params[0].dtype),
        settings.betas,
        settings.eps,
    )
    # one CPU generator per member: the data order does not depend on the device or on E
    gens = [torch.Generator().manual_seed(int(s)) for s in settings.seeds]
    best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_epoch, best_loss = [0] * e, [math.inf] * e
    status, div_epoch = [STATUS_OK] * e, [-1] * e
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
            best = {k: v.to(dev) for k, v in state["best"].items()}
            best_epoch, best_loss = state["best_epoch"], state["best_loss"]
            status, div_epoch = state["status"], state["diverged_epoch"]
            history, start_epoch = state["history"], state["epoch"]
            logger.info("%sresumed from checkpoint %s at epoch %d", label, ckpt, start_epoch)
        else:
            logger.warning("%signoring checkpoint %s: it belongs to another configuration", label, ckpt)

    t0 = time.perf_counter()
    elapsed_before = history[-1]["elapsed_s"] if history else 0.0
    for epoch in range(start_epoch + 1, settings.epochs + 1):
        active = torch.tensor([s == STATUS_OK for s in status], device=dev)
        perms = torch.stack([torch.randperm(n_train, generator=g) for g in gens]).to(dev)  # (E, n)
        sums = torch.zeros(e, device=dev, dtype=torch.float64)
        n_seen = 0
        for i in range(0, n_train, bs):
            idx = perms[:, i : i + bs]  # (E, b)
            pred, _ = model(x_tr[idx])
            loss = member_mse(pred, y_tr[idx], settings.loss_mask_bins)
            finite = torch.isfinite(loss)
            for m in torch.nonzero(~finite & active).flatten().tolist():
                status[m], div_epoch[m] = STATUS_DIVERGED, epoch
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
        train_loss = (sums / n_seen).tolist()
        test_loss = evaluate_loss(model, x_te, y_te, mask_bins=settings.loss_mask_bins).tolist()
        elapsed = elapsed_before + time.perf_counter() - t0
        with torch.no_grad():
            for m in range(e):
                if status[m] == STATUS_OK and not math.isfinite(test_loss[m]):
                    status[m], div_epoch[m] = STATUS_DIVERGED, epoch
                if status[m] == STATUS_OK and test_loss[m] < best_loss[m]:
                    best_loss[m], best_epoch[m] = test_loss[m], epoch
                    for k, v in model.state_dict().items():
                        best[k][m] = v[m]
        for m in range(e):
            history.append(
                {
                    "member": m,
                    "epoch": epoch,
                    "train_loss": train_loss[m] if status[m] == STATUS_OK or div_epoch[m] == epoch else math.nan,
                    "test_loss": test_loss[m] if status[m] == STATUS_OK else math.nan,
                    "elapsed_s": elapsed,
                }
            )
        ok = [m for m in range(e) if status[m] == STATUS_OK]
        summary = {
            "epoch": epoch,
            "epochs": settings.epochs,
            "train_loss_median": _median([train_loss[m] for m in ok]),
            "test_loss_min": min((test_loss[m] for m in ok), default=math.nan),
            "n_ok": len(ok),
            "n_members": e,
            "elapsed_s": elapsed,
        }
        logger.info(
            "%sepoch %d/%d  train %.3e (median)  test %.3e (best member)  ok %d/%d  %.1f s",
            label,
            epoch,
            settings.epochs,
            summary["train_loss_median"],
            summary["test_loss_min"],
            len(ok),
            e,
            elapsed,
        )
        if on_epoch is not None:
            on_epoch(summary)
        if ckpt is not None and settings.checkpoint_every and (
            epoch % settings.checkpoint_every == 0 or epoch == settings.epochs
        ):
            state = _checkpoint_state(
                model, opt, epoch, gens, best, best_epoch, best_loss, status, div_epoch, history, fingerprint
            )
            with atomic_path(ckpt) as tmp:
                torch.save(state, tmp)

    return FitResult(
        history=history,
        best_state=best,
        best_epoch=best_epoch,
        best_test_loss=best_loss,
        status=status,
        diverged_epoch=div_epoch,
        elapsed_s=elapsed_before + time.perf_counter() - t0,
        resumed_from_epoch=start_epoch,
    )


def _median(values: list[float]) -> float:
    vals = sorted(v for v in values if math.isfinite(v))
    if not vals:
        return math.nan
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else 0.5 * (vals[mid - 1] + vals[mid])
