"""The MinAtar games a run can name (`RunConfig.dataset` with `task="rl"`) and their vector environments."""
from __future__ import annotations

from wninit.errors import UserError

__all__ = ["GAMES", "make_vec_env", "env_state", "set_env_state"]

# RunConfig.dataset name -> MinAtar's game name (Young & Tian, 2019: 10x10 Atari-like games).
GAMES = {"minatar-breakout": "breakout", "minatar-asterix": "asterix", "minatar-freeway": "freeway",
         "minatar-seaquest": "seaquest", "minatar-space-invaders": "space_invaders"}


def _needs_rl_extra(exc: ImportError) -> UserError:
    return UserError(f"RL runs need the rl extra ({exc.name} is missing): pip install 'wninit[rl]'")


def make_vec_env(game: str, n_envs: int, seed: int):
    """`n_envs` copies of `game` (minimal action set, MinAtar's default sticky actions and difficulty
    ramping) in one in-process vector env that reports each finished episode's return.

    In-process (`DummyVecEnv`), not one process per env: the games' state (`env_state`) is then at
    hand for the run's checkpoint, which is what makes a resumed run equal its twin; the network, not the
    10x10 games, is what costs time here.
    """
    if game not in GAMES:
        raise UserError(f"unknown game {game!r}: choose one of {', '.join(GAMES)}")
    try:
        from minatar.gym import BaseEnv
        from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor
    except ImportError as exc:
        raise _needs_rl_extra(exc) from None
    name = GAMES[game]
    vec = DummyVecEnv([lambda: BaseEnv(name, use_minimal_action_set=True)] * n_envs)
    vec.seed(seed)  # env i resets first with seed + i, then draws from its own stream
    return VecMonitor(vec)


def env_state(vec) -> dict:
    """What a resumed run needs of `make_vec_env`'s vector env: each game (its board, its own numpy stream for
    sticky actions and spawns, the last action) and the returns of the episodes in progress."""
    return {"games": [e.unwrapped.game for e in vec.venv.envs], "episode_returns": vec.episode_returns,
            "episode_lengths": vec.episode_lengths, "episode_count": vec.episode_count}


def set_env_state(vec, state: dict) -> None:
    """Put `env_state`'s `state` back into a vector env of the same game and size."""
    for env, game in zip(vec.venv.envs, state["games"], strict=True):
        env.unwrapped.game = game
    vec.episode_returns, vec.episode_lengths = state["episode_returns"], state["episode_lengths"]
    vec.episode_count = state["episode_count"]
