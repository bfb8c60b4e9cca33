"""DistributedDataParallel on CPU (gloo, 2 processes spawned here): the gradients on g and v of every weight-norm
API equal a single process's on the concatenated batch."""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import wninit
from wninit.weightnorm.access import APIS

WORLD = 2


def model_and_batch(api):
    """The same model and batch in every process: the seed makes them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 6, 3), nn.ReLU(), nn.ConvTranspose1d(6, 4, 4, 2), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 14, 3))
    wninit.weight_norm(model, api)
    for _, layer in wninit.weight_normed_layers(model):  # g away from ||v||, so that grad_g and grad_v both matter
        wninit.set_g_(layer, torch.rand(wninit.wn_g(layer).numel()) + 0.5)
    return model, torch.randn(8, 2, 8)


def gradients(model, x):
    model(x).square().mean().backward()
    return {k: p.grad.clone() for k, p in model.named_parameters()}


def _worker(rank, port, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        grads = {}
        for api in APIS:
            model, x = model_and_batch(api)
            grads[api] = gradients(DistributedDataParallel(model), x.chunk(WORLD)[rank])  # each rank: half the batch
            grads[api] = {k.removeprefix("module."): g for k, g in grads[api].items()}
        torch.save(grads, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch built without gloo")
def test_ddp_gradients_on_g_and_v_equal_one_process_on_the_whole_batch(tmp_path):
    out = tmp_path / "grads"
    import torch._dynamo  # noqa: F401 - DistributedDataParallel imports it (3 s): once here, not in each child
    # fork: the children start in milliseconds instead of importing torch again (seconds each on a loaded CPU)
    mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True, start_method="fork")
    for rank in range(WORLD):
        ddp = torch.load(f"{out}.{rank}", weights_only=True)
        for api in APIS:
            want = gradients(*model_and_batch(api))
            assert ddp[api].keys() == want.keys()
            assert any(k.endswith(("g", "original0", "weight_g")) for k in want)  # g and v are what is compared
            for k, g in want.items():
                assert torch.allclose(ddp[api][k], g, rtol=1e-5, atol=1e-7), f"{api} {k} on rank {rank}"
