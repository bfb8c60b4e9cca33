"""Reinforcement learning: the poster's deep-IMPALA actor-critic result on MinAtar (docs/method.md §7.7).

`games` holds the games and their vector environments, `agent` the A2C agent around
[`wninit.models.ImpalaNet`][wninit.models.impala.ImpalaNet], `run` one resumable run (`RunConfig(task="rl")`).
Needs the `rl` extra (stable-baselines3, gymnasium, minatar), imported where used.
"""
