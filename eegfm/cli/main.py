"""``eegfm`` command-line entry point.

User errors (a bad option, a missing file, a bad config, no usable data, a run directory
that holds an earlier run) print one line, ``eegfm <command>: error: <what and how to fix it>``,
and exit with status 2, as argparse does; ``--debug`` (or ``EEGFM_DEBUG=1``) shows the Python
traceback instead. Settings are ``--key=value`` or ``--key value``; ``eegfm <command> --help``
lists them with their defaults and help. ``eegfm --version`` prints the version.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

from . import demo, finetune, pretrain, tokenizer
from ..log import set_log_level

COMMANDS = {"demo": demo, "tokenizer": tokenizer, "pretrain": pretrain, "finetune": finetune}

#: Exceptions a user's input causes; shown as one line unless --debug.
USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError, ImportError, KeyError)

#: Flags without a value (never joined with the next argument).
_OWN_FLAGS = ("-h", "--help", "--debug", "--version", "--overwrite", "--quiet")

def _join_key_value(argv: list[str]) -> list[str]:
    """``["--train.steps", "100"]`` -> ``["--train.steps=100"]`` (``--key value`` as ``--key=value``)."""
    out, i = [], 0
    while i < len(argv):
        item = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if (item.startswith("--") and "=" not in item and item not in _OWN_FLAGS and nxt is not None
                and not nxt.startswith("--")):
            out.append(f"{item}={nxt}")
            i += 2
        else:
            out.append(item)
            i += 1
    return out


def _pop_log_level(argv: list[str]) -> tuple[list[str], str | None]:
    """Take ``--log-level=LEVEL`` / ``--log-level LEVEL`` / ``--quiet`` out of ``argv`` wherever they are
    (before or after the command); returns the rest and the level (None: unchanged)."""
    rest, level, i = [], None, 0
    while i < len(argv):
        item = argv[i]
        if item == "--quiet":
            level = "WARNING"
        elif item.startswith("--log-level="):
            level = item.split("=", 1)[1]
        elif item == "--log-level" and i + 1 < len(argv):
            level = argv[i + 1]
            i += 1
        else:
            rest.append(item)
        i += 1
    return rest, level


def version() -> str:
    """``eegfm X.Y.Z (torch ..., Python ...)``."""
    import torch

    from .. import __version__

    return f"eegfm {__version__} (torch {torch.__version__}, Python {platform.python_version()})"


def main(argv: list[str] | None = None) -> int:
    """Run ``eegfm <command> [options]``; returns the exit status (2 for a user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="eegfm", description="EEG foundation models for any montage.",
                                     usage="%(prog)s [options] command [--key=value ...]")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (also EEGFM_DEBUG=1)")
    parser.add_argument("--version", action="store_true", help="print the versions of eegfm, torch and Python")
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, module in COMMANDS.items():
        module.add_parser(sub)
    parser.add_argument("--log-level", metavar="LEVEL",
                        help="how much eegfm prints: DEBUG, INFO (default), WARNING, ERROR (also EEGFM_LOGGING_LEVEL)")
    parser.add_argument("--quiet", action="store_true", help="print warnings and errors only (--log-level=WARNING)")
    debug = "--debug" in argv or os.environ.get("EEGFM_DEBUG", "") not in ("", "0")
    argv, log_level = _pop_log_level([a for a in argv if a != "--debug"])
    if log_level is not None:
        try:
            set_log_level(log_level)
        except ValueError as err:
            print(f"eegfm: error: --log-level: {err}", file=sys.stderr)
            return 2
    args, extra = parser.parse_known_args(_join_key_value(argv))
    if args.version:
        print(version())
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    # every command takes its settings as --key=value overrides (checked against its config)
    args.overrides = [*extra, *(getattr(args, "overrides", None) or [])]
    try:
        return COMMANDS[args.command].run(args)
    except USER_ERRORS as err:
        if debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"eegfm {args.command}: error: {message} (--debug shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
