"""The RL experiment (docs/method.md §7.7): the IMPALA trunk's init in one call, an agent whose trunk that call
set, and a run killed mid-way that resumes equal to its uninterrupted twin."""
import math
import os
import pickle
import signal
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import wninit
from wninit.errors import UserError
from wninit.models import ImpalaNet
from wninit.weightnorm.access import wn_g

pytest.importorskip("stable_baselines3", reason="the rl extra")  # CI installs it with the test extra
pytest.importorskip("minatar", reason="the rl extra")

from wninit.suite.rl.agent import build_agent, impala_of  # noqa: E402
from wninit.suite.rl.games import make_vec_env  # noqa: E402
from wninit.suite.train.config import RunConfig  # noqa: E402

SQRT2, SQRTE = math.sqrt(2), math.sqrt(math.e)
# The per-stage bound's tolerance, 10% each side, as tests/test_propagation.py: at finite width the cross term
# of each block does not average out. Measured on this net (width 64, 64x64 inputs) over seeds 0-3, the stage
# factors lie in [1.39, 1.72].
LOW, HIGH = SQRT2 / 1.1, SQRTE * 1.1


def _stage_factors(net: ImpalaNet, x: torch.Tensor) -> list[float]:
    """||stack output|| / ||stack input to its blocks|| per stack (after the stack's conv and max-pool)."""
    out = []
    with torch.no_grad():
        for stack in net.stacks:
            pooled = F.max_pool2d(stack.conv(x), 3, stride=2, padding=1)
            x = stack.blocks(pooled)
            out.append((x.flatten(1).norm(dim=1) / pooled.flatten(1).norm(dim=1)).mean().item())
    return out


def test_impala_stages_grow_inside_the_theory_band_under_proposed_and_explode_under_pytorch_default():
    """docs/method.md §3.4: a stage of B blocks multiplies the norm by (1 + 1/B)^(B/2), in [sqrt 2, sqrt e].
    64x64 inputs keep the maps (32, 16, 8) large enough that zero padding does not eat the energy."""
    torch.manual_seed(0)
    net = ImpalaNet((3, 64, 64), depth=34, width=64)
    x = torch.randn(4, 3, 64, 64)
    records = wninit.initialize(net, "proposed", generator=torch.Generator().manual_seed(0))
    assert len(records) == 3 + 2 * 5 * 3 + 1  # one call set every conv and the Linear
    factors = _stage_factors(net, x)
    assert all(LOW <= f <= HIGH for f in factors), factors
    wninit.initialize(net, "pytorch-default", generator=torch.Generator().manual_seed(0))
    exploded = _stage_factors(net, x)  # g = ||v||: the blocks are not scaled by 1/B (1.93, 2.31, 2.36)
    assert all(f > HIGH for f in exploded), exploded


@pytest.mark.parametrize("norm,scheme", [("wn", "proposed"), ("wn", "proposed-backward"), ("wn", "hanin"),
                                         ("wn", "pytorch-default"), ("none", "he"), ("none", "orthogonal"),
                                         ("none", "xavier"), ("bn", "he")])
def test_impala_initializes_in_one_call_with_each_scheme(norm, scheme):
    torch.manual_seed(0)
    net = ImpalaNet((4, 10, 10), depth=10, num_classes=6, norm=norm)
    records = wninit.initialize(net, scheme)
    assert len(records) == 3 + 6 + 1  # the head keeps PyTorch's default (docs/method.md §3.5a)
    out = net(torch.rand(8, 4, 10, 10))
    assert out.shape == (8, 6) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_impala_depth_is_6n_plus_4():
    assert ImpalaNet((4, 10, 10), depth=100).blocks_per_stage == 16
    with pytest.raises(UserError, match="6N\\+4"):
        ImpalaNet((4, 10, 10), depth=99)


def _cfg(**kw) -> RunConfig:
    base = dict(task="rl", dataset="minatar-breakout", arch="impala", depth=10, width=4, lr=7e-4, n_envs=4,
                env_steps=120, epochs=3, seed=3, threads=1)
    return RunConfig(**{**base, **kw})


def test_the_agents_trunk_is_the_one_wninit_initialized():
    """stable-baselines3's orthogonal init is off: the block_out gains are the proposed 1/sqrt(B_k)."""
    cfg = _cfg(depth=16)  # N = 2 blocks per stack
    agent = build_agent(cfg, make_vec_env(cfg.dataset, cfg.n_envs, cfg.seed))
    conv2 = impala_of(agent).stacks[1].blocks[0].conv2
    assert torch.allclose(wn_g(conv2), torch.full_like(wn_g(conv2), math.sqrt(1 / 2)))


def test_rl_config_names_what_is_wrong():
    with pytest.raises(UserError, match="game"):
        RunConfig(task="rl", dataset="mnist5k", arch="impala", depth=10, env_steps=10)
    with pytest.raises(UserError, match="task='rl'"):
        RunConfig(dataset="minatar-breakout", arch="impala", depth=10)
    with pytest.raises(UserError, match="env_steps"):
        _cfg(env_steps=0)
    from wninit.suite.rl.run import fit_rl
    with pytest.raises(UserError, match="chunks"):
        fit_rl(_cfg(env_steps=100))


_KILLED = """
import os, signal, sys
from wninit.suite.rl.run import fit_rl
from wninit.suite.train.config import RunConfig
cfg = RunConfig.from_json(sys.argv[1])
fit_rl(cfg, out_dir=sys.argv[2], on_epoch=lambda row: row["epoch"] == 1 and os.kill(os.getpid(), signal.SIGKILL))
"""


def test_an_rl_run_killed_after_a_chunk_resumes_equal_to_its_uninterrupted_twin(tmp_path):
    """SIGKILL after chunk 2 of 3, rerun: the curve, the policy, RMSprop's state and the games equal the twin's."""
    from wninit.suite.rl.run import RESUME_KEYS, fit_rl
    from wninit.suite.train.checkpoint import load_checkpoint

    cfg = _cfg()
    twin = fit_rl(cfg, out_dir=tmp_path / "twin")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", _KILLED, cfg.to_json(), str(tmp_path / "run")], env=env)
    assert done.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "result.json").exists()
    seen = []
    resumed = fit_rl(cfg, out_dir=tmp_path / "run", on_epoch=lambda row: seen.append(row["epoch"]))
    assert seen == [2]  # only the last chunk ran again
    assert resumed.metrics() == twin.metrics() and resumed.returns[-1][0] == 120
    a, b = (load_checkpoint(tmp_path / d, cfg, RESUME_KEYS) for d in ("twin", "run"))
    for key in ("policy",):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert str(a["optimizer"]) == str(b["optimizer"])
    ra, rb = (pickle.loads(c["rest"].numpy().tobytes()) for c in (a, b))
    assert ra["rows"] == rb["rows"] and ra["ep_info_buffer"] == rb["ep_info_buffer"]
    assert (ra["last_obs"] == rb["last_obs"]).all() and ra["num_timesteps"] == rb["num_timesteps"] == 120
    assert str(ra["numpy_rng"]) == str(rb["numpy_rng"]) and ra["python_rng"] == rb["python_rng"]
    for ga, gb in zip(ra["env"]["games"], rb["env"]["games"], strict=True):  # each game and its own stream
        assert (ga.state() == gb.state()).all() and str(ga.random.get_state()) == str(gb.random.get_state())
