"""The flip-flop training job: the experiment's initial state, selection, batch order and init reach the model and fit."""

import copy
from pathlib import Path

import pytest
import torch
import yaml

from gnode import plan
from gnode.config import merge_config, validate_config
from gnode.models import RecurrentEnsemble, input_means, load_model
from gnode.studies import flipflop as ff
from gnode.studies.flipflop_data import data_settings, prepare_data

ROOT = Path(__file__).resolve().parents[2]


def _config(**experiment):
    # the tiny test overlay on the default profile, as the workflow's tests run it
    raw = merge_config(*(yaml.safe_load((ROOT / f).read_text()) for f in ("config/config.yaml", "config/test/config.yaml")))
    raw = copy.deepcopy(raw)
    exp = raw["flipflop"]["experiments"]["3bit_fixed"]
    exp.update(epochs=2, seeds=[0], batch_size=[20], **{k: v for k, v in experiment.items() if k != "integration"})
    exp["integration"] = {**exp["integration"], **experiment.get("integration", {})}
    raw["flipflop"]["data"].update(n_trials=60, n_train=40, n_bins=12)
    return validate_config(raw)


@pytest.mark.parametrize("initial_state,select_every,shuffle,init", [
    ("learned_affine", "iteration", False, "critical"),
    ("fixed_random", "epoch", True, "critical"),
    ("zeros", "epoch", True, "xavier"),
])
def test_train_job_passes_the_protocol_settings_through(tmp_path, monkeypatch, initial_state, select_every, shuffle, init):
    cfg = _config(initial_state=initial_state, select_every=select_every, shuffle=shuffle, integration={"init": init})
    settings = plan.flipflop_train_settings(cfg, "3bit_fixed", "gnode")
    assert (settings.initial_state, settings.select_every, settings.shuffle) == (initial_state, select_every, shuffle)
    data = tmp_path / "data.parquet"
    prepare_data(data_settings(cfg, "3bit_fixed"), data)
    seen = {}

    class Spy(RecurrentEnsemble):  # records what the job gives the model and fit
        def __init__(self, *args, **kwargs):
            if kwargs.get("initialise", True):  # not the merge of the groups (concat_ensembles)
                seen["model"] = kwargs
            super().__init__(*args, **kwargs)

    def spy_fit(model, train, test, settings, **kw):
        seen["fit"] = settings
        return ff_fit(model, train, test, settings, **kw)

    ff_fit = ff.fit
    monkeypatch.setattr(ff, "RecurrentEnsemble", Spy)
    monkeypatch.setattr(ff, "fit", spy_fit)
    ff.train_job(settings, 4, data, tmp_path / "m.pt", tmp_path / "h.parquet")
    assert (seen["fit"].select_every, seen["fit"].shuffle) == (select_every, shuffle)
    xtr, _ = ff.arrays(ff.io.read_table(data), "train")
    mean_input, mean_first = input_means(torch.as_tensor(xtr, dtype=torch.float64))
    torch.testing.assert_close(seen["model"]["mean_input"], mean_input, rtol=0, atol=0)
    torch.testing.assert_close(seen["model"]["mean_first_input"], mean_first, rtol=0, atol=0)
    model, extra = load_model(tmp_path / "m.pt")
    assert model.spec.initial_state == initial_state and model.spec.init == init
    assert all(r["best_iteration"] >= 1 for r in extra["results"])
    if initial_state == "fixed_random":  # not trained: the saved h0 is the initial draw
        spec = ff.model_spec("gnode", 4, 3, flow=settings.flow, integration=settings.integration,
                             initial_state=settings.initial_state)
        fresh = RecurrentEnsemble(spec, [r["seed_init"] for r in extra["results"]], mean_input=mean_input,
                                  mean_first_input=mean_first)
        assert torch.equal(model.h0, fresh.h0)
