"""gamma per activation: the second moment of an activation under a unit Gaussian (docs/method.md §3.7).

A WN layer keeps the norm of what it passes on when `g = sqrt(gamma*fan_in/fan_out)` with

$$
\\gamma = 1 / \\mathbb{E}[\\phi(z)^2], \\qquad z \\sim \\mathcal{N}(0, 1)
$$

for the activation `phi` that follows it: 2 for ReLU (the paper's case), `2/(1+a^2)` for leaky ReLU of slope
`a`, 1 when nothing follows. Where no closed form is written here the moment is computed numerically
(Gauss-Hermite quadrature, 96 nodes, on the activation itself), so any elementwise activation module works;
[`register_activation`][wninit.structure.activations.register_activation] declares the moment of a custom one, a number or, where it depends on
the module's parameters (Snake's per-channel `alpha`), a function of the module. Snake, the activation of today's
audio codecs (DAC, X-Codec), has its moment in closed form ([`snake_second_moment`][wninit.structure.activations.snake_second_moment]) and is known under
its packaged classes without registration. A non-homogeneous activation (GELU, tanh,
sigmoid) is linearized at unit-variance pre-activations: the per-unit variance `q* = E[phi(z)^2]` is then a
fixed point of every layer (input variance `q*`, pre-activation variance `gamma*q* = 1`, output `q*`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wninit.errors import UserError

__all__ = ["Activation", "second_moment", "snake_second_moment", "register_activation", "is_registered",
           "activation_of_module", "activation_of_call"]

_NODES, _WEIGHTS = np.polynomial.hermite.hermgauss(96)


@dataclass(frozen=True)
class Activation:
    """An elementwise activation: its display name, function, and whether its output is non-negative."""
    name: str
    fn: Callable[[torch.Tensor], torch.Tensor] | None
    nonnegative: bool = False
    moment: float | None = None  # E[phi(z)^2], z ~ N(0, 1); None: computed by quadrature

    def second_moment(self, nonnegative_input: bool = False) -> float:
        """`E[phi(z)^2] / E[z^2]` for `z ~ N(0, 1)`, or `z = |N(0, 1)|` when the input is non-negative (a declared
        moment with no function to integrate, `fn` None, is used for both)."""
        if self.moment is not None and (not nonnegative_input or self.fn is None):
            return self.moment
        return second_moment(self.fn, nonnegative_input)


def second_moment(fn: Callable[[torch.Tensor], torch.Tensor], nonnegative_input: bool = False) -> float:
    r"""`E[fn(z)^2]` for `z ~ N(0, 1)` (or `|N(0, 1)|`), by Gauss-Hermite quadrature in float64.

    Examples:
        >>> round(second_moment(torch.relu), 12)
        0.5
    """
    z = torch.from_numpy(math.sqrt(2.0) * _NODES)
    if nonnegative_input:
        z = z.abs()
    with torch.no_grad():
        values = fn(z.clone()).double()
    return float(np.dot(_WEIGHTS, values.square().numpy()) / math.sqrt(math.pi))


def _leaky(slope: float) -> Activation:
    # docs/method.md §3.7: E[leaky(z)^2] = (1 + a^2)/2 exactly.
    return Activation(f"leaky_relu({slope:g})", lambda z: F.leaky_relu(z, slope), moment=(1.0 + slope * slope) / 2.0)


_RELU = Activation("relu", torch.relu, nonnegative=True, moment=0.5)  # docs/method.md §3.1: gamma = 2
_BY_MODULE: dict[type, Callable[[nn.Module], Activation]] = {
    nn.ReLU: lambda m: _RELU,
    nn.LeakyReLU: lambda m: _leaky(m.negative_slope),
    nn.PReLU: lambda m: _leaky(float(m.weight.detach().mean())),
    nn.GELU: lambda m: Activation(f"gelu({m.approximate})" if m.approximate != "none" else "gelu",
                                  lambda z: F.gelu(z, approximate=m.approximate)),
    nn.SiLU: lambda m: Activation("silu", F.silu),
    nn.Tanh: lambda m: Activation("tanh", torch.tanh),
    nn.Sigmoid: lambda m: Activation("sigmoid", torch.sigmoid, nonnegative=True),
    nn.ELU: lambda m: Activation(f"elu({m.alpha:g})", lambda z: F.elu(z, m.alpha)),
    nn.CELU: lambda m: Activation(f"celu({m.alpha:g})", lambda z: F.celu(z, m.alpha)),
    nn.SELU: lambda m: Activation("selu", F.selu),
    nn.ReLU6: lambda m: Activation("relu6", F.relu6, nonnegative=True),
    nn.Hardtanh: lambda m: Activation("hardtanh", lambda z: F.hardtanh(z, m.min_val, m.max_val)),
    nn.Softplus: lambda m: Activation("softplus", lambda z: F.softplus(z, m.beta, m.threshold), nonnegative=True),
    nn.Mish: lambda m: Activation("mish", F.mish),
    nn.Hardswish: lambda m: Activation("hardswish", F.hardswish),
}


def snake_second_moment(alpha: torch.Tensor | float, beta: torch.Tensor | float | None = None) -> float:
    r"""`E[phi(z)^2]` of Snake, `phi(z) = z + sin^2(alpha z)/beta` (`beta = alpha`: Snake; a separate `beta`:
    SnakeBeta), averaged over its per-channel parameters (docs/method.md §3.7):

    $$
    \mathbb{E}[\phi(z)^2] = 1 + \frac{3/8 - e^{-2\alpha^2}/2 + e^{-8\alpha^2}/8}{\beta^2}
    $$

    (`E[z sin^2(alpha z)]` is 0 by symmetry). A layer's output energy is the sum of its channels', so the
    channels' moments are averaged.

    Examples:
        >>> round(snake_second_moment(1.0), 6)
        1.307374
    """
    a = torch.as_tensor(alpha, dtype=torch.float64).detach().flatten()
    b = a if beta is None else torch.as_tensor(beta, dtype=torch.float64).detach().flatten()
    a2 = a.square()
    sin4 = 3.0 / 8.0 - torch.exp(-2.0 * a2) / 2.0 + torch.exp(-8.0 * a2) / 8.0
    return float((1.0 + sin4 / b.square()).mean())


# Activations of packaged models known by their class (module and qualified name), without registration: the
# recorder and the tracer keep them as one node. DAC's Snake is `x + sin^2(alpha x)/(alpha + 1e-9)`.
def _snake(module: nn.Module) -> Activation:
    return Activation("snake", None, moment=snake_second_moment(module.alpha))


_PACKAGED: dict[str, Callable[[nn.Module], Activation]] = {
    "transformers.models.dac.modeling_dac.Snake1d": _snake,
    "dac.nn.layers.Snake1d": _snake,
}
_CUSTOM: dict[object, Callable[[nn.Module], Activation] | Activation] = {}


def _by_call(target, args, kwargs) -> Activation | None:
    """The activation a traced function or method call computes, reading its arguments (e.g. the slope)."""
    def arg(i, name, default):
        return args[i] if len(args) > i else kwargs.get(name, default)
    if target in (F.relu, torch.relu, "relu", "relu_", F.relu_, torch.relu_):
        return _RELU
    if target in (F.leaky_relu, "leaky_relu", F.leaky_relu_):
        return _leaky(float(arg(1, "negative_slope", 0.01)))
    if target in (F.gelu, "gelu"):
        approx = arg(1, "approximate", "none")
        return Activation("gelu" if approx == "none" else f"gelu({approx})", lambda z: F.gelu(z, approximate=approx))
    simple = {F.silu: ("silu", F.silu, False), torch.tanh: ("tanh", torch.tanh, False), "tanh": ("tanh", torch.tanh, False),
              F.tanh: ("tanh", torch.tanh, False), torch.sigmoid: ("sigmoid", torch.sigmoid, True),
              "sigmoid": ("sigmoid", torch.sigmoid, True), F.sigmoid: ("sigmoid", torch.sigmoid, True),
              F.elu: ("elu", F.elu, False), F.selu: ("selu", F.selu, False), F.relu6: ("relu6", F.relu6, True),
              F.mish: ("mish", F.mish, False), F.hardswish: ("hardswish", F.hardswish, False),
              F.softplus: ("softplus", F.softplus, True)}
    try:
        found = simple.get(target)
    except TypeError:  # an unhashable target
        return None
    return Activation(found[0], found[1], nonnegative=found[2]) if found else None


def register_activation(kind, second_moment: float | Callable[[nn.Module], float] | None = None, *,
                        name: str | None = None, nonnegative: bool = False) -> None:
    """Declare a custom activation (a module class or a function) so that discovery knows its gamma.

    Args:
        kind: an `nn.Module` subclass or the function a model calls.
        second_moment: `E[phi(z)^2]` for `z ~ N(0, 1)`: a number; for a module class whose moment depends on
            its parameters, a function of the module instance that returns it (e.g. with
            [`snake_second_moment`][wninit.structure.activations.snake_second_moment]); None computes it by quadrature
            from `kind` (a module class is instantiated without arguments for that). A module class given a
            moment is not instantiated, and its moment serves a non-negative input too.
        name: the name the explain table shows (default: the class or function name).
        nonnegative: whether its output is never negative (a ReLU after it then passes everything).

    Examples:
        >>> register_activation(MySwish, 0.36)   # then gamma = 1/0.36 for a layer it follows
        >>> register_activation(Snake1d, lambda m: snake_second_moment(m.alpha))
    """
    label = name or getattr(kind, "__name__", repr(kind))
    if callable(second_moment):
        if not isinstance(kind, type):
            raise UserError("a second_moment that is a function of the module needs a module class as kind, "
                            f"got {kind!r}: pass the moment as a number")

        def per_instance(module: nn.Module) -> Activation:
            return Activation(label, None, nonnegative=nonnegative, moment=_checked(second_moment(module)))
        _CUSTOM[kind] = per_instance
        return
    if second_moment is not None:  # a function is still integrated over |z| after a ReLU; a class is not built
        _checked(second_moment)
        fn = None if isinstance(kind, type) else kind
    else:
        fn = kind() if isinstance(kind, type) else kind
        if not callable(fn):
            raise UserError(f"register_activation needs a module class or a function, got {kind!r}")
    _CUSTOM[kind] = Activation(label, fn, nonnegative=nonnegative, moment=second_moment)


def _checked(moment) -> float:
    if not (isinstance(moment, (int, float)) and not isinstance(moment, bool) and moment > 0):
        raise UserError(f"second_moment must be > 0, got {moment!r}")
    return float(moment)


def _packaged(module: nn.Module) -> Callable[[nn.Module], Activation] | None:
    cls = type(module)
    return _PACKAGED.get(f"{cls.__module__}.{cls.__qualname__}")


def is_registered(module: nn.Module) -> bool:
    """True for an instance of a module class declared with [`register_activation`][wninit.structure.activations.register_activation] or a
    packaged activation wninit knows (Snake): traced and recorded as one op."""
    return type(module) in _CUSTOM or _packaged(module) is not None


def activation_of_module(module: nn.Module) -> Activation | None:
    """The activation an `nn.Module` is, or None when it is not a known elementwise activation."""
    found = _CUSTOM.get(type(module))
    if found is not None:
        return found(module) if not isinstance(found, Activation) else found
    make = _BY_MODULE.get(type(module)) or _packaged(module)
    return make(module) if make else None


def activation_of_call(target, args=(), kwargs=None) -> Activation | None:
    """The activation a function or method call is (as torch.fx records it), or None."""
    try:
        found = _CUSTOM.get(target)
    except TypeError:
        return None
    if isinstance(found, Activation):
        return found
    return _by_call(target, args, kwargs or {})
