"""``shiftlpips compare A B``: the distance of two images, or of same-named images of two folders.

Two files print the distance; two folders write CSV (``--out`` or stdout) and, with
``--spatial-map DIR``, one heat map per pair (``DIR/<name without extension>.png``). Images of
different sizes are an error unless ``--resize``. The job is
:func:`shiftlpips_jax._src.compare.run_compare`.

Example::

    shiftlpips compare a.png b.png --net vgg --variant lpips
"""

from __future__ import annotations

from shiftlpips_jax._src import compare, images

__all__ = ["add_parser", "add_model_args"]


def add_model_args(p) -> None:
    """The model and image-reading options ``compare`` and ``pairs`` share."""
    p.add_argument("--net", default="alex", help="alex (default) or vgg")
    p.add_argument("--variant", default="shift_tolerant",
                   help="shift_tolerant (ST-LPIPS, default) or lpips (LPIPS v0.1)")
    p.add_argument("--checkpoint", default=None,
                   help="a metric directory (from convert/ or training) instead of --net/--variant")
    p.add_argument("--resize", action="store_true",
                   help="resize images of a different size to the first one's size (bicubic)")
    images.add_reading_args(p)


def _run(args) -> int:
    compare.run_compare(args.a, args.b, net=args.net, variant=args.variant,
                        checkpoint=args.checkpoint, resize=args.resize,
                        spatial_map=args.spatial_map, out=args.out, skip_errors=args.skip_errors,
                        max_pixels=args.max_pixels, alpha=args.alpha)
    return 0


def add_parser(sub) -> None:
    """Registers ``compare`` on the subparsers ``sub``."""
    p = sub.add_parser("compare", help="distance between two images, or same-named images of "
                                       "two folders (CSV)")
    p.add_argument("a", help="image file or folder")
    p.add_argument("b", help="image file or folder")
    add_model_args(p)
    p.add_argument("--spatial-map", default=None, metavar="OUT",
                   help="save a heat map of the spatial distance (PNG; for folder inputs a "
                        "folder, not an input folder, receiving <name without extension>.png)")
    p.add_argument("--out", default=None, help="CSV file for folder comparisons (default stdout)")
    p.set_defaults(func=_run)
