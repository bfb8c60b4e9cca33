"""The one error type a user can cause: its message is a single sentence that says what to do."""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """Bad input (config, spec, data, store, path, a library call's argument): the CLI prints the sentence and
    exits 2, no traceback. Any other exception, a bare ValueError included, is a bug: traceback and exit 1.

    A ValueError, so that a library caller's `except ValueError` (torch's convention for bad arguments) still
    catches it.
    """
