"""The actor-critic agent: stable-baselines3's A2C (the synchronous A3C of the poster, docs/method.md §7.7) whose
policy and value heads read one shared [`wninit.models.ImpalaNet`][wninit.models.impala.ImpalaNet], initialized by `wninit.initialize`.
"""
from __future__ import annotations

import torch

import wninit
from wninit.models import ImpalaNet

__all__ = ["A2C_SETTINGS", "build_agent", "impala_of"]

# docs/method.md §7.7: A2C with RMSprop as stable-baselines3's defaults (n_steps 5, gamma 0.99, value
# coefficient 0.5, gradient clipping 0.5), entropy bonus 0.01 as in A3C; the learning rate is RunConfig.lr.
A2C_SETTINGS = dict(n_steps=5, gamma=0.99, gae_lambda=1.0, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5)


def _extractor_class():
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class ImpalaExtractor(BaseFeaturesExtractor):
        """MinAtar's (H, W, C) boolean frames, channels first, through the IMPALA trunk."""

        def __init__(self, observation_space, depth: int, width: int, norm: str):
            h, w, c = observation_space.shape
            net = ImpalaNet((c, h, w), depth, width=width, norm=norm)
            super().__init__(observation_space, net.features_dim)
            self.net = net

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.net(obs.permute(0, 3, 1, 2).float())

    return ImpalaExtractor


def impala_of(agent) -> ImpalaNet:
    """The agent's shared IMPALA trunk."""
    return agent.policy.features_extractor.net


def build_agent(cfg, vec_env):
    """An A2C agent for `cfg` (`task="rl"`) on `vec_env`, its trunk initialized by `cfg.scheme`.

    stable-baselines3 seeds python's, numpy's and torch's global streams with `cfg.seed` and builds the
    policy (its orthogonal init switched off: the trunk's init is the experiment); then one call
    `wninit.initialize(trunk, scheme)` sets the trunk. The plain net under `pytorch-default` keeps the
    init its layers were built with, PyTorch's own (docs/method.md §7.7: the poster's un-normalized IMPALA).
    The two heads are plain Linear layers with PyTorch's default init, as the classifier heads
    (docs/method.md §3.5a).
    """
    from stable_baselines3 import A2C

    policy_kwargs = dict(features_extractor_class=_extractor_class(), net_arch=[], ortho_init=False,
                         features_extractor_kwargs=dict(depth=cfg.depth, width=cfg.width, norm=cfg.norm))
    agent = A2C("MlpPolicy", vec_env, learning_rate=cfg.lr, policy_kwargs=policy_kwargs, seed=cfg.seed,
                device="cpu", verbose=0, **A2C_SETTINGS)
    if not (cfg.norm == "none" and cfg.scheme == "pytorch-default"):
        wninit.initialize(impala_of(agent), cfg.scheme, direction=cfg.direction)
    return agent
