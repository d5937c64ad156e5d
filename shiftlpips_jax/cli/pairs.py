"""``shiftlpips pairs DIR``: distances between every pair of images in a folder, as CSV.

The job is :func:`shiftlpips_jax._src.compare.run_pairs`.

Example::

    shiftlpips pairs photos/ --out pairs.csv
"""

from __future__ import annotations

from shiftlpips_jax._src import compare
from shiftlpips_jax.cli.compare import add_model_args

__all__ = ["add_parser"]


def _run(args) -> int:
    compare.run_pairs(args.dir, net=args.net, variant=args.variant, checkpoint=args.checkpoint,
                      resize=args.resize, out=args.out, skip_errors=args.skip_errors,
                      max_pixels=args.max_pixels, alpha=args.alpha)
    return 0


def add_parser(sub) -> None:
    """Registers ``pairs`` on the subparsers ``sub``."""
    p = sub.add_parser("pairs", help="distances between all pairs of images in a folder (CSV)")
    p.add_argument("dir")
    add_model_args(p)
    p.add_argument("--out", default=None, help="CSV file (default stdout)")
    p.set_defaults(func=_run)
