"""The ``shiftlpips`` command line: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` (which registers its
arguments and sets ``func``) and a plain function that tests call directly; this file only wires
them up. Modules are imported lazily so ``shiftlpips --help`` stays fast.

Example::

    shiftlpips compare shiftlpips_jax/assets/ex_ref.png shiftlpips_jax/assets/ex_p0.png
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, RuntimeError) as err:
        print(f"shiftlpips {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
