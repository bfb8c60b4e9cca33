"""wninit: robust initialization for weight-normalized networks and ResNets.

Arpit, Campos & Bengio, "How to Initialize your Network? Robust Initialization for WeightNorm &
ResNets", NeurIPS 2019. `wninit.initialize(model, "proposed")` is the one call.

The top level holds the names a user of the initialization needs; everything else is reached through its
subpackage (docs/layout.md): `wninit.weightnorm`, `wninit.structure`, `wninit.peers`, `wninit.init`,
`wninit.models` and `wninit.diagnostics` load on first use, so `import wninit; wninit.peers.apply(...)`
works without importing any of them up front (and never the experiment suite).
"""
import importlib

from wninit.init.explain import explain
from wninit.init.gains import proposed_gain
from wninit.init.schemes import SCHEMES, initialize
from wninit.structure.activations import register_activation
from wninit.structure.roles import get_role, set_role
from wninit.weightnorm.access import is_weight_normed, set_g_, set_v_, weight_normed_layers, wn_g, wn_v
from wninit.weightnorm.convert import weight_norm
from wninit.weightnorm.lifecycle import remove_weight_norm, switch_api
from wninit.weightnorm.state_dict import convert_state_dict

__version__ = "0.1.0"

# The library's subpackages, loaded on first attribute access (PEP 562).
SUBPACKAGES = ("weightnorm", "structure", "peers", "init", "models", "diagnostics")

__all__ = [
    "__version__", *SUBPACKAGES,
    "initialize", "explain", "SCHEMES", "proposed_gain", "register_activation", "set_role", "get_role",
    "weight_norm", "remove_weight_norm", "switch_api", "convert_state_dict",
    "is_weight_normed", "weight_normed_layers", "wn_g", "wn_v", "set_g_", "set_v_",
]


def __getattr__(name: str):
    if name in SUBPACKAGES:
        return importlib.import_module(f"wninit.{name}")
    raise AttributeError(f"module 'wninit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(SUBPACKAGES))
