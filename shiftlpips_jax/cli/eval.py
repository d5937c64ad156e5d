"""``shiftlpips eval ROOT``: BAPPS 2AFC / JND scores of a metric, as the paper reports them.

The options map one-to-one onto :func:`shiftlpips_jax._src.evaluation.job.run_eval`, which
does the work (and whose synopsis is this command's ``--help``).

Example::

    shiftlpips eval ~/BAPPS/dataset/2afc --limit 200
"""

from __future__ import annotations

import argparse

from shiftlpips_jax._src import distributed
from shiftlpips_jax._src import images as images_lib
from shiftlpips_jax._src.evaluation import job, runner
from shiftlpips_jax._src.evaluation import distances as _distances
from shiftlpips_jax.cli.compare import add_metric_args

__all__ = ["add_parser"]


def _run(args) -> int:
    distributed.init_from_args(args)
    job.run_eval(args.root, mode=args.mode, datasets=args.datasets, net=args.net,
                 variant=args.variant, checkpoint=args.checkpoint, colorspace=args.colorspace,
                 load_size=args.load_size, shifts=args.shifts if args.mode == "2afc" else (),
                 batch_size=args.batch_size, limit=args.limit, num_threads=args.threads,
                 workers=args.workers, precision=args.precision, json_path=args.json,
                 csv_path=args.per_sample, progress=not args.no_progress,
                 skip_errors=args.skip_errors, max_pixels=args.max_pixels, alpha=args.alpha,
                 plot=args.plot, plot_with=args.plot_with)
    return 0


def add_parser(sub) -> None:
    """Registers ``eval`` on the subparsers ``sub``."""
    p = sub.add_parser("eval", help="BAPPS 2AFC / JND scores and shift rank flips of a metric",
                       description=job.EVAL_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="BAPPS mode folder holding train/ and val/ (dataset/2afc or "
                                "dataset/jnd)")
    p.add_argument("--mode", choices=("2afc", "jnd"), default="2afc",
                   help="2afc (2AFC score and r_rf, default) or jnd (JND mAP)")
    p.add_argument("--datasets", nargs="+", default=None, metavar="SET",
                   help="sets such as val/traditional val/cnn (default: every val set present)")
    add_metric_args(p, nets="alex (default), vgg or dists; l2, ssim or msssim for the "
                            "baselines")
    p.add_argument("--colorspace", default=None, choices=_distances.COLORSPACES,
                   help="colour space of the baselines only: default Lab for l2 and ssim (as "
                        "upstream), RGB for msssim (as pytorch-msssim)")
    p.add_argument("--load-size", type=int, default=64,
                   help="shorter image side after resizing (default 64)")
    p.add_argument("--shifts", type=int, nargs="*", default=[1, 2, 3], metavar="N",
                   help="crop-shifts in pixels for r_rf (default 1 2 3; none: 2AFC only)")
    p.add_argument("--json", default=None, metavar="OUT.json", help="write the scores as JSON")
    p.add_argument("--per-sample", default=None, metavar="OUT.csv",
                   help="write per-sample distances and scores as CSV")
    p.add_argument("--plot", default=None, metavar="OUT",
                   help="draw 2AFC per set and r_rf against shift (.png, .svg or .pdf; needs "
                        "matplotlib: pip install 'shiftlpips-jax[plot]')")
    p.add_argument("--plot-with", nargs="+", default=[], metavar="RESULT.json",
                   help="other runs' --json results drawn beside this one in --plot")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N triplets / pairs of each set (a quick look)")
    p.add_argument("--batch-size", type=int, default=50,
                   help="triplets / pairs per jitted batch (default 50)")
    p.add_argument("--threads", type=int, default=None,
                   help="image-decoding threads (default: 2 x CPUs, at most 16)")
    p.add_argument("--workers", type=int, default=None,
                   help="image-decoding processes (default: CPUs - 1 for runs of 4000+ "
                        "triplets, else threads; 0 = threads only)")
    p.add_argument("--precision", choices=runner.PRECISIONS, default="highest",
                   help="float32 matmul/conv precision: highest (default) or default (TF32 "
                        "on recent GPUs: faster, distances move by ~0.1%%)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    images_lib.add_reading_args(p)
    distributed.add_args(p)
    p.set_defaults(func=_run)
