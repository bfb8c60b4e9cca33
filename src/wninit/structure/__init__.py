"""A model's structure, as the init reads it: the trace (WN layers, what follows each, residual sums, stages,
B_k), the roles declared and found, the expected second moment through the graph, and the activations' gamma.
"""
from wninit.structure.activations import (Activation, activation_of_call, activation_of_module, is_registered,
                                          register_activation, second_moment, snake_second_moment)
from wninit.structure.energy import EnergyPass
from wninit.structure.hooks import forward_with_hooks
from wninit.structure.plan import Placement, place
from wninit.structure.roles import ROLES, Role, declared_role, get_role, mark_probe, probe_points, set_role
from wninit.structure.trace import ResidualSum, Structure, TraceFailure, discover, trace

__all__ = [
    "discover", "trace", "Structure", "ResidualSum", "TraceFailure", "place", "Placement", "ROLES", "Role",
    "set_role", "get_role", "declared_role", "mark_probe", "probe_points", "EnergyPass", "Activation",
    "second_moment", "snake_second_moment", "register_activation", "is_registered", "activation_of_module", "activation_of_call",
    "forward_with_hooks",
]
