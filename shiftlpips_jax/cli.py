"""The ``shiftlpips`` command line: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` (which registers its
arguments and sets ``func``) and a plain function that tests call directly; this file only wires
them up. Modules are imported lazily so ``shiftlpips --help`` stays fast. The library's own
errors (:class:`~shiftlpips_jax._src.errors.ShiftLPIPSError`: bad input, unreadable or unsafe
files) become a one-line message and exit status 2; anything else is a bug and keeps its
traceback. Warnings about the input (a transparent image) print as one line too.

Example::

    shiftlpips compare shiftlpips_jax/assets/ex_ref.png shiftlpips_jax/assets/ex_p0.png
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from shiftlpips_jax._src.errors import ShiftLPIPSError

# subcommand -> module that implements it (each has add_parser(subparsers)).
SUBCOMMANDS = {
    "compare": "shiftlpips_jax._src.compare_cli",
    "pairs": "shiftlpips_jax._src.compare_cli",
    "example": "shiftlpips_jax._src.compare_cli",
    "eval": "shiftlpips_jax.evaluation.cli",
    "shift-study": "shiftlpips_jax.evaluation.shift_study",
    "bench": "shiftlpips_jax._src.bench",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shiftlpips",
        description="Shift-tolerant LPIPS (ST-LPIPS) and LPIPS perceptual distances in JAX.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in dict.fromkeys(SUBCOMMANDS.values()):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue  # subcommand not part of this build
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prefix = f"shiftlpips {args.command}"
    from shiftlpips_jax._src.images import TransparencyWarning

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


if __name__ == "__main__":
    sys.exit(main())
