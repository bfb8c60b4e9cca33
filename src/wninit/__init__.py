"""wninit: robust initialization for weight-normalized networks and ResNets.

Arpit, Campos & Bengio, "How to Initialize your Network? Robust Initialization for WeightNorm &
ResNets", NeurIPS 2019. `wninit.initialize(model, "proposed")` is the one call.

The top level holds the names a user of the initialization needs; everything else is reached through its
subpackage (docs/layout.md): `wninit.weightnorm`, `wninit.structure`, `wninit.peers`, `wninit.init`,
`wninit.models` and `wninit.diagnostics` load on first use, so `import wninit; wninit.peers.apply(...)`
works without importing any of them up front (and never the experiment suite).
"""
import importlib

__version__ = "0.1.0"

# The library's subpackages, and each top-level name -> the module that defines it. Each is imported on first
# use (PEP 562), so that `import wninit`, and with it `wninit --help`, loads no torch until a name needs it.
SUBPACKAGES = ("weightnorm", "structure", "peers", "init", "models", "diagnostics")
_NAMES = {
    "initialize": "wninit.init.schemes", "SCHEMES": "wninit.init.schemes", "explain": "wninit.init.explain",
    "proposed_gain": "wninit.init.gains", "register_activation": "wninit.structure.activations",
    "set_role": "wninit.structure.roles", "get_role": "wninit.structure.roles",
    "weight_norm": "wninit.weightnorm.convert", "remove_weight_norm": "wninit.weightnorm.lifecycle",
    "switch_api": "wninit.weightnorm.lifecycle", "convert_state_dict": "wninit.weightnorm.state_dict",
    "is_weight_normed": "wninit.weightnorm.access", "weight_normed_layers": "wninit.weightnorm.access",
    "wn_g": "wninit.weightnorm.access", "wn_v": "wninit.weightnorm.access", "set_g_": "wninit.weightnorm.access",
    "set_v_": "wninit.weightnorm.access",
}

__all__ = [
    "__version__", *SUBPACKAGES,
    "initialize", "explain", "SCHEMES", "proposed_gain", "register_activation", "set_role", "get_role",
    "weight_norm", "remove_weight_norm", "switch_api", "convert_state_dict",
    "is_weight_normed", "weight_normed_layers", "wn_g", "wn_v", "set_g_", "set_v_",
]


def __getattr__(name: str):
    if name in SUBPACKAGES:
        value = importlib.import_module(f"wninit.{name}")
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'wninit' has no attribute {name!r}")
    globals()[name] = value  # once: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
