"""P6: one training step of an ensemble by our RecurrentEnsemble vs PyTorch's ``torch.func`` ensembling.

One training step is the forward and backward pass (BPTT) of the summed per-member MSE over one
batch, for E members, without the optimiser update. Done four ways, side by side in one run
(interleaved rounds: every way once per round):

- (a) **ours**: one :class:`~gnode.models.RecurrentEnsemble` of E members with the Euler scan and
  its hand-written backward (:class:`gnode.scan.EulerScan`), what :func:`gnode.training.fit` runs.
- (b) **torch.func**: E single-member models ``RecurrentEnsemble(spec, [seed])`` stacked with
  ``torch.func.stack_module_state``; gradients by ``vmap(grad(loss of functional_call))``
  (``--grad autograd``: ``torch.autograd.grad`` through ``vmap(functional_call)``). ``EulerScan``
  is an autograd.Function without ``setup_context``, which functorch's transforms refuse, so
  (b) runs the models with ``use_scan = False``: the package's plain autograd loop
  (``RecurrentEnsemble._fused_euler_autograd``, row layout, one ``baddbmm`` per layer and step),
  which vmap turns into batched matmuls over the E members.
- (a') **ours, autograd**: the ensemble of (a) with ``use_scan = False``: the same loop as (b)
  without vmap, so that (a') vs (b) is vmap's cost and (a) vs (a') the scan's gain.
- (c) **serial**: the E single-member models one after another, each with the scan.

Before the timing, once per shape, the per-member losses and gradients of (a'), (b) and (c) are
compared with (a)'s for identical parameters, in float64 (``--check``): (b)'s stacked state is the
ensemble's parameters with a member axis of one added, (E, ...) -> (E, 1, ...);
``stack_module_state`` of the single models equals it exactly (member e of an ensemble is drawn
from seed e as a single model is), which is checked too. The script stops if any relative
difference exceeds 1e-9: the four ways compute the same function. The timed float32 runs differ
by rounding only; their differences are printed after the timing (up to ~1e-3 of a gradient's
largest entry for the first layer of width 316, whose gradient sums 100 steps x 50 trials of
ReLU-masked terms).

Shapes (``--shapes``, issue 16): ``2bit`` the 2-bit tasks' (gnODE N = 2, F 2 x 316 ReLU,
learned affine h0, 9 members, batch 50, 100 bins, 2 inputs and outputs); ``3bit`` the 3-bit
variable task's (gnODE N = 100, F 3 x 100 ReLU, fixed random h0, 27 members, batch 100,
100 bins, 3 channels); ``small`` P1's expressivity-like one (nODE N = 4, F 2 x 32, 27 members,
batch 100, 50 bins, 1 input and output). Prints ms per step of each way and the time ratios
ours / other (median over rounds of the per-round ratio; below 1: ours is faster).

    python benchmarks/p6_torch_func.py [--shapes 2bit 3bit small] [--threads 1] [--repeat 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleaved_many, machine  # noqa: E402

import gnode.chunks  # noqa: E402
from gnode.models import ModelSpec, RecurrentEnsemble  # noqa: E402
from gnode.training import member_mse  # noqa: E402

# name -> (spec, members, batch, bins)
SHAPES = {
    "2bit": (ModelSpec(kind="gnode", n_input=2, n_hidden=2, n_output=2, depth=2, width=316, activation="relu",
                       tau=0.01, dt=0.01, initial_state="learned_affine"), 9, 50, 100),
    "3bit": (ModelSpec(kind="gnode", n_input=3, n_hidden=100, n_output=3, depth=3, width=100, activation="relu",
                       tau=0.01, dt=0.01, initial_state="fixed_random"), 27, 100, 100),
    "small": (ModelSpec(kind="node", n_input=1, n_hidden=4, n_output=1, depth=2, width=32, activation="relu",
                        tau=0.1, dt=0.01), 27, 100, 50),
}
WAYS = ("ours", "ours-autograd", "torch.func", "serial")
# float64, different summation orders (column vs row layout): relative to the largest entry of each tensor
RTOL = 1e-9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Ways:
    """The four ways of one training step for one shape; see the module docstring.

    Each ``step_*`` leaves per-member losses (E,) and gradients name -> (E, ...) in
    ``self.out[way]`` (kept for the agreement check; overwritten on every call).
    """

    def __init__(self, spec: ModelSpec, members: int, batch: int, bins: int, device, grad_mode: str,
                 dtype=torch.float32):
        self.device = device
        seeds = list(range(members))
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(batch, bins, spec.n_input, generator=g).to(device, dtype)
        self.y = torch.randn(batch, bins, spec.n_output, generator=g).to(device, dtype)
        self.ens = RecurrentEnsemble(spec, seeds, device=device, dtype=dtype)
        self.ens_ag = self.ens.select(range(members))  # a copy of the same parameters
        self.ens_ag.use_scan = False
        self.singles = [RecurrentEnsemble(spec, [s], device=device, dtype=dtype) for s in seeds]
        # (b): the ensemble's parameters with a member axis of one, the layout stack_module_state gives
        self.params = {n: p.detach().unsqueeze(1).clone().requires_grad_(grad_mode == "autograd")
                       for n, p in self.ens.named_parameters()}
        self.buffers = {n: b.detach().unsqueeze(1).clone() for n, b in self.ens.named_buffers()}
        stacked_p, stacked_b = stack_module_state(self.singles)
        self.stack_diff = max((stacked_p[n] - self.params[n]).abs().max().item() for n in self.params)
        self.stack_diff = max([self.stack_diff] + [(stacked_b[n] - self.buffers[n]).abs().max().item()
                                                   for n in self.buffers])
        base = copy.deepcopy(self.singles[0]).to("meta")
        base.use_scan = False  # EulerScan has no vmap rule (see the module docstring)

        def loss(p, b, x, y):
            pred, _ = functional_call(base, (p, b), (x,))
            return member_mse(pred, y).sum()  # (1,) -> a scalar per member

        self._loss = loss
        self._vgrad = vmap(grad_and_value(loss), in_dims=(0, 0, None, None))
        self._vloss = vmap(loss, in_dims=(0, 0, None, None))
        self.grad_mode = grad_mode
        self.out: dict[str, tuple] = {}

    def _ensemble_step(self, model, way):
        model.zero_grad(set_to_none=True)
        losses = member_mse(model(self.x)[0], self.y)
        losses.sum().backward()
        _sync(self.device)
        self.out[way] = (losses.detach(), {n: p.grad for n, p in model.named_parameters()})

    def step_ours(self):
        self._ensemble_step(self.ens, "ours")

    def step_ours_autograd(self):
        self._ensemble_step(self.ens_ag, "ours-autograd")

    def step_torch_func(self):
        if self.grad_mode == "func":
            grads, losses = self._vgrad(self.params, self.buffers, self.x, self.y)
        else:
            losses = self._vloss(self.params, self.buffers, self.x, self.y)
            grads = dict(zip(self.params, torch.autograd.grad(losses.sum(), list(self.params.values())), strict=True))
        _sync(self.device)
        self.out["torch.func"] = (losses.detach(), {n: gr.squeeze(1) for n, gr in grads.items()})

    def step_serial(self):
        losses, grads = [], []
        for m in self.singles:
            m.zero_grad(set_to_none=True)
            loss = member_mse(m(self.x)[0], self.y)
            loss.sum().backward()
            losses.append(loss.detach())
            grads.append({n: p.grad for n, p in m.named_parameters()})
        _sync(self.device)
        self.out["serial"] = (torch.cat(losses), {n: torch.cat([g[n] for g in grads]) for n in grads[0]})

    def steps(self):
        return [self.step_ours, self.step_ours_autograd, self.step_torch_func, self.step_serial]

    def disagreement(self, run: bool = True) -> dict[str, tuple[float, float]]:
        """Per way: (largest relative loss difference, largest relative gradient difference) from (a),
        gradients relative to the largest entry of each of (a)'s; ``run``: run every way first
        (else the last results)."""
        if run:
            for fn in self.steps():
                fn()
        ref_loss, ref_grads = self.out["ours"]
        res = {}
        for way in WAYS[1:]:
            loss, grads = self.out[way]
            dl = ((loss - ref_loss).abs() / ref_loss.abs()).max().item()
            dg = max(((grads[n] - g).abs().max() / g.abs().max().clamp_min(1e-30)).item()
                     for n, g in ref_grads.items())
            res[way] = (dl, dg)
        return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    ap.add_argument("--chunk-bytes", type=int, default=gnode.chunks.CHUNK_BYTES,
                    help="gnode.chunks.CHUNK_BYTES (0: all members at once, as before benchmarks/p8)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (CPU)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds (each runs every way once)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--grad", choices=("func", "autograd"), default="func",
                    help="(b)'s gradients: vmap(grad(...)), or torch.autograd.grad through vmap(functional_call)")
    ap.add_argument("--check", choices=("float64", "none"), default="float64",
                    help="compare the ways' losses and gradients in float64 before timing (none: skip)")
    a = ap.parse_args()
    gnode.chunks.CHUNK_BYTES = a.chunk_bytes
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    print(f"P6 one training step (forward + backward): our ensemble vs torch.func (vmap, grad={a.grad}) vs "
          f"one by one — {machine()}, device {device}")
    for name in a.shapes:
        spec, members, batch, bins = SHAPES[name]
        print(f"  {name}: {spec.kind} N={spec.n_hidden} F {spec.depth}x{spec.width} {spec.activation}, "
              f"{members} members, batch {batch}, {bins} bins, I={spec.n_input} O={spec.n_output}")
        if a.check == "float64":
            check = Ways(spec, members, batch, bins, device, a.grad, dtype=torch.float64)
            bad = check.stack_diff > 0
            print(f"    float64 check: stack_module_state(single models) - ensemble parameters: "
                  f"max |diff| {check.stack_diff:.1e}")
            for way, (dl, dg) in check.disagreement().items():
                ok = dl <= RTOL and dg <= RTOL
                bad |= not ok
                print(f"    float64 check: {way} vs ours: losses rel. diff {dl:.1e}, gradients rel. diff {dg:.1e}"
                      f"{'' if ok else f'  > {RTOL:.0e}: NOT EQUAL'}")
            if bad:
                sys.exit(f"P6: the ways disagree for shape {name}: the comparison would not be honest")
            del check
        ways = Ways(spec, members, batch, bins, device, a.grad)
        med, per_fn = interleaved_many(ways.steps(), repeat=a.repeat)
        rounding = ", ".join(f"{w} {dl:.0e}/{dg:.0e}" for w, (dl, dg) in ways.disagreement(run=False).items())
        print(f"    float32 rel. diff from ours (losses/gradients): {rounding}")
        times = "  ".join(f"{w} {t * 1e3:.0f} ms" for w, t in zip(WAYS, med, strict=True))
        print(f"    ms per step: {times}")
        for i, other in enumerate(WAYS[1:], start=1):
            r = sorted(x / y for x, y in zip(per_fn[0], per_fn[i], strict=True))
            print(f"    time ours / {other}: {statistics.median(r):.2f} (rounds {r[0]:.2f}-{r[-1]:.2f}; "
                  f"ours {1 / statistics.median(r):.1f}x as fast)")
        del ways
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
