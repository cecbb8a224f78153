"""Command-line parsers of every memobert command and script: a mistyped option is one line naming it, never a
usage dump or a traceback (and it is named before anything else is reported, e.g. a missing required option).

    $ memobert preprocess --inptu videos/ --output corpus/
    memobert preprocess: unknown option --inptu (see memobert preprocess --help)
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from transformers import HfArgumentParser


def one_line_error(prog: str, message: str) -> str:
    """argparse's error message as one line that names the bad option and points to --help."""
    if message.startswith("unrecognized arguments: "):
        options = message.removeprefix("unrecognized arguments: ").split()
        flags = [o for o in options if o.startswith("-")] or options
        noun = "option" if len(flags) == 1 else "options"
        message = f"unknown {noun} {' '.join(flags)}"
    return f"{prog}: {message} (see {prog} --help)"


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


class OneLineErrors:
    """Mixin for `argparse.ArgumentParser` subclasses: errors are one line (`one_line_error`, exit status 2), and an
    option the parser does not know is reported first, whatever else is wrong."""

    def parse_known_args(self, args=None, namespace=None):
        self._arguments_seen = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def unknown_options(self, args: list[str]) -> list[str]:
        """The option tokens of `args` that name none of this parser's options (nor, with abbreviations allowed, start
        one: argparse reports an ambiguous one itself); a subcommand's own options are its parser's business."""
        commands = {name for action in self._actions if isinstance(action, argparse._SubParsersAction)
                    for name in action.choices}
        known = self._option_string_actions
        unknown = []
        for token in args:
            if token == "--" or token in commands:
                break
            if not token.startswith("-") or token == "-" or _is_number(token):
                continue
            option = token.split("=", 1)[0]
            if option in known or (self.allow_abbrev and any(name.startswith(option) for name in known)):
                continue
            unknown.append(option)
        return unknown

    def error(self, message: str) -> NoReturn:
        unknown = self.unknown_options(getattr(self, "_arguments_seen", []))
        if unknown:
            message = "unrecognized arguments: " + " ".join(unknown)
        self.exit(2, one_line_error(self.prog, message) + "\n")


class CommandLineParser(OneLineErrors, argparse.ArgumentParser):
    """`argparse.ArgumentParser` with one-line errors (`OneLineErrors`); subcommand parsers made with
    `add_subparsers(parser_class=CommandLineParser)` get them too."""


class DataclassParser(OneLineErrors, HfArgumentParser):
    """`HfArgumentParser` (options from dataclass fields, their `help` metadata shown by --help) with one-line errors,
    and unknown options reported as such instead of a ValueError."""

    def parse_dataclass(self, argv: list[str]):
        """The first dataclass filled from `argv`; an option that no field names exits with one line."""
        args, *rest = self.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
        remaining = rest[-1] if rest else []
        if remaining:
            self.error("unrecognized arguments: " + " ".join(remaining))
        return args


def fail(message: object) -> NoReturn:
    """Exit (status 1) with `error: <message>` on stderr: for problems found after parsing (a bad config, a missing
    file), whose messages name the item and the fix."""
    sys.exit(f"error: {message}")


__all__ = ["CommandLineParser", "DataclassParser", "OneLineErrors", "one_line_error", "fail"]
