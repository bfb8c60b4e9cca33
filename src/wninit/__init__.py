"""wninit: robust initialization for weight-normalized networks and ResNets.

Arpit, Campos & Bengio, "How to Initialize your Network? Robust Initialization for WeightNorm &
ResNets", NeurIPS 2019. ``wninit.initialize(model, "proposed")`` is the one call.
"""
from . import checkpoint, convert, diagnostics, init, lifecycle, models, roles, weightnorm, wn_formula
from .checkpoint import convert_state_dict
from .convert import weight_norm
from .init import fan_in_and_fan_out, layer_fans, layer_gain, proposed_gain, unit_direction_
from .activations import register_activation
from .layer_table import ExplainTable, explain
from .lifecycle import copy_model, copyable, remove_weight_norm, switch_api
from .roles import get_role, mark_probe, set_role
from .schemes import PLAIN_SCHEMES, SCHEMES, WN_SCHEMES, LayerInit, initialize, initialize_layer_, role_gamma
from .weightnorm import (effective_weight, is_weight_normed, layer_kind, set_g_, set_v_, weight_normed_layers, wn_dim,
                         wn_g, wn_v)

__version__ = "0.1.0"

__all__ = [
    "__version__", "checkpoint", "convert", "diagnostics", "lifecycle", "init", "models", "roles", "weightnorm",
    "wn_formula",
    "initialize", "explain", "ExplainTable", "register_activation", "initialize_layer_", "role_gamma", "LayerInit",
    "SCHEMES", "WN_SCHEMES", "PLAIN_SCHEMES",
    "proposed_gain", "fan_in_and_fan_out", "layer_fans", "layer_gain", "unit_direction_",
    "weight_norm", "is_weight_normed", "wn_dim", "layer_kind", "wn_g", "wn_v", "set_g_", "set_v_",
    "effective_weight", "weight_normed_layers", "set_role", "get_role", "mark_probe",
    "convert_state_dict", "switch_api", "remove_weight_norm", "copyable", "copy_model",
]
