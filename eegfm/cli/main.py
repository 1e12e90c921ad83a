"""``eegfm`` command-line entry point."""

from __future__ import annotations

import argparse
import sys

from . import demo, finetune, pretrain, tokenizer

COMMANDS = {"demo": demo, "tokenizer": tokenizer, "pretrain": pretrain, "finetune": finetune}


def main(argv: list[str] | None = None) -> int:
    """Run ``eegfm <command> [options]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="eegfm", description="EEG foundation models for any montage.")
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, module in COMMANDS.items():
        module.add_parser(sub)
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # every command takes its settings as --key=value overrides (checked against its config)
    args.overrides = [*extra, *(getattr(args, "overrides", None) or [])]
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
