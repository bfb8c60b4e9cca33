"""wninit: robust initialization for weight-normalized networks and ResNets.

Arpit, Campos & Bengio, "How to Initialize your Network? Robust Initialization for WeightNorm &
ResNets", NeurIPS 2019. `wninit.initialize(model, "proposed")` is the one call.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it. Each is imported on first use (PEP 562), so that `import wninit`, and
# with it `wninit --help`, does not load torch until a name that needs it is touched.
_PACKAGES = ("diagnostics", "init", "models", "structure", "weightnorm")
_NAMES = {
    "initialize": "wninit.init.schemes", "initialize_layer_": "wninit.init.schemes", "role_gamma": "wninit.init.schemes",
    "LayerInit": "wninit.init.schemes", "SCHEMES": "wninit.init.schemes", "WN_SCHEMES": "wninit.init.schemes",
    "PLAIN_SCHEMES": "wninit.init.schemes",
    "explain": "wninit.init.explain", "ExplainTable": "wninit.init.explain",
    "register_activation": "wninit.structure.activations",
    "proposed_gain": "wninit.init.gains", "fan_in_and_fan_out": "wninit.init.gains", "layer_fans": "wninit.init.gains",
    "layer_gain": "wninit.init.gains", "unit_direction_": "wninit.init.gains",
    "weight_norm": "wninit.weightnorm.convert", "convert_state_dict": "wninit.weightnorm.state_dict",
    "is_weight_normed": "wninit.weightnorm.access", "wn_dim": "wninit.weightnorm.access",
    "layer_kind": "wninit.weightnorm.access", "wn_g": "wninit.weightnorm.access", "wn_v": "wninit.weightnorm.access",
    "set_g_": "wninit.weightnorm.access", "set_v_": "wninit.weightnorm.access",
    "effective_weight": "wninit.weightnorm.access", "weight_normed_layers": "wninit.weightnorm.access",
    "set_role": "wninit.structure.roles", "get_role": "wninit.structure.roles", "mark_probe": "wninit.structure.roles",
    "switch_api": "wninit.weightnorm.lifecycle", "remove_weight_norm": "wninit.weightnorm.lifecycle",
    "copyable": "wninit.weightnorm.lifecycle", "copy_model": "wninit.weightnorm.lifecycle",
}

__all__ = [
    "__version__", "diagnostics", "init", "models", "structure", "weightnorm",
    "initialize", "explain", "ExplainTable", "register_activation", "initialize_layer_", "role_gamma", "LayerInit",
    "SCHEMES", "WN_SCHEMES", "PLAIN_SCHEMES",
    "proposed_gain", "fan_in_and_fan_out", "layer_fans", "layer_gain", "unit_direction_",
    "weight_norm", "is_weight_normed", "wn_dim", "layer_kind", "wn_g", "wn_v", "set_g_", "set_v_",
    "effective_weight", "weight_normed_layers", "set_role", "get_role", "mark_probe",
    "convert_state_dict", "switch_api", "remove_weight_norm", "copyable", "copy_model",
]


def __getattr__(name: str):
    if name in _PACKAGES:
        value = importlib.import_module(f"wninit.{name}")
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'wninit' has no attribute {name!r}")
    globals()[name] = value  # once: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
