"""Training: per-member AdamW, ensemble = members one by one, divergence, checkpoints."""

import math

import pytest
import torch

from gnode.models import ModelSpec, RecurrentEnsemble
from gnode.tasks import flipflop
from gnode.training import FitSettings, StackedAdamW, fit

F64 = torch.float64


def _data(n=24, t=15, seed=0, dtype=F64):
    d = flipflop.generate("3bit_fixed", n, seed=seed, n_bins=t, rate=3)
    x, y = torch.as_tensor(d.inputs, dtype=dtype), torch.as_tensor(d.targets, dtype=dtype)
    return (x[: n - 8], y[: n - 8]), (x[n - 8 :], y[n - 8 :])


def _spec(kind="gnode"):
    return ModelSpec(kind=kind, n_input=3, n_hidden=4, n_output=3, depth=1, width=6, tau=0.1, dt=0.1)


def test_stacked_adamw_equals_torch_adamw():
    torch.manual_seed(0)
    p = torch.randn(1, 5, 3, dtype=F64, requires_grad=True)
    q = p.detach().clone().requires_grad_(True)
    ours = StackedAdamW([p], torch.tensor([3e-3], dtype=F64), torch.tensor([0.1], dtype=F64))
    ref = torch.optim.AdamW([q], lr=3e-3, weight_decay=0.1)
    for step in range(20):
        target = torch.randn(1, 5, 3, dtype=F64, generator=torch.Generator().manual_seed(step))
        for t in (p, q):
            t.grad = None
            (t - target).pow(3).abs().sum().backward()
        ours.step(torch.tensor([True]))
        ref.step()
    torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["gru", "gnode"])
def test_ensemble_equals_members_trained_one_by_one(kind):
    train, test = _data()
    lrs, wds, seeds = [1e-2, 3e-3, 1e-3], [0.0, 0.1, 0.01], [7, 8, 9]
    settings = FitSettings(epochs=3, batch_size=5, lr=lrs, weight_decay=wds, seeds=seeds)
    ens = RecurrentEnsemble(_spec(kind), [1, 2, 3], dtype=F64)
    res = fit(ens, train, test, settings)
    for m in range(3):
        one = RecurrentEnsemble(_spec(kind), [m + 1], dtype=F64)
        s1 = FitSettings(epochs=3, batch_size=5, lr=[lrs[m]], weight_decay=[wds[m]], seeds=[seeds[m]])
        r1 = fit(one, train, test, s1)
        for name, p in one.named_parameters():
            torch.testing.assert_close(getattr(ens, name)[m], p[0], rtol=1e-10, atol=1e-12, msg=name)
            torch.testing.assert_close(res.best_state[name][m], r1.best_state[name][0], rtol=1e-10, atol=1e-12)
        assert res.best_epoch[m] == r1.best_epoch[0]
    # the members did learn different things
    assert not torch.allclose(ens.W_o[0], ens.W_o[1])


def test_training_reduces_the_loss_and_keeps_the_best_parameters():
    train, test = _data(n=48, t=20)
    ens = RecurrentEnsemble(_spec("gru"), [0, 1], dtype=F64)
    res = fit(ens, train, test, FitSettings(epochs=15, batch_size=8, lr=[1e-2, 1e-2], weight_decay=[0.0, 0.0],
                                            seeds=[0, 1]))
    first = [r["test_loss"] for r in res.history if r["epoch"] == 1]
    assert all(b < 0.8 * f for b, f in zip(res.best_test_loss, first))
    # best_state really is the parameters of the best epoch: re-evaluating gives the recorded loss
    ens.load_state_dict(res.best_state)
    from gnode.training import evaluate_loss
    torch.testing.assert_close(evaluate_loss(ens, *test), torch.tensor(res.best_test_loss, dtype=F64))
    rows = {(r["member"], r["epoch"]) for r in res.history}
    assert len(rows) == 2 * 15


def test_a_diverging_member_is_stopped_and_the_others_go_on():
    train, test = _data()
    spec = ModelSpec(kind="node", n_input=3, n_hidden=4, n_output=3, depth=1, width=6, tau=0.1, dt=0.1)
    # member 0's weights are blown up so that its loss overflows; member 1 must be unaffected
    ens = RecurrentEnsemble(spec, [1, 2], dtype=torch.float32)
    tr = (train[0].float(), train[1].float())
    te = (test[0].float(), test[1].float())
    settings = FitSettings(epochs=6, batch_size=8, lr=[1.0, 1e-3], weight_decay=[0, 0], seeds=[0, 1])
    with torch.no_grad():
        ens.W_1[0] *= 1e18  # member 0 explodes
    res = fit(ens, tr, te, settings)
    assert res.status == ["diverged", "ok"]
    assert res.diverged_epoch[0] == 1 and res.diverged_epoch[1] == -1
    alone = RecurrentEnsemble(spec, [2], dtype=torch.float32)
    r1 = fit(alone, tr, te, FitSettings(epochs=6, batch_size=8, lr=[1e-3], weight_decay=[0], seeds=[1]))
    torch.testing.assert_close(ens.W_1[1], alone.W_1[0], rtol=1e-5, atol=1e-6)
    assert math.isfinite(res.best_test_loss[1]) and math.isinf(res.best_test_loss[0])
    assert all(math.isnan(r["test_loss"]) for r in res.history if r["member"] == 0)


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(tmp_path):
    train, test = _data()
    settings = dict(batch_size=5, lr=[1e-2, 1e-3], weight_decay=[0.1, 0.0], seeds=[3, 4], checkpoint_every=2)
    full = RecurrentEnsemble(_spec(), [1, 2], dtype=F64)
    r_full = fit(full, train, test, FitSettings(epochs=6, **settings))
    # "killed" after epoch 4: a first run stops there, a second run resumes from the file
    ckpt = tmp_path / "ck.pt"
    part = RecurrentEnsemble(_spec(), [1, 2], dtype=F64)
    fit(part, train, test, FitSettings(epochs=4, **settings), checkpoint=ckpt, fingerprint="a")
    resumed = RecurrentEnsemble(_spec(), [1, 2], dtype=F64)
    r_res = fit(resumed, train, test, FitSettings(epochs=6, **settings), checkpoint=ckpt, fingerprint="a")
    assert r_res.resumed_from_epoch == 4
    for name, p in full.named_parameters():
        torch.testing.assert_close(getattr(resumed, name), p, rtol=0, atol=0)
    assert [r["test_loss"] for r in r_res.history] == [r["test_loss"] for r in r_full.history]
    # a checkpoint of another configuration is ignored, not resumed
    other = RecurrentEnsemble(_spec(), [1, 2], dtype=F64)
    r_other = fit(other, train, test, FitSettings(epochs=6, **settings), checkpoint=ckpt, fingerprint="b")
    assert r_other.resumed_from_epoch == 0


def test_settings_must_have_one_entry_per_member():
    train, test = _data()
    ens = RecurrentEnsemble(_spec(), [1, 2], dtype=F64)
    with pytest.raises(ValueError, match="settings.lr has 1 entries for 2 members"):
        fit(ens, train, test, FitSettings(epochs=1, batch_size=4, lr=[1e-3], weight_decay=[0, 0], seeds=[0, 1]))
