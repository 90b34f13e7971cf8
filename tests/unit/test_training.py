"""Training: per-member AdamW, ensemble = members one by one, divergence, checkpoints."""

import math

import pytest
import torch

from gnode.models import INITIAL_STATES, ModelSpec, RecurrentEnsemble
from gnode.tasks import flipflop
from gnode.training import FitSettings, StackedAdamW, evaluate_loss, fit, member_mse

F64 = torch.float64


def _data(n=24, t=15, seed=0, dtype=F64):
    d = flipflop.generate("3bit_fixed", n, seed=seed, n_bins=t, rate=3)
    x, y = torch.as_tensor(d.inputs, dtype=dtype), torch.as_tensor(d.targets, dtype=dtype)
    return (x[: n - 8], y[: n - 8]), (x[n - 8 :], y[n - 8 :])


def _spec(kind="gnode", initial_state="zeros"):
    return ModelSpec(kind=kind, n_input=3, n_hidden=4, n_output=3, depth=1, width=6, tau=0.1, dt=0.1,
                     initial_state=initial_state)


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


CASES = [("gru", "zeros", "epoch", True), ("gnode", "zeros", "epoch", True)] + [
    ("gnode", mode, select, shuffle)
    for mode, (select, shuffle) in zip(INITIAL_STATES, [("iteration", False), ("epoch", False), ("iteration", True),
                                                         ("epoch", True)])
] + [("gru", "learned_affine", "iteration", True), ("gru", "fixed_random", "epoch", False)]


@pytest.mark.parametrize("kind,initial_state,select_every,shuffle", CASES)
def test_ensemble_equals_members_trained_one_by_one(kind, initial_state, select_every, shuffle):
    train, test = _data()
    lrs, wds, seeds = [1e-2, 3e-3, 1e-3], [0.0, 0.1, 0.01], [7, 8, 9]
    opts = dict(select_every=select_every, shuffle=shuffle)
    settings = FitSettings(epochs=3, batch_size=5, lr=lrs, weight_decay=wds, seeds=seeds, **opts)
    spec = _spec(kind, initial_state)
    ens = RecurrentEnsemble(spec, [1, 2, 3], dtype=F64)
    start = {n: t.detach().clone() for n, t in ens.state_dict().items()}
    res = fit(ens, train, test, settings)
    for m in range(3):
        one = RecurrentEnsemble(spec, [m + 1], dtype=F64)
        s1 = FitSettings(epochs=3, batch_size=5, lr=[lrs[m]], weight_decay=[wds[m]], seeds=[seeds[m]], **opts)
        r1 = fit(one, train, test, s1)
        for name, p in one.state_dict().items():  # parameters and buffers (a fixed h0)
            torch.testing.assert_close(getattr(ens, name)[m], p[0], rtol=1e-10, atol=1e-12, msg=name)
            torch.testing.assert_close(res.best_state[name][m], r1.best_state[name][0], rtol=1e-10, atol=1e-12)
        assert res.best_epoch[m] == r1.best_epoch[0] and res.best_iteration[m] == r1.best_iteration[0]
    # the members did learn different things
    assert not torch.allclose(ens.W_o[0], ens.W_o[1])
    # a learned affine h0 is trained; a fixed one is not
    if initial_state == "learned_affine":
        assert not torch.allclose(ens.A_h0, start["A_h0"]) and not torch.allclose(ens.b_h0, start["b_h0"])
    if initial_state == "fixed_random":
        assert torch.equal(ens.h0, start["h0"]) and torch.equal(res.best_state["h0"], start["h0"])


def test_per_iteration_selection_keeps_the_best_step_and_batches_come_in_order():
    """select_every=iteration, shuffle=False against a hand-written loop: in-order batches, AdamW,
    the test loss after every step; the best state is the step of the lowest test loss."""
    train, test = _data(n=40, t=15)
    lrs, wds = [3e-2, 1e-2], [0.1, 0.0]
    kw = dict(epochs=3, batch_size=7, lr=lrs, weight_decay=wds, seeds=[5, 6])
    ens = RecurrentEnsemble(_spec("gnode", "learned_affine"), [1, 2], dtype=F64)
    ref = RecurrentEnsemble(_spec("gnode", "learned_affine"), [1, 2], dtype=F64)
    res = fit(ens, train, test, FitSettings(**kw, select_every="iteration", shuffle=False))
    opt = StackedAdamW(list(ref.parameters()), torch.tensor(lrs, dtype=F64), torch.tensor(wds, dtype=F64))
    losses = []
    for _ in range(3):
        for i in range(0, len(train[0]), 7):
            for p in ref.parameters():
                p.grad = None
            member_mse(ref(train[0][i : i + 7])[0], train[1][i : i + 7]).sum().backward()
            opt.step(torch.tensor([True, True]))
            losses.append(evaluate_loss(ref, *test))
    for name, p in ref.named_parameters():
        torch.testing.assert_close(getattr(ens, name), p, rtol=1e-10, atol=1e-12, msg=name)
    losses = torch.stack(losses)  # (steps, E)
    steps_per_epoch = math.ceil(len(train[0]) / 7)
    assert res.best_iteration == (losses.argmin(0) + 1).tolist()
    assert res.best_epoch == ((losses.argmin(0)) // steps_per_epoch + 1).tolist()
    torch.testing.assert_close(torch.tensor(res.best_test_loss, dtype=F64), losses.min(0).values)
    ens.load_state_dict(res.best_state)
    torch.testing.assert_close(evaluate_loss(ens, *test), losses.min(0).values)
    # the history still has one row per epoch, with the end-of-epoch test loss
    ends = losses[steps_per_epoch - 1 :: steps_per_epoch]
    assert [r["test_loss"] for r in res.history if r["member"] == 0] == ends[:, 0].tolist()
    # per-epoch selection sees only the epoch ends: worse exactly when the best step is inside an epoch
    by_epoch = fit(RecurrentEnsemble(_spec("gnode", "learned_affine"), [1, 2], dtype=F64), train, test,
                   FitSettings(**kw, select_every="epoch", shuffle=False))
    torch.testing.assert_close(torch.tensor(by_epoch.best_test_loss, dtype=F64), ends.min(0).values)
    for m in range(2):
        inside = res.best_iteration[m] % steps_per_epoch != 0
        assert (res.best_test_loss[m] < by_epoch.best_test_loss[m]) == inside
        assert res.best_test_loss[m] <= by_epoch.best_test_loss[m]


def test_in_order_batches_ignore_the_data_order_seed():
    train, test = _data()
    kw = dict(epochs=2, batch_size=5, lr=[1e-2], weight_decay=[0.0])
    runs = {}
    for shuffle in (False, True):
        for seed in (3, 4):
            ens = RecurrentEnsemble(_spec(), [1], dtype=F64)
            fit(ens, train, test, FitSettings(**kw, seeds=[seed], shuffle=shuffle))
            runs[shuffle, seed] = ens.W_o.detach().clone()
    assert torch.equal(runs[False, 3], runs[False, 4])
    assert not torch.allclose(runs[True, 3], runs[True, 4]) and not torch.allclose(runs[False, 3], runs[True, 3])


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
    fit(alone, tr, te, FitSettings(epochs=6, batch_size=8, lr=[1e-3], weight_decay=[0], seeds=[1]))
    torch.testing.assert_close(ens.W_1[1], alone.W_1[0], rtol=1e-5, atol=1e-6)
    assert math.isfinite(res.best_test_loss[1]) and math.isinf(res.best_test_loss[0])
    assert all(math.isnan(r["test_loss"]) for r in res.history if r["member"] == 0)


@pytest.mark.parametrize("select_every,shuffle,initial_state", [("epoch", True, "zeros"),
                                                                ("iteration", False, "learned_affine"),
                                                                ("iteration", True, "fixed_random")])
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(tmp_path, select_every, shuffle, initial_state):
    train, test = _data()
    settings = dict(batch_size=5, lr=[1e-2, 1e-3], weight_decay=[0.1, 0.0], seeds=[3, 4], checkpoint_every=2,
                    select_every=select_every, shuffle=shuffle)
    spec = _spec("gnode", initial_state)
    full = RecurrentEnsemble(spec, [1, 2], dtype=F64)
    r_full = fit(full, train, test, FitSettings(epochs=6, **settings))
    # "killed" after epoch 4: a first run stops there, a second run resumes from the file
    ckpt = tmp_path / "ck.pt"
    part = RecurrentEnsemble(spec, [1, 2], dtype=F64)
    fit(part, train, test, FitSettings(epochs=4, **settings), checkpoint=ckpt, fingerprint="a")
    resumed = RecurrentEnsemble(spec, [1, 2], dtype=F64)
    r_res = fit(resumed, train, test, FitSettings(epochs=6, **settings), checkpoint=ckpt, fingerprint="a")
    assert r_res.resumed_from_epoch == 4
    for name, p in full.state_dict().items():
        torch.testing.assert_close(getattr(resumed, name), p, rtol=0, atol=0)
        torch.testing.assert_close(r_res.best_state[name], r_full.best_state[name], rtol=0, atol=0)
    assert [r["test_loss"] for r in r_res.history] == [r["test_loss"] for r in r_full.history]
    assert r_res.best_iteration == r_full.best_iteration and r_res.best_test_loss == r_full.best_test_loss
    # a checkpoint of another configuration is ignored, not resumed
    other = RecurrentEnsemble(spec, [1, 2], dtype=F64)
    r_other = fit(other, train, test, FitSettings(epochs=6, **settings), checkpoint=ckpt, fingerprint="b")
    assert r_other.resumed_from_epoch == 0
    # a damaged checkpoint is ignored too (its epochs are lost, not the job), and the run equals a fresh one
    raw = bytearray(ckpt.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    ckpt.write_bytes(bytes(raw))
    fresh = RecurrentEnsemble(spec, [1, 2], dtype=F64)
    r_fresh = fit(fresh, train, test, FitSettings(epochs=6, **settings), checkpoint=ckpt, fingerprint="a")
    assert r_fresh.resumed_from_epoch == 0
    assert [r["test_loss"] for r in r_fresh.history] == [r["test_loss"] for r in r_full.history]


def test_settings_must_have_one_entry_per_member():
    train, test = _data()
    ens = RecurrentEnsemble(_spec(), [1, 2], dtype=F64)
    with pytest.raises(ValueError, match="settings.lr has 1 entries for 2 members"):
        fit(ens, train, test, FitSettings(epochs=1, batch_size=4, lr=[1e-3], weight_decay=[0, 0], seeds=[0, 1]))


# ------------------------------------------------ irregular time, classification, early stopping
from gnode.training import SequenceData, evaluate, last_valid, member_loss  # noqa: E402


def _seq_data(n=20, t=9, i=3, classes=4, seed=0, dtype=F64):
    """Variable-length classification sequences with irregular bin widths; the class is the sign
    pattern of the mean of the first two channels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, i, generator=g, dtype=dtype)
    lengths = torch.randint(3, t + 1, (n,), generator=g)
    dt = 0.05 + 0.1 * torch.rand(n, t, generator=g, dtype=dtype)
    m = x[:, :3, :2].mean(1)
    y = ((m[:, 0] > 0).long() * 2 + (m[:, 1] > 0).long()) % classes
    return SequenceData(x, y, dt=dt, lengths=lengths)


def _split(d: SequenceData, a: int, b: int) -> SequenceData:
    return d.take(slice(a, b))


@pytest.mark.parametrize("kind,select_every", [("gru", "epoch"), ("gnode", "epoch"), ("gnode", "iteration")])
def test_ensemble_equals_members_one_by_one_with_val_early_stopping_and_classification(kind, select_every):
    data = _seq_data(n=30)
    train, val, test = _split(data, 0, 18), _split(data, 18, 24), _split(data, 24, 30)
    spec = ModelSpec(kind=kind, n_input=3, n_hidden=5, n_output=4, depth=1, width=6, tau=0.1, dt=0.1)
    lrs, seeds = [0.5, 0.1, 1e-3], [7, 8, 9]  # the fast learners overfit and stop early
    common = dict(epochs=10, batch_size=5, weight_decay=[0.0] * 3, patience=2, schedule="cosine", min_lr_factor=0.2,
                  select_every=select_every)
    ens = RecurrentEnsemble(spec, [1, 2, 3], dtype=F64)
    res = fit(ens, train, test, FitSettings(lr=lrs, seeds=seeds, **common), val=val, task="classification")
    for m in range(3):
        one = RecurrentEnsemble(spec, [m + 1], dtype=F64)
        s1 = FitSettings(lr=[lrs[m]], seeds=[seeds[m]], **{**common, "weight_decay": [0.0]})
        r1 = fit(one, train, test, s1, val=val, task="classification")
        for name, p in one.named_parameters():
            torch.testing.assert_close(getattr(ens, name)[m], p[0], rtol=1e-10, atol=1e-12, msg=name)
            torch.testing.assert_close(res.best_state[name][m], r1.best_state[name][0], rtol=1e-10, atol=1e-12)
        assert res.best_epoch[m] == r1.best_epoch[0] and res.stopped_epoch[m] == r1.stopped_epoch[0]
        assert res.best_iteration[m] == r1.best_iteration[0]
        for key in ("best_test_loss", "test_accuracy", "best_val_loss", "best_val_accuracy"):
            assert getattr(res, key)[m] == pytest.approx(getattr(r1, key)[0], rel=1e-9)
        rows = [r for r in res.history if r["member"] == m]
        assert [r["val_loss"] for r in rows] == pytest.approx([r["val_loss"] for r in r1.history], rel=1e-9)
    assert all(0 <= a <= 1 for a in res.test_accuracy)
    assert any(s > 0 for s in res.stopped_epoch) and -1 in res.stopped_epoch


def test_early_stopping_keeps_the_best_validation_parameters_and_tests_them_once():
    data = _seq_data(n=40, seed=3)
    train, val, test = _split(data, 0, 24), _split(data, 24, 32), _split(data, 32, 40)
    spec = ModelSpec(kind="gnode", n_input=3, n_hidden=5, n_output=4, depth=1, width=6, tau=0.1, dt=0.1)
    ens = RecurrentEnsemble(spec, [1, 2], dtype=F64)
    # member 0 learns so fast that it overfits at once; member 1 barely moves
    settings = FitSettings(epochs=30, batch_size=4, lr=[0.3, 1e-4], weight_decay=[0, 0], seeds=[0, 1], patience=3)
    res = fit(ens, train, test, settings, val=val, task="classification")
    assert 0 < res.stopped_epoch[0] < 30 and res.stopped_epoch[0] == res.best_epoch[0] + 3
    # no row after a member stopped; the validation loss at the best epoch is the minimum
    rows0 = [r for r in res.history if r["member"] == 0]
    assert max(r["epoch"] for r in rows0) == res.stopped_epoch[0]
    assert min(r["val_loss"] for r in rows0) == pytest.approx(res.best_val_loss[0])
    assert {"train_accuracy", "val_accuracy"} <= set(rows0[0]) and "test_loss" not in rows0[0]
    # the reported test metrics are those of the best parameters
    ens.load_state_dict(res.best_state)
    out = evaluate(ens, test, task="classification")
    torch.testing.assert_close(out["loss"], torch.tensor(res.best_test_loss, dtype=F64))
    torch.testing.assert_close(out["accuracy"], torch.tensor(res.test_accuracy, dtype=F64))
    vout = evaluate(ens, val, task="classification")
    torch.testing.assert_close(vout["loss"], torch.tensor(res.best_val_loss, dtype=F64))


def test_classification_reads_out_the_last_valid_bin_only():
    e, b, t, c = 2, 3, 5, 4
    pred = torch.randn(e, b, t, c, dtype=F64)
    lengths = torch.tensor([5, 1, 3])
    out = last_valid(pred, lengths)
    for j, L in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[:, j], pred[:, j, L - 1])
    torch.testing.assert_close(last_valid(pred, None), pred[:, :, -1])
    # a causal model's loss ignores every input after a sequence's end
    data = _seq_data(n=6)
    spec = ModelSpec(kind="node", n_input=3, n_hidden=4, n_output=4, depth=1, width=5, tau=0.1, dt=0.1)
    model = RecurrentEnsemble(spec, [0], dtype=F64)
    x2 = data.x.clone()
    after = torch.arange(data.x.shape[1]) >= data.lengths.unsqueeze(1)
    x2[after] = 100.0
    changed = SequenceData(x2, data.y, data.dt, data.lengths)
    p1, _ = model(data.x, dt=data.dt)
    p2, _ = model(x2, dt=data.dt)
    torch.testing.assert_close(member_loss(p1, data, "classification"), member_loss(p2, changed, "classification"))


def test_regression_masks_bins_after_the_length_and_weights_channels():
    pred = torch.zeros(1, 2, 4, 2, dtype=F64)
    y = torch.ones(2, 4, 2, dtype=F64)
    y[0, 2:] = 50.0  # beyond length 2 of sequence 0: must not count
    data = SequenceData(torch.zeros(2, 4, 1, dtype=F64), y, lengths=torch.tensor([2, 4]))
    assert member_loss(pred, data).item() == pytest.approx(1.0)
    weighted = SequenceData(data.x, y, lengths=data.lengths, weights=torch.tensor([1.0, 3.0], dtype=F64))
    assert member_loss(pred, weighted).item() == pytest.approx(2.0)  # mean of 1 and 3 per bin


@pytest.mark.parametrize("kind", ["node", "gnode"])
def test_a_bin_of_width_2dt_equals_two_bins_of_width_dt(kind):
    """Integration follows the elapsed time: one bin twice as wide with twice the sub-steps is
    exactly two bins of the same input, and a bin of width 0 leaves the state unchanged."""
    torch.manual_seed(0)
    base = dict(kind=kind, n_input=2, n_hidden=4, n_output=1, depth=2, width=5, tau=0.1, dt=0.05)
    fine = RecurrentEnsemble(ModelSpec(**base, substeps=1), [3], dtype=F64)
    coarse = RecurrentEnsemble(ModelSpec(**base, substeps=2), [3], dtype=F64)
    x = torch.randn(3, 6, 2, dtype=F64)
    _, h_fine = fine(x.repeat_interleave(2, dim=1), dt=torch.full((3, 12), 0.05, dtype=F64))
    _, h_coarse = coarse(x, dt=torch.full((3, 6), 0.1, dtype=F64))
    torch.testing.assert_close(h_coarse, h_fine[:, :, 1::2], rtol=1e-12, atol=1e-12)
    dt = torch.full((3, 6), 0.05, dtype=F64)
    dt[:, 3:] = 0.0
    _, h = fine(x, dt=dt)
    torch.testing.assert_close(h[:, :, 3:], h[:, :, 2:3].expand(-1, -1, 3, -1))


def test_cosine_schedule_and_settings_checks():
    s = FitSettings(epochs=5, batch_size=1, lr=[1.0], weight_decay=[0], seeds=[0], schedule="cosine", min_lr_factor=0.1)
    assert s.lr_factor(1) == pytest.approx(1.0) and s.lr_factor(5) == pytest.approx(0.1)
    assert s.lr_factor(3) == pytest.approx(0.55)
    assert FitSettings(epochs=5, batch_size=1, lr=[1.0], weight_decay=[0], seeds=[0]).lr_factor(4) == 1.0
    with pytest.raises(ValueError, match="monitor"):
        FitSettings(epochs=1, batch_size=1, lr=[1.0], weight_decay=[0], seeds=[0], monitor="auc")
    with pytest.raises(ValueError, match="select_every='step' is not one of"):
        FitSettings(epochs=1, batch_size=1, lr=[1.0], weight_decay=[0], seeds=[0], select_every="step")
    with pytest.raises(ValueError, match="shuffle must be a bool"):
        FitSettings(epochs=1, batch_size=1, lr=[1.0], weight_decay=[0], seeds=[0], shuffle=1)
    train, test = _data()
    ens = RecurrentEnsemble(_spec(), [1], dtype=F64)
    with pytest.raises(ValueError, match="needs a validation set"):
        fit(ens, train, test, FitSettings(epochs=1, batch_size=4, lr=[1e-3], weight_decay=[0], seeds=[0], patience=3))
    with pytest.raises(ValueError, match="needs task='classification'"):
        fit(ens, train, test, FitSettings(epochs=1, batch_size=4, lr=[1e-3], weight_decay=[0], seeds=[0],
                                          monitor="accuracy"))


def test_resuming_with_early_stopping_gives_the_uninterrupted_result(tmp_path):
    data = _seq_data(n=30, seed=5)
    train, val, test = _split(data, 0, 18), _split(data, 18, 24), _split(data, 24, 30)
    spec = ModelSpec(kind="gnode", n_input=3, n_hidden=4, n_output=4, depth=1, width=5, tau=0.1, dt=0.1)
    common = dict(batch_size=5, lr=[0.5, 1e-2], weight_decay=[0, 0], seeds=[3, 4], patience=2, checkpoint_every=1,
                  schedule="cosine")
    kw = dict(val=val, task="classification")
    full = RecurrentEnsemble(spec, [1, 2], dtype=F64)
    r_full = fit(full, train, test, FitSettings(epochs=8, **common), **kw)
    ckpt = tmp_path / "ck.pt"
    fit(RecurrentEnsemble(spec, [1, 2], dtype=F64), train, test, FitSettings(epochs=8, **common), checkpoint=ckpt,
        fingerprint="a", **kw)
    state = torch.load(ckpt, weights_only=True)
    assert state["stopped_epoch"] == r_full.stopped_epoch
    # a run killed in epoch 3 (same settings: the cosine schedule spans all 8 epochs) resumes there
    class Killed(Exception):
        pass

    def kill_after_3(summary):
        if summary["epoch"] == 3:
            raise Killed

    ckpt3 = tmp_path / "ck3.pt"
    with pytest.raises(Killed):
        fit(RecurrentEnsemble(spec, [1, 2], dtype=F64), train, test, FitSettings(epochs=8, **common),
            checkpoint=ckpt3, fingerprint="b", on_epoch=kill_after_3, **kw)
    resumed = RecurrentEnsemble(spec, [1, 2], dtype=F64)
    r_res = fit(resumed, train, test, FitSettings(epochs=8, **common), checkpoint=ckpt3, fingerprint="b", **kw)
    assert r_res.resumed_from_epoch == 2  # killed during epoch 3, before its checkpoint
    assert r_res.stopped_epoch == r_full.stopped_epoch and r_res.best_epoch == r_full.best_epoch
    for name, p in full.named_parameters():
        torch.testing.assert_close(getattr(resumed, name), p, rtol=0, atol=0)
    assert r_res.test_accuracy == r_full.test_accuracy
