"""The one error type a user can cause: its message is a single sentence that says what to do."""
from __future__ import annotations

__all__ = ["UserError", "check_model"]


class UserError(ValueError):
    """Bad input (config, spec, data, store, path, a library call's argument): the CLI prints the sentence and
    exits 2, no traceback. Any other exception, a bare ValueError included, is a bug: traceback and exit 1.

    A ValueError, so that a library caller's `except ValueError` (torch's convention for bad arguments) still
    catches it.
    """


def check_model(model, call: str) -> None:
    """One sentence when `call` is given something other than an `nn.Module` as its model (a name, a class)."""
    from torch import nn

    if not isinstance(model, nn.Module):
        what = f"the class {model.__name__}" if isinstance(model, type) else f"a {type(model).__name__} ({model!r:.40})"
        raise UserError(f"{call} takes the model itself, an nn.Module, but got {what}; build the model first "
                        "and pass the instance (model = MyNet(...))")
