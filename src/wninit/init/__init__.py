"""The initializations: the gains and directions (torch.nn.init's form), the schemes `initialize` applies,
and the explain table of what it did.
"""
from wninit.init.explain import ExplainTable, explain
from wninit.init.gains import (DIRECTION_ALIASES, DIRECTIONS, check_direction, direction_, fan_in_and_fan_out,
                               gaussian_direction_, layer_fans, layer_gain, orthogonal_direction_,
                               orthogonal_directions_, proposed_gain, unit_direction_)
from wninit.init.schemes import PLAIN_SCHEMES, SCHEMES, WN_SCHEMES, LayerInit, initialize, initialize_layer_, role_gamma

__all__ = [
    "initialize", "explain", "ExplainTable", "initialize_layer_", "LayerInit", "role_gamma", "SCHEMES",
    "WN_SCHEMES", "PLAIN_SCHEMES", "proposed_gain", "fan_in_and_fan_out", "layer_fans", "layer_gain",
    "unit_direction_", "DIRECTIONS", "DIRECTION_ALIASES", "check_direction", "direction_", "orthogonal_direction_",
    "orthogonal_directions_", "gaussian_direction_",
]
