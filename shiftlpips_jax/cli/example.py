"""``shiftlpips example``: the bundled example triplet under every pretrained model.

The quickstart job (``make example``); :func:`shiftlpips_jax._src.compare.run_example`.

Example::

    shiftlpips example
"""

from __future__ import annotations

from shiftlpips_jax._src import compare

__all__ = ["add_parser"]


def _run(args) -> int:
    del args
    compare.run_example()
    return 0


def add_parser(sub) -> None:
    """Registers ``example`` on the subparsers ``sub``."""
    p = sub.add_parser("example", help="compare the bundled example images with every model")
    p.set_defaults(func=_run)
