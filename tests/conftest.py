"""Shared test settings: one torch thread (2-core CI machines; oversubscription is very slow)."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def f64():
    return torch.float64
