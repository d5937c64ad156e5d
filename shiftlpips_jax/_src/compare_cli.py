"""``shiftlpips compare``, ``shiftlpips pairs`` and ``shiftlpips example``.

* ``compare A.png B.png`` prints the distance; ``compare DIR_A DIR_B`` compares same-named files
  and writes CSV (``--out`` or stdout); ``--spatial-map OUT.png`` (a directory for folder inputs)
  saves heat maps.
* ``pairs DIR`` compares every pair of images in a folder (CSV).
* ``example`` compares the bundled example triplet under every pretrained model.

Images of different sizes are an error unless ``--resize`` (bicubic, to the first image's size).
All outputs are written atomically.

Example::

    shiftlpips compare a.png b.png --net vgg --variant lpips
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import sys

import numpy as np

from . import images
from .metric import Metric, load

__all__ = ["compare_images", "compare_dirs", "compare_all_pairs", "run_example", "add_parser"]

BATCH = 16


def _fit(a: np.ndarray, b: np.ndarray, resize: bool, names: tuple[str, str]) -> np.ndarray:
    if a.shape == b.shape:
        return b
    if not resize:
        raise ValueError(f"images differ in size: {names[0]} is {a.shape[0]}x{a.shape[1]}, "
                         f"{names[1]} is {b.shape[0]}x{b.shape[1]}; pass --resize to resize the "
                         "second to the first (bicubic), or crop them to one size")
    return images.resize_rgb(b, a.shape[:2])


def _distances(metric: Metric, pairs: list[tuple[np.ndarray, np.ndarray]], spatial: bool):
    """Distances (and maps) for (a, b) uint8 pairs, batched by image size."""
    out: list = [None] * len(pairs)
    by_shape: dict[tuple, list[int]] = {}
    for i, (a, _) in enumerate(pairs):
        by_shape.setdefault(a.shape, []).append(i)
    for idx in by_shape.values():
        for start in range(0, len(idx), BATCH):
            chunk = idx[start:start + BATCH]
            xa = np.stack([pairs[i][0] for i in chunk])
            xb = np.stack([pairs[i][1] for i in chunk])
            if spatial:
                maps = np.asarray(metric(xa, xb, spatial=True))[..., 0]
                for j, i in enumerate(chunk):
                    out[i] = (float(maps[j].mean()), maps[j])
            else:
                d = np.asarray(metric(xa, xb))
                for j, i in enumerate(chunk):
                    out[i] = (float(d[j]), None)
    return out


def compare_images(path_a: str, path_b: str, metric: Metric, *, resize: bool = False,
                   spatial_map: str | None = None) -> float:
    """Distance between two image files; optionally writes a heat-map PNG."""
    a, b = images.load_rgb(path_a), images.load_rgb(path_b)
    b = _fit(a, b, resize, (path_a, path_b))
    if spatial_map:
        maps = np.asarray(metric(a, b, spatial=True))[..., 0]
        images.save_png_atomic(spatial_map, images.heatmap(maps))
    return float(np.asarray(metric(a, b)))


def _csv_text(header, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _emit_csv(header, rows, out: str | None) -> None:
    """Writes CSV rows to ``out`` atomically, or to stdout when ``out`` is None."""
    text = _csv_text(header, rows)
    if out:
        images.write_text_atomic(out, text)
        print(f"wrote {len(rows)} distances to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def compare_dirs(dir_a: str, dir_b: str, metric: Metric, *, resize: bool = False,
                 spatial_map_dir: str | None = None) -> tuple[list[tuple[str, float]], list[str]]:
    """Compares same-named images; returns (rows, names present in only one folder)."""
    names_a, names_b = images.list_images(dir_a), images.list_images(dir_b)
    common = sorted(set(names_a) & set(names_b))
    unmatched = sorted(set(names_a) ^ set(names_b))
    if not common:
        raise ValueError(f"no same-named images in {dir_a} and {dir_b} "
                         f"({len(names_a)} and {len(names_b)} images)")
    pairs = []
    for name in common:
        a = images.load_rgb(os.path.join(dir_a, name))
        b = images.load_rgb(os.path.join(dir_b, name))
        pairs.append((a, _fit(a, b, resize, (os.path.join(dir_a, name),
                                             os.path.join(dir_b, name)))))
    rows = [(name, d) for name, (d, _) in zip(common, _distances(metric, pairs, spatial=False))]
    if spatial_map_dir is not None:
        for name, (_, m) in zip(common, _distances(metric, pairs, spatial=True)):
            stem = os.path.splitext(name)[0]
            images.save_png_atomic(os.path.join(spatial_map_dir, f"{stem}.png"), images.heatmap(m))
    return rows, unmatched


def compare_all_pairs(directory: str, metric: Metric, *,
                      resize: bool = False) -> list[tuple[str, str, float]]:
    """Distances between every unordered pair of images in ``directory``."""
    names = images.list_images(directory)
    if len(names) < 2:
        raise ValueError(f"{directory} holds {len(names)} image(s); pairs needs at least 2")
    imgs = {n: images.load_rgb(os.path.join(directory, n)) for n in names}
    first = imgs[names[0]]
    for n in names[1:]:
        imgs[n] = _fit(first, imgs[n], resize, (os.path.join(directory, names[0]),
                                                os.path.join(directory, n)))
    combos = list(itertools.combinations(names, 2))
    results = _distances(metric, [(imgs[a], imgs[b]) for a, b in combos], spatial=False)
    return [(a, b, d) for (a, b), (d, _) in zip(combos, results)]


def run_example(out=None) -> dict[str, tuple[float, float]]:
    """The quickstart job: the bundled example triplet under every pretrained model."""
    out = out or sys.stdout
    ref = images.load_rgb(images.example_path("ex_ref"))
    p0 = images.load_rgb(images.example_path("ex_p0"))
    p1 = images.load_rgb(images.example_path("ex_p1"))
    results = {}
    print("Bundled example (64x64): d(ex_ref, ex_p0) and d(ex_ref, ex_p1)", file=out)
    print(f"{'model':<28}{'d(ref, p0)':>14}{'d(ref, p1)':>14}", file=out)
    for net, variant in [("alex", "shift_tolerant"), ("vgg", "shift_tolerant"),
                         ("alex", "lpips"), ("vgg", "lpips")]:
        metric = load(net, variant)
        d = np.asarray(metric(np.stack([ref, ref]), np.stack([p0, p1])))
        label = ("ST-LPIPS " if variant == "shift_tolerant" else "LPIPS v0.1 ") + net
        results[f"{net}/{variant}"] = (float(d[0]), float(d[1]))
        print(f"{label:<28}{d[0]:>14.6f}{d[1]:>14.6f}", file=out)
    print("(smaller = more similar; float32, CPU)", file=out)
    return results


def _metric_from_args(args) -> Metric:
    if args.checkpoint:
        return load(checkpoint=args.checkpoint)
    return load(args.net, args.variant)


def _add_model_args(p) -> None:
    p.add_argument("--net", default="alex", help="alex (default) or vgg")
    p.add_argument("--variant", default="shift_tolerant",
                   help="shift_tolerant (ST-LPIPS, default) or lpips (LPIPS v0.1)")
    p.add_argument("--checkpoint", default=None,
                   help="a metric directory (from convert/ or training) instead of --net/--variant")
    p.add_argument("--resize", action="store_true",
                   help="resize images of a different size to the first one's size (bicubic)")


def _cmd_compare(args) -> int:
    metric = _metric_from_args(args)
    if os.path.isdir(args.a) or os.path.isdir(args.b):
        if not (os.path.isdir(args.a) and os.path.isdir(args.b)):
            raise ValueError("compare takes two image files or two directories, not a mix")
        rows, unmatched = compare_dirs(args.a, args.b, metric, resize=args.resize,
                                       spatial_map_dir=args.spatial_map)
        for name in unmatched:
            print(f"warning: {name} has no same-named image in the other folder; skipped",
                  file=sys.stderr)
        _emit_csv(("name", "distance"), [(n, f"{d:.8g}") for n, d in rows], args.out)
        return 0
    d = compare_images(args.a, args.b, metric, resize=args.resize, spatial_map=args.spatial_map)
    print(f"{d:.6f}")
    return 0


def _cmd_pairs(args) -> int:
    metric = _metric_from_args(args)
    rows = compare_all_pairs(args.dir, metric, resize=args.resize)
    _emit_csv(("a", "b", "distance"), [(a, b, f"{d:.8g}") for a, b, d in rows], args.out)
    return 0


def _cmd_example(args) -> int:
    del args
    run_example()
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="distance between two images, or same-named images of "
                                       "two folders (CSV)")
    p.add_argument("a", help="image file or folder")
    p.add_argument("b", help="image file or folder")
    _add_model_args(p)
    p.add_argument("--spatial-map", default=None, metavar="OUT",
                   help="save a heat map of the spatial distance (PNG; a folder for folder inputs)")
    p.add_argument("--out", default=None, help="CSV file for folder comparisons (default stdout)")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("pairs", help="distances between all pairs of images in a folder (CSV)")
    p.add_argument("dir")
    _add_model_args(p)
    p.add_argument("--out", default=None, help="CSV file (default stdout)")
    p.set_defaults(func=_cmd_pairs)

    p = sub.add_parser("example", help="compare the bundled example images with every model")
    p.set_defaults(func=_cmd_example)
