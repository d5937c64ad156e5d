"""``shiftlpips compare A B``: the distance of two images, or of same-named images of two folders.

Two files print the distance; two folders write CSV (``--out`` or stdout) and, with
``--spatial-map DIR``, one map of the spatial distance per pair (``DIR/<name without
extension>.png``), all on one colour scale with a colour bar. Images of
different sizes are an error unless ``--resize``. The job is
:func:`shiftlpips_jax._src.compare.run_compare`.

Example::

    shiftlpips compare a.png b.png --net vgg --variant lpips
"""

from __future__ import annotations

from shiftlpips_jax._src import compare, distributed, images

__all__ = ["add_parser", "add_model_args", "add_metric_args"]


def add_metric_args(p, *, nets: str) -> None:
    """``--net``, ``--variant`` and ``--checkpoint``, the way every job that scores images takes
    them (``compare``, ``pairs``, ``eval``); ``nets`` is the help text listing the nets the job
    accepts."""
    p.add_argument("--net", default=None, help=nets)
    p.add_argument("--variant", default=None,
                   help="for alex and vgg: shift_tolerant (ST-LPIPS, default) or lpips (LPIPS "
                        "v0.1)")
    p.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="a metric directory (from convert/ or training) instead of --net and "
                        "--variant (not together with them)")


def add_model_args(p) -> None:
    """The model and image-reading options ``compare`` and ``pairs`` share."""
    add_metric_args(p, nets="alex (default), vgg, dists (DISTS) or msssim ((1 - MS-SSIM) / 2 "
                            "on RGB)")
    p.add_argument("--resize", action="store_true",
                   help="resize images of a different size to the first one's size (bicubic)")
    images.add_reading_args(p)
    p.add_argument("--json", default=None, metavar="OUT.json",
                   help="folder jobs: write the summary (count, mean, std, ci95) and every "
                        "distance as JSON")
    distributed.add_args(p)


def _run(args) -> int:
    distributed.init_from_args(args)
    compare.run_compare(args.a, args.b, net=args.net, variant=args.variant,
                        checkpoint=args.checkpoint, resize=args.resize,
                        spatial_map=args.spatial_map, out=args.out, skip_errors=args.skip_errors,
                        max_pixels=args.max_pixels, alpha=args.alpha,
                        map_overlay=args.map_overlay, map_vmax=args.map_vmax,
                        map_format=args.map_format, json_path=args.json)
    return 0


def add_parser(sub) -> None:
    """Registers ``compare`` on the subparsers ``sub``."""
    p = sub.add_parser("compare", help="distance between two images, or same-named images of "
                                       "two folders (CSV)")
    p.add_argument("a", help="image file or folder")
    p.add_argument("b", help="image file or folder")
    add_model_args(p)
    p.add_argument("--spatial-map", default=None, metavar="OUT",
                   help="draw the map of the spatial distance with a colour bar (.png, .svg or "
                        ".pdf; for folder inputs a folder, not an input folder, receiving <name "
                        "without extension>.png (see --map-format), all on one colour scale; "
                        "needs matplotlib: "
                        "pip install 'shiftlpips-jax[plot]')")
    p.add_argument("--map-overlay", action="store_true",
                   help="draw the map over the first image (in grey)")
    p.add_argument("--map-vmax", type=float, default=None, metavar="V",
                   help="top of the maps' colour scale (default: the 99th percentile of all "
                        "the run's maps); fix it to compare maps across runs")
    p.add_argument("--map-format", choices=("png", "svg", "pdf"), default=None,
                   help="format of the maps of a folder comparison (default png)")
    p.add_argument("--out", default=None, help="CSV file for folder comparisons (default stdout)")
    p.set_defaults(func=_run)
