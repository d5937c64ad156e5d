"""``shiftlpips shift-study [IMAGE ...]``: distance versus pixel shift, beside people's judgements.

The job is :func:`shiftlpips_jax._src.evaluation.shift_study.run_shift_study` (whose synopsis
is this command's ``--help``).

Example::

    shiftlpips shift-study                     # the bundled photo (CC0), all models, study.png
    shiftlpips shift-study a.png b.jpg --max-shift 9 --out study.png --csv study.csv
"""

from __future__ import annotations

import argparse

from shiftlpips_jax._src.evaluation import shift_study

__all__ = ["add_parser"]


def _run(args) -> int:
    shift_study.run_shift_study(args.images, max_shift=args.max_shift, models=args.models,
                                load_size=args.load_size or None, out=args.out,
                                csv_path=args.csv)
    return 0


def add_parser(sub) -> None:
    """Registers ``shift-study`` on the subparsers ``sub``."""
    models = shift_study.MODELS
    p = sub.add_parser("shift-study", help="distance vs pixel shift for ST-LPIPS, LPIPS and L2 "
                                           "beside the paper's user study",
                       description=shift_study.DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="image files (default: a bundled photo)")
    p.add_argument("--max-shift", type=int, default=9, help="largest shift in pixels (default 9)")
    p.add_argument("--out", default="shift_study.png", help="chart PNG (default shift_study.png)")
    p.add_argument("--csv", default=None, help="also write the numbers as CSV")
    p.add_argument("--models", nargs="+", default=list(shift_study.DEFAULT_MODELS),
                   choices=list(models),
                   metavar="MODEL", help=f"models to run (default all: {' '.join(models)})")
    p.add_argument("--load-size", type=int, default=256,
                   help="resize so the shorter side is this (bicubic; 0 keeps; default 256)")
    p.set_defaults(func=_run)
