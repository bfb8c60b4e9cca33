"""The RL experiment's two measurements, side by side in one run (docs/results.md "RL"):

1. where PyTorch-default WN stops learning: per depth and scheme, the initial policy's entropy over
   log(#actions) on real MinAtar Breakout frames (1 = uniform; near 0 = collapsed onto one action, which A2C's
   entropy bonus hardly lifts) and the trunk's output norm;
2. whether the RL library costs time: stable-baselines3 A2C's environment steps per second against the bare
   trunk's forward (rollout) and forward+backward (update) on the same samples, the floor any library pays.

    python -m wninit.suite.bench.rl [--depths 10 22 40 100] [--steps 3200] [--part init|speed|both]
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from wninit.suite.rl.agent import A2C_SETTINGS, build_agent, impala_of
from wninit.suite.rl.games import make_vec_env
from wninit.suite.train.config import RunConfig

CONFIGS = [("wn", "proposed"), ("wn", "pytorch-default"), ("none", "pytorch-default")]


def frames(n: int) -> torch.Tensor:
    vec = make_vec_env("minatar-breakout", n, seed=0)
    obs = [vec.reset()]
    for _ in range(20):
        obs.append(vec.step(torch.randint(0, vec.action_space.n, (n,)).numpy())[0])
    return torch.as_tensor(obs[-1]).float()


def init_state(depth: int, norm: str, scheme: str, obs: torch.Tensor) -> tuple[float, float]:
    cfg = RunConfig(task="rl", dataset="minatar-breakout", arch="impala", depth=depth, norm=norm, scheme=scheme,
                    env_steps=320, epochs=1, n_envs=4, lr=7e-4)
    agent = build_agent(cfg, make_vec_env(cfg.dataset, 4, 1))
    with torch.no_grad():
        dist = agent.policy.get_distribution(obs)
        entropy = dist.distribution.entropy().mean().item() / math.log(agent.action_space.n)
        feats = impala_of(agent)(obs.permute(0, 3, 1, 2)).norm(dim=1).mean().item()
    return entropy, feats


def speed(depth: int, steps: int) -> tuple[float, float]:
    cfg = RunConfig(task="rl", dataset="minatar-breakout", arch="impala", depth=depth, env_steps=steps, epochs=1,
                    n_envs=16, lr=7e-4)
    agent = build_agent(cfg, make_vec_env(cfg.dataset, cfg.n_envs, 1))
    agent.learn(320)  # warm-up
    # CPU time of this one-threaded process, not wall time: the number holds on a shared machine too
    t = time.process_time()
    agent.learn(steps, reset_num_timesteps=False)
    lib = steps / (time.process_time() - t)
    net, obs = impala_of(agent), torch.rand(cfg.n_envs, 4, 10, 10)
    rollouts = steps // (cfg.n_envs * A2C_SETTINGS["n_steps"])
    t = time.process_time()
    for _ in range(rollouts):
        with torch.no_grad():
            for _ in range(A2C_SETTINGS["n_steps"]):
                net(obs)
        net(obs.repeat(A2C_SETTINGS["n_steps"], 1, 1, 1)).sum().backward()
    return lib, steps / (time.process_time() - t)


def run(quick: bool = False, depths: list[int] | None = None, steps: int | None = None, part: str = "both") -> dict:
    """The trunks' state at init per depth, and the RL library's share of the time (one thread)."""
    depths = depths or ([10, 40] if quick else [10, 22, 40, 100])
    steps = steps or (800 if quick else 3200)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = {"depths": depths, "steps": steps}
        if part != "speed":
            obs = frames(256)
            result["init"] = {d: [init_state(d, n, s, obs) for n, s in CONFIGS] for d in depths}
        if part != "init":
            result["speed"] = {d: speed(d, steps) for d in depths}
        return result
    finally:
        torch.set_num_threads(threads)


def table(result: dict) -> str:
    lines = []
    if "init" in result:
        lines.append("depth  " + "  ".join(f"{n}/{s}: entropy, |features|" for n, s in CONFIGS))
        lines += [f"{d:5d}  " + "  ".join("{:.3f}, {:.3g}".format(*cell) for cell in cells)
                  for d, cells in result["init"].items()]
    if "speed" in result:
        lines.append("depth  A2C steps per CPU-s  bare-network steps per CPU-s  library share of the time")
        lines += [f"{d:5d}  {lib:19.0f}  {bare:28.0f}  {1 - lib / bare:.0%}" for d, (lib, bare) in result["speed"].items()]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depths", type=int, nargs="+", default=[10, 22, 40, 100])
    ap.add_argument("--steps", type=int, default=3200)
    ap.add_argument("--part", choices=("init", "speed", "both"), default="both")
    args = ap.parse_args()
    print(table(run(depths=args.depths, steps=args.steps, part=args.part)))


if __name__ == "__main__":
    main()
