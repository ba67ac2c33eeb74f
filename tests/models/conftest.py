"""Model tests run one intra-op thread: their tensors are tiny, and on a shared 2-core machine the
thread pool's synchronisation costs far more than it saves (seconds instead of milliseconds)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
