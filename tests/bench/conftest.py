"""Bench tests run with one intra-op thread: on a shared 2-core machine, two OpenMP threads competing with
other processes spin-wait and make tiny steps 20x slower. Figures are never asserted, only behaviour."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
