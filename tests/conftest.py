import os

import pytest
import torch

# Two worker processes with one torch thread each are the fastest use of CI's 2 cores; a single pytest
# process gets both threads.
torch.set_num_threads(int(os.environ.get("WNINIT_TEST_THREADS", "2")))


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)
