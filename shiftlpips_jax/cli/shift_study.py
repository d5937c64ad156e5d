"""``shiftlpips shift-study [IMAGE ...]``: distance versus pixel shift, beside people's judgements.

The job is :func:`shiftlpips_jax._src.evaluation.shift_study.run_shift_study` (whose synopsis
is this command's ``--help``).

Example::

    shiftlpips shift-study                     # the bundled photos, all models, study.png
    shiftlpips shift-study a.png b.jpg --max-shift 9 --out study.svg --csv study.csv
    shiftlpips shift-study --images photos/ --out study.pdf
"""

from __future__ import annotations

import argparse

from shiftlpips_jax._src.evaluation import shift_study

__all__ = ["add_parser"]


def _run(args) -> int:
    shift_study.run_shift_study(args.images, image_dirs=args.image_dirs or (),
                                max_shift=args.max_shift, models=args.models,
                                load_size=args.load_size or None, out=args.out,
                                csv_path=args.csv, band=None if args.band == "none" else args.band)
    return 0


def add_parser(sub) -> None:
    """Registers ``shift-study`` on the subparsers ``sub``."""
    models = shift_study.MODELS
    p = sub.add_parser("shift-study", help="distance vs pixel shift for ST-LPIPS, LPIPS and L2 "
                                           "beside the paper's user study",
                       description=shift_study.DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="image files (default: the four bundled photos)")
    p.add_argument("--images", dest="image_dirs", action="append", metavar="DIR",
                   help="also every image of this folder (repeatable)")
    p.add_argument("--max-shift", type=int, default=9, help="largest shift in pixels (default 9)")
    p.add_argument("--out", default="shift_study.png",
                   help="the figure; .png, .svg or .pdf picks the format (default "
                        "shift_study.png; needs matplotlib: pip install 'shiftlpips-jax[plot]')")
    p.add_argument("--band", choices=("ci95", "std", "none"), default="ci95",
                   help="shaded band over the images: 95%% confidence interval of the mean "
                        "(default), one standard deviation, or none")
    p.add_argument("--csv", default=None, help="also write the numbers as CSV")
    p.add_argument("--models", "--net", nargs="+", default=list(shift_study.DEFAULT_MODELS),
                   choices=list(models),
                   metavar="MODEL", help=f"models to run, of {' '.join(models)} (default: "
                        f"{' '.join(shift_study.DEFAULT_MODELS)})")
    p.add_argument("--load-size", type=int, default=256,
                   help="resize so the shorter side is this (bicubic; 0 keeps; default 256)")
    p.set_defaults(func=_run)
