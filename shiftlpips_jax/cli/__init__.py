"""The ``shiftlpips`` command line: a thin dispatcher over one module per subcommand.

Each subcommand module (``compare``, ``pairs``, ``example``, ``eval``, ``shift_study``,
``bench``) exposes ``add_parser(subparsers)``, which registers its arguments and sets ``func``,
a function that only unpacks the arguments and calls the library job the tests call too. This
file wires them up. The library's own errors (:class:`~shiftlpips_jax.errors.ShiftLPIPSError`:
bad input, unreadable or unsafe files) and command-line mistakes become a one-line message and
exit status 2; anything else is a bug and keeps its traceback. Warnings about the input (a
transparent image) print as one line too. Help texts are plain text: the docstrings they are
taken from lose their reST markup on the way.

Example::

    shiftlpips compare shiftlpips_jax/assets/ex_ref.png shiftlpips_jax/assets/ex_p0.png
    python -m shiftlpips_jax.cli example
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings

from shiftlpips_jax import __version__
from shiftlpips_jax._src.errors import ShiftLPIPSError
from shiftlpips_jax._src.images import TransparencyWarning
from shiftlpips_jax.cli import bench, compare, eval as eval_cmd, example, pairs, shift_study

__all__ = ["main", "build_parser", "plain_text"]

SUBCOMMANDS = (compare, pairs, example, eval_cmd, shift_study, bench)

# reST roles (:func:`~a.b`), inline literals (``x``) and literal-block markers (text::).
_ROLE = re.compile(r":[a-z]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``(.*?)``", re.S)
_BLOCK = re.compile(r"(\S)::(?=\s*$)", re.M)


def plain_text(text: str | None) -> str | None:
    """``text`` without reST markup, for help shown on a terminal.

    Args:
      text: a docstring-style text (or ``None``).

    Returns:
      The text with roles reduced to their last dotted name, inline literals to their content
      and ``::`` literal-block markers to ``:`` (``None`` stays ``None``).
    """
    if not text:
        return text
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = _LITERAL.sub(r"\1", text)
    text = _BLOCK.sub(r"\1:", text)
    return re.sub(r"^::\s*$\n?", "", text, flags=re.M)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line (``shiftlpips CMD: error: ...``), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} "
                     "--help)\n")


def _synopsis(module) -> str:
    """The module docstring's first paragraph, as the subcommand's description."""
    return " ".join((module.__doc__ or "").split("\n\n")[0].split())


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Strips markup from the description and every help text of ``parser`` and its commands."""
    parser.description = plain_text(parser.description)
    for action in parser._actions:
        if isinstance(action.help, str):
            action.help = plain_text(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:   # the one-line helps in the command list
                choice.help = plain_text(choice.help)
            for sub in action.choices.values():
                _plain_help(sub)


def build_parser() -> argparse.ArgumentParser:
    """The ``shiftlpips`` argument parser with every subcommand.

    Returns:
      The parser; ``parse_args`` gives a namespace whose ``func`` runs the command.
    """
    parser = _Parser(
        prog="shiftlpips",
        description="Shift-tolerant LPIPS (ST-LPIPS) and LPIPS perceptual distances in JAX, "
                    "with DISTS, MS-SSIM, SSIM and L2 for comparison.")
    parser.add_argument("--version", action="version", version=f"shiftlpips {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="the subcommand")
    sub.required = True
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    for module, name in zip(SUBCOMMANDS, list(sub.choices)):
        if sub.choices[name].description is None:   # the module synopsis, as --help's text
            sub.choices[name].description = _synopsis(module)
    _plain_help(parser)
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
            print(f"{prefix}: error: {' '.join(str(err).split())}", file=sys.stderr)
            return 2
