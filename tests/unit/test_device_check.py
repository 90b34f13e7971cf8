"""The device is checked when the workflow is planned: cuda/mps asked for and absent is an error
naming the key; auto reports what it chose."""

import pytest
import torch

from gnode.runtime import check_device


def test_absent_cuda_and_mps_are_errors_naming_the_key(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="config key 'device': device: cuda was asked for, but torch sees no CUDA"):
        check_device("cuda")
    with pytest.raises(RuntimeError, match="config key 'device': device: mps was asked for"):
        check_device("mps")
    said = []
    assert check_device("auto", log=said.append) == torch.device("cpu") and said == ["device: auto chose cpu"]
    assert check_device("cpu", log=said.append) == torch.device("cpu") and len(said) == 1  # only auto reports


def test_planning_for_other_machines_checks_nothing_here(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    said = []
    assert check_device("cuda", log=said.append, here=False) == torch.device("cuda")
    assert said == ["device: cuda is checked on the machines that run the jobs"]
