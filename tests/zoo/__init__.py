"""A zoo of compact re-implementations of public architectures, weight-normed, for the "any model" tests.

Each module builds its model from the paper's description (not from its code), says in its docstring
what is weight-normed and, in one ``NOTE:`` line each, how it differs from the original. All but
HiFi-GAN use ``torch.nn.utils.parametrizations.weight_norm``; HiFi-GAN the legacy
``torch.nn.utils.weight_norm``, as the original does; each ``build`` takes ``api="torch"|"legacy"``.

``ZOO[name] = (build, input_shape)`` (the first eight, which torch.fx traces); ``MODERN_ZOO`` the
post-2019 branch shapes (MBConv+SE+stochastic depth, ConvNeXt, DenseNet, ViT, fused BatchNorm+ReLU);
``ALL_ZOO`` both; ``EXPECTED_WN_LAYERS[name]`` is the weight-normed layer count of
``build()`` at its defaults.

Examples:
    >>> import torch
    >>> build, shape = ZOO["resnet50"]
    >>> y = build()(torch.randn(shape))
"""
from __future__ import annotations

from . import (convnext, densenet, hifigan_generator, impala_cnn, mbconv, mixer, mobilenet_v1, preact_fused,
               preact_resnet, resnet50, resnext, vit, wavenet)
from ._wn import count_weight_normed, is_weight_normed

_MODULES = {"resnet50": resnet50, "preact_resnet": preact_resnet, "hifigan_generator": hifigan_generator,
            "wavenet": wavenet, "impala_cnn": impala_cnn, "resnext": resnext, "mobilenet_v1": mobilenet_v1,
            "mixer": mixer}
# The branch shapes of post-2019 architectures (docs/method.md §3.9): initialized with an example input.
_MODERN = {"mbconv": mbconv, "convnext": convnext, "densenet": densenet, "vit": vit, "preact_fused": preact_fused}
ZOO = {name: (m.build, m.INPUT_SHAPE) for name, m in _MODULES.items()}
MODERN_ZOO = {name: (m.build, m.INPUT_SHAPE) for name, m in _MODERN.items()}
ALL_ZOO = {**ZOO, **MODERN_ZOO}
EXPECTED_WN_LAYERS = {name: m.EXPECTED_WN_LAYERS for name, m in {**_MODULES, **_MODERN}.items()}

__all__ = ["ZOO", "MODERN_ZOO", "ALL_ZOO", "EXPECTED_WN_LAYERS", "count_weight_normed", "is_weight_normed"]
