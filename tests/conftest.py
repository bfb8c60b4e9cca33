import os

import pytest
import torch

# Two worker processes (pytest -n 2) with one torch thread each are the fastest use of CI's 2 cores; a
# single pytest process gets both threads.
_default_threads = "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2"
torch.set_num_threads(int(os.environ.get("WNINIT_TEST_THREADS", _default_threads)))


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


@pytest.fixture
def one_thread():
    """Small models: one torch thread is faster than two, and steady on a loaded 2-core machine; restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
