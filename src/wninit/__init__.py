"""wninit: robust initialization for weight-normalized networks and ResNets.

Arpit, Campos & Bengio, "How to Initialize your Network? Robust Initialization for WeightNorm &
ResNets", NeurIPS 2019. ``wninit.initialize(model, "proposed")`` is the one call.
"""
from . import diagnostics, init, models, roles, weightnorm
from .init import fan_in_and_fan_out, proposed_gain
from .roles import get_role, mark_probe, set_role
from .activations import register_activation
from .explain import ExplainTable, explain
from .schemes import PLAIN_SCHEMES, SCHEMES, WN_SCHEMES, LayerInit, initialize, initialize_layer_, role_gamma
from .weightnorm import (direction, effective_weight, gain, is_weight_normed, set_direction_, set_gain_,
                         weight_norm, weight_normed_layers)

__version__ = "0.1.0"

__all__ = [
    "__version__", "diagnostics", "init", "models", "roles", "weightnorm",
    "initialize", "explain", "ExplainTable", "register_activation", "initialize_layer_", "role_gamma", "LayerInit", "SCHEMES", "WN_SCHEMES", "PLAIN_SCHEMES",
    "proposed_gain", "fan_in_and_fan_out",
    "weight_norm", "is_weight_normed", "gain", "direction", "set_gain_", "set_direction_", "effective_weight",
    "weight_normed_layers", "set_role", "get_role", "mark_probe",
]
