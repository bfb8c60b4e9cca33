"""The `wninit` command. Each subcommand lives in `wninit/suite/cli/<name>.py` with its line of help `HELP`, its
docstring (whose first paragraph is its `--help` description) and two functions: `add_arguments(parser)` and
`run(args) -> int`.

Errors a user can cause (`wninit.errors.UserError` and file-system errors, OSError) are printed as one
sentence and exit 2, with no traceback. Anything else, a bare ValueError included, is a bug: its traceback is
printed and the exit code is 1.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import sys
import traceback

from wninit.errors import UserError
from wninit.suite.cli._text import describe

__all__ = ["main", "COMMANDS"]

# Order is the order of `wninit --help`.
COMMANDS = ("reproduce", "train", "sweep", "export", "convert", "report", "figure1", "explain", "diagnose", "hessian", "bench", "rerun", "merge")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        # A typo'd prefix (--dept) must not silently become another flag (--depth): no abbreviations.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):  # argparse's own errors: one sentence, exit 2
        self.exit(2, f"wninit: error: {message} (see `{self.prog} --help`)\n")


def _load(name: str):
    try:
        return importlib.import_module(f"wninit.suite.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"wninit.suite.cli.{name}":
            return None  # subcommand not built yet
        raise


def _command(argv: list[str]) -> str | None:
    """The subcommand `argv` names (its first word that is one), or None (`wninit --help`, `wninit`)."""
    return next((word for word in argv if word in COMMANDS), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The `wninit` parser for the command line `argv`: only the command it names gets its arguments (they
    import torch and the vocabularies they offer as choices), the others are a line of help each, so that
    `wninit --help` stays quick. With no `argv`, every command gets its arguments."""
    from wninit import __version__

    command = _command(argv) if argv is not None else None
    parser = _Parser(prog="wninit", description="Robust initialization for WeightNorm & ResNets "
                     "(Arpit, Campos & Bengio 2019): the library's command line and the paper's experiments.")
    parser.add_argument("--version", action="version", version=f"wninit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        if argv is None or name == command:
            p = sub.add_parser(name, help=module.HELP, description=describe(module.__doc__))
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
        else:
            sub.add_parser(name, help=module.HELP)
    return parser


# The OSErrors that are a user's to fix (a path that is missing, is a folder, or is not theirs to read or write;
# a full disk or quota, a read-only file system); any other OSError (an I/O error, the network, a device) keeps
# its traceback.
USER_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
USER_OS_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _users(exc: BaseException) -> bool:
    return isinstance(exc, (UserError, *USER_OS_ERRORS)) or (isinstance(exc, OSError) and exc.errno in USER_OS_ERRNOS)


def main(argv: list[str] | None = None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else argv
        parser = build_parser(argv)  # imports the command's modules: Ctrl-C can land here too
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help()
            return 2
        args._argv = list(sys.argv[1:] if argv is None else argv)  # what a pinned child is started with (portable)
        return int(args._run(args) or 0)
    except BrokenPipeError:  # output piped into `head` and closed: not an error of the user's input
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("wninit: interrupted; finished work is kept, rerun the same command to continue", file=sys.stderr)
        return 130
    except Exception as exc:
        if _users(exc):
            print(f"wninit: error: {_sentence(exc)}", file=sys.stderr)
            return 2
        # a bug, not the user's input: the traceback says where
        traceback.print_exc()
        print("wninit: internal error (a bug in wninit, not in your input): please report it with the traceback above",
              file=sys.stderr)
        return 1


def _sentence(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc} for {exc.filename!r}; check the path and its permissions"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
