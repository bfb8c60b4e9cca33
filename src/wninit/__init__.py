"""wninit: robust initialization for weight-normalized networks and ResNets.

Arpit, Campos & Bengio, "How to Initialize your Network? Robust Initialization for WeightNorm &
ResNets", NeurIPS 2019. `wninit.initialize(model, "proposed")` is the one call.
"""
from wninit import diagnostics, init, models, structure, weightnorm
from wninit.weightnorm.state_dict import convert_state_dict
from wninit.weightnorm.convert import weight_norm
from wninit.init.gains import fan_in_and_fan_out, layer_fans, layer_gain, proposed_gain, unit_direction_
from wninit.structure.activations import register_activation
from wninit.init.explain import ExplainTable, explain
from wninit.weightnorm.lifecycle import copy_model, copyable, remove_weight_norm, switch_api
from wninit.structure.roles import get_role, mark_probe, set_role
from wninit.init.schemes import PLAIN_SCHEMES, SCHEMES, WN_SCHEMES, LayerInit, initialize, initialize_layer_, role_gamma
from wninit.weightnorm.access import (effective_weight, is_weight_normed, layer_kind, set_g_, set_v_, weight_normed_layers, wn_dim,
                         wn_g, wn_v)

__version__ = "0.1.0"

__all__ = [
    "__version__", "diagnostics", "init", "models", "structure", "weightnorm",
    "initialize", "explain", "ExplainTable", "register_activation", "initialize_layer_", "role_gamma", "LayerInit",
    "SCHEMES", "WN_SCHEMES", "PLAIN_SCHEMES",
    "proposed_gain", "fan_in_and_fan_out", "layer_fans", "layer_gain", "unit_direction_",
    "weight_norm", "is_weight_normed", "wn_dim", "layer_kind", "wn_g", "wn_v", "set_g_", "set_v_",
    "effective_weight", "weight_normed_layers", "set_role", "get_role", "mark_probe",
    "convert_state_dict", "switch_api", "remove_weight_norm", "copyable", "copy_model",
]
