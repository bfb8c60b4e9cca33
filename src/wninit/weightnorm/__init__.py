"""Weight norm, w = g v/||v|| (docs/method.md §2.1), in one place: the formula, wninit's layers, access to g, v
and dim under the three APIs (wninit's layers, torch's parametrizations, torch's legacy hook), a model's
conversion and lifecycle, and state dicts between the APIs.

`weight_norm` here wraps a whole model (as `wninit.weight_norm`); one layer is wrapped by
`wninit.weightnorm.access.weight_norm`.
"""
from wninit.weightnorm.access import (APIS, effective_weight, gain_parameters, is_weight_normed, layer_kind, set_g_,
                                      set_v_, weight_normed_layers, wn_api, wn_dim, wn_g, wn_parameters, wn_v)
from wninit.weightnorm.convert import weight_norm
from wninit.weightnorm.formula import unit_norms, wn_weight
from wninit.weightnorm.layers import (WNConv1d, WNConv2d, WNConv3d, WNConvTranspose1d, WNConvTranspose2d,
                                      WNConvTranspose3d, WNLinear, twice_differentiable)
from wninit.weightnorm.lifecycle import copy_model, copyable, remove_weight_norm, switch_api
from wninit.weightnorm.state_dict import TARGETS, convert_state_dict, fold, wn_layout

__all__ = [
    "weight_norm", "remove_weight_norm", "switch_api", "copyable", "copy_model", "convert_state_dict", "fold",
    "wn_layout", "TARGETS", "APIS", "wn_weight", "unit_norms", "layer_kind", "wn_api", "wn_dim", "is_weight_normed",
    "wn_g", "wn_v", "wn_parameters", "set_g_", "set_v_", "effective_weight", "weight_normed_layers",
    "gain_parameters", "twice_differentiable", "WNLinear", "WNConv1d", "WNConv2d", "WNConv3d", "WNConvTranspose1d",
    "WNConvTranspose2d", "WNConvTranspose3d",
]
