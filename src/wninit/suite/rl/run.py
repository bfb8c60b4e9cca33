"""One RL run (`RunConfig(task="rl")`): A2C with a deep IMPALA trunk on a MinAtar game, in `epochs` equal
chunks of `env_steps / epochs` environment steps; after each chunk the mean return of the last
`RETURN_WINDOW` finished episodes is recorded and, with `out_dir`, a checkpoint is written.

A rerun from the checkpoint continues bit for bit on CPU (same thread count): the checkpoint holds the
policy, RMSprop's state, torch's, numpy's and python's global streams (stable-baselines3 samples actions
from torch's), and the whole vector env pickled: each game's state, its own numpy stream (sticky actions,
spawns) and the episodes in progress, with the last observation the agent saw. Not kept: each finished
episode's wall-clock time, which stable-baselines3 records beside its return and which no result uses.
"""
from __future__ import annotations

import io
import pickle
import random
import time
from pathlib import Path

import numpy as np
import torch

from wninit.errors import UserError
from wninit.suite.train import checkpoint as ckpt_files
from wninit.suite.train.config import RunConfig
from wninit.suite.train.monitor import Monitor
from wninit.suite.train.result import RunResult
from wninit.suite.train.runtime import env, resolve_device, run_scope

__all__ = ["fit_rl", "chunk_steps", "RETURN_WINDOW"]

# The return at a point of the curve: the mean over the last 100 finished episodes (stable-baselines3's window).
RETURN_WINDOW = 100


# What a resume reads from an RL run's checkpoint (written by _save below).
RESUME_KEYS = ("run_id", "policy", "optimizer", "torch_rng", "rest", "wall_s")

def chunk_steps(cfg: RunConfig) -> int:
    """Environment steps per chunk: `env_steps / epochs`, a whole number of A2C rollouts (n_envs x n_steps)."""
    from wninit.suite.rl.agent import A2C_SETTINGS

    rollout = cfg.n_envs * A2C_SETTINGS["n_steps"]
    if cfg.env_steps % cfg.epochs or (cfg.env_steps // cfg.epochs) % rollout:
        raise UserError(f"RunConfig.env_steps {cfg.env_steps} must split into {cfg.epochs} chunks (epochs) of a "
                        f"multiple of {rollout} steps (n_envs x {A2C_SETTINGS['n_steps']} A2C steps)")
    return cfg.env_steps // cfg.epochs


def fit_rl(cfg: RunConfig, *, out_dir: str | Path | None = None, resume: bool = True, progress: bool = False,
           on_epoch=None) -> RunResult:
    """Train `cfg` (`task="rl"`) and return its [`RunResult`][wninit.suite.train.result.RunResult] with the return curve in `returns`.

    Global streams (torch's, numpy's, python's) and the thread count are the caller's again afterwards.
    `on_epoch` is called with each chunk's row after its checkpoint is written.
    """
    cfg = cfg.resolved()
    steps = chunk_steps(cfg)
    device = resolve_device(cfg.device)
    if device.type != "cpu":
        raise UserError(f"RL runs train on the CPU (the 10x10 games step on it), got device {cfg.device!r}")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and resume:
        finished = ckpt_files.read_result(out, cfg)
        if finished is not None:
            return finished
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        with run_scope(cfg.threads, device):
            return _run(cfg, steps, device, out, resume, progress, on_epoch)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _run(cfg, steps, device, out, resume, progress, on_epoch) -> RunResult:
    from wninit.suite.rl.agent import build_agent
    from wninit.suite.rl.games import make_vec_env

    started = time.perf_counter()
    if out is not None and not resume:
        ckpt_files.clear_run_files(out)
    state = ckpt_files.load_checkpoint(out, cfg, RESUME_KEYS) if out is not None and resume else None
    agent = build_agent(cfg, make_vec_env(cfg.dataset, cfg.n_envs, cfg.seed))
    rows, wall_before = ([], 0.0) if state is None else _restore(agent, state)
    with Monitor(progress, False, out, cfg.epochs, len(rows), f"rl run {cfg.run_id}") as monitor:
        for epoch in range(len(rows), cfg.epochs):
            agent.learn(steps, reset_num_timesteps=epoch == 0)
            returns = [e["r"] for e in agent.ep_info_buffer]
            rows.append({"epoch": epoch, "env_steps": agent.num_timesteps, "lr": cfg.lr,
                         "return_mean": float(np.mean(returns)) if returns else None, "episodes": agent._episode_num,
                         "train_loss": None, "val_loss": None, "train_acc": None, "val_acc": None})
            wall = wall_before + time.perf_counter() - started
            if out is not None:
                _save(out, cfg, agent, rows, wall)
            monitor.epoch(rows[-1])
            if on_epoch is not None:
                on_epoch(dict(rows[-1]))
    result = RunResult(run_id=cfg.run_id, status="completed", epochs_done=len(rows), epochs=rows,
                       returns=[[r["env_steps"], r["return_mean"]] for r in rows],
                       wall_s=wall_before + time.perf_counter() - started, config=cfg.to_dict(),
                       env=env(device, cfg.seed, rl_library=_library_version()))
    if out is not None:
        ckpt_files.write_result(out, result)
    return result


def _library_version() -> str:
    import stable_baselines3

    return f"stable-baselines3 {stable_baselines3.__version__}"


def _save(out: Path, cfg: RunConfig, agent, rows: list[dict], wall: float) -> None:
    # Everything that is not a tensor travels as one pickled byte tensor: the checkpoint loads with
    # weights_only=True, which reads tensors and plain containers only.
    from wninit.suite.rl.games import env_state

    # an episode's wall-clock time ("t") is left out: it differs between a run and its resumed twin
    episodes = [{"r": e["r"], "l": e["l"]} for e in agent.ep_info_buffer]
    rest = {"env": env_state(agent.env), "last_obs": agent._last_obs, "episode_starts": agent._last_episode_starts,
            "num_timesteps": agent.num_timesteps, "n_updates": agent._n_updates, "episode_num": agent._episode_num,
            "ep_info_buffer": episodes, "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(), "rows": rows}
    blob = torch.frombuffer(bytearray(pickle.dumps(rest)), dtype=torch.uint8)
    ckpt_files.save_checkpoint(out, {"run_id": cfg.run_id, "policy": agent.policy.state_dict(),
                                     "optimizer": agent.policy.optimizer.state_dict(),
                                     "torch_rng": torch.get_rng_state(), "rest": blob, "wall_s": wall})


def _restore(agent, state: dict) -> tuple[list[dict], float]:
    from collections import deque

    from wninit.suite.rl.games import set_env_state

    rest = pickle.load(io.BytesIO(state["rest"].numpy().tobytes()))
    agent.policy.load_state_dict(state["policy"])
    agent.policy.optimizer.load_state_dict(state["optimizer"])
    set_env_state(agent.env, rest["env"])
    agent._last_obs, agent._last_episode_starts = rest["last_obs"], rest["episode_starts"]
    agent.num_timesteps, agent._n_updates, agent._episode_num = (rest["num_timesteps"], rest["n_updates"],
                                                                  rest["episode_num"])
    agent.ep_info_buffer = deque(rest["ep_info_buffer"], maxlen=agent._stats_window_size)
    agent.ep_success_buffer = deque(maxlen=agent._stats_window_size)
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(rest["numpy_rng"])
    random.setstate(rest["python_rng"])
    return rest["rows"], state["wall_s"]
