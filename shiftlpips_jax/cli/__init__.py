"""The ``shiftlpips`` command line: a thin dispatcher over one module per subcommand.

Each subcommand module (``compare``, ``pairs``, ``example``, ``eval``, ``shift_study``,
``bench``) exposes ``add_parser(subparsers)``, which registers its arguments and sets ``func``,
a function that only unpacks the arguments and calls the library job the tests call too. This
file wires them up. The library's own errors (:class:`~shiftlpips_jax.errors.ShiftLPIPSError`:
bad input, unreadable or unsafe files) become a one-line message and exit status 2; anything
else is a bug and keeps its traceback. Warnings about the input (a transparent image) print as
one line too.

Example::

    shiftlpips compare shiftlpips_jax/assets/ex_ref.png shiftlpips_jax/assets/ex_p0.png
    python -m shiftlpips_jax.cli example
"""

from __future__ import annotations

import argparse
import sys
import warnings

from shiftlpips_jax._src.errors import ShiftLPIPSError
from shiftlpips_jax._src.images import TransparencyWarning
from shiftlpips_jax.cli import bench, compare, eval as eval_cmd, example, pairs, shift_study

__all__ = ["main", "build_parser"]

SUBCOMMANDS = (compare, pairs, example, eval_cmd, shift_study, bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``shiftlpips`` argument parser with every subcommand.

    Returns:
      The parser; ``parse_args`` gives a namespace whose ``func`` runs the command.
    """
    parser = argparse.ArgumentParser(
        prog="shiftlpips",
        description="Shift-tolerant LPIPS (ST-LPIPS) and LPIPS perceptual distances in JAX.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the ``shiftlpips`` command.

    Args:
      argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
      The exit status: 0 done, 2 a library error (printed as one line).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    prefix = f"shiftlpips {args.command}"

    with warnings.catch_warnings():
        warnings.simplefilter("always", TransparencyWarning)
        default_show = warnings.showwarning

        def show(message, category, *rest, **kwargs):
            if issubclass(category, TransparencyWarning):
                print(f"{prefix}: warning: {message}", file=sys.stderr)
            else:
                default_show(message, category, *rest, **kwargs)

        warnings.showwarning = show
        try:
            return int(args.func(args) or 0)
        except ShiftLPIPSError as err:
            # Bad input or an unusable file: one line. Anything else is a bug: traceback.
            print(f"{prefix}: error: {err}", file=sys.stderr)
            return 2
