"""The one error type a user can cause: its message is a single sentence that says what to do."""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """Bad input (config, spec, data, store, path): the CLI prints the sentence and exits 2, no traceback."""
