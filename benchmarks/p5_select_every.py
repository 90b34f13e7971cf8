"""P5: the cost of choosing the best parameters after every iteration (the authors') instead of
after every epoch: one forward pass over the test set per optimiser step.

3-bit fixed, gnODE N = 6, F 2 x 64 (ReLU), batch 100, 500 train / 100 test trials of 100 bins,
an ensemble of 2, float32. Both settings train the same epochs side by side in one run
(interleaved pairs); prints seconds per epoch of each and the ratio iteration / epoch. On a
shared machine whole fits are noisy, so it also times the two parts alone, one training step
(forward + backward of a batch) and one test-set evaluation, in many short interleaved pairs,
and prints the ratio they imply: (S step + S eval) / (S step + eval), S = 5 steps per epoch.

    python benchmarks/p5_select_every.py [--epochs 3] [--repeat 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleaved, machine  # noqa: E402

from gnode.models import ModelSpec, RecurrentEnsemble  # noqa: E402
from gnode.tasks import flipflop  # noqa: E402
from gnode.training import FitSettings, evaluate_loss, fit, member_mse  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    d = flipflop.generate("3bit_fixed", 600, seed=0, n_bins=100)
    x = torch.as_tensor(d.inputs, device=dev)
    y = torch.as_tensor(d.targets, device=dev)
    train, test = (x[:500], y[:500]), (x[500:], y[500:])
    spec = ModelSpec(kind="gnode", n_input=3, n_hidden=6, n_output=3, depth=2, width=64, activation="relu")

    def run(select_every):
        def go():
            ens = RecurrentEnsemble(spec, [0, 1], device=dev)
            fit(ens, train, test, FitSettings(epochs=args.epochs, batch_size=100, lr=[1e-3] * 2,
                                              weight_decay=[0.1] * 2, seeds=[0, 1], select_every=select_every))
            if dev.type == "cuda":
                torch.cuda.synchronize()
        return go

    t_it, t_ep, ratios = interleaved(run("iteration"), run("epoch"), repeat=args.repeat)
    print(machine())
    print(f"select_every=epoch:     {t_ep / args.epochs:.3f} s/epoch")
    print(f"select_every=iteration: {t_it / args.epochs:.3f} s/epoch")
    print(f"ratio iteration/epoch: median {t_it / t_ep:.2f}, pairs {[round(r, 2) for r in ratios]}")

    model = RecurrentEnsemble(spec, [0, 1], device=dev)

    def train_step():
        model.zero_grad(set_to_none=True)
        member_mse(model(train[0][:100])[0], train[1][:100]).sum().backward()

    def evaluation():
        evaluate_loss(model, *test)

    t_step, t_eval, _ = interleaved(train_step, evaluation, repeat=10 * args.repeat)
    steps = 5
    implied = (steps * t_step + steps * t_eval) / (steps * t_step + t_eval)
    print(f"one training step {t_step * 1e3:.1f} ms, one test evaluation {t_eval * 1e3:.1f} ms: "
          f"implied ratio iteration/epoch {implied:.2f}")


if __name__ == "__main__":
    main()
