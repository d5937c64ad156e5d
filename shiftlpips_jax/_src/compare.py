"""The jobs behind ``shiftlpips compare``, ``shiftlpips pairs`` and ``shiftlpips example``.

* ``compare A.png B.png`` prints the distance; ``compare DIR_A DIR_B`` compares same-named files
  and writes CSV (``--out`` or stdout); ``--spatial-map OUT.png`` (a directory for folder inputs,
  not an input folder) saves heat maps, ``DIR/<name without extension>.png``.
* ``pairs DIR`` compares every pair of images in a folder (CSV).
* ``example`` compares the bundled example triplet under every pretrained model.

Images of different sizes are an error unless ``--resize`` (bicubic, to the first image's size).
Images are read by :func:`images.load_rgb` (regular files only, at most ``--max-pixels``,
transparency by ``--alpha``). Outputs are checked before the model is loaded (none may be an
input or another output, every folder must be writable) and written atomically. In folder
jobs ``--skip-errors`` skips unreadable or unusable files and lists them on stderr.

Example::

    d = run_compare("a.png", "b.png", net="vgg", variant="lpips")   # prints and returns it
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import sys
from typing import Sequence

import numpy as np

from . import images, outputs
from .errors import InputError, PathNotFoundError
from .metric import Metric, available_models, load

__all__ = ["compare_images", "compare_dirs", "compare_all_pairs", "run_example", "run_compare",
           "run_pairs", "heatmap_paths", "check_model_args"]

BATCH = 16


def _fit(a: np.ndarray, b: np.ndarray, resize: bool, names: tuple[str, str]) -> np.ndarray:
    if a.shape == b.shape:
        return b
    if not resize:
        raise InputError(f"images differ in size: {names[0]} is {a.shape[0]}x{a.shape[1]}, "
                         f"{names[1]} is {b.shape[0]}x{b.shape[1]}; pass --resize to resize the "
                         "second to the first (bicubic), or crop them to one size")
    return images.resize_rgb(b, a.shape[:2])


def _check_size(metric: Metric, img: np.ndarray, name: str) -> None:
    h, w = img.shape[:2]
    if min(h, w) < metric.min_size:
        raise InputError(f"image {name} is {h}x{w}; {metric.name} needs at least "
                         f"{metric.min_size}x{metric.min_size} pixels")


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
                   spatial_map: str | None = None, max_pixels: int = images.DEFAULT_MAX_PIXELS,
                   alpha: str = "warn") -> float:
    """Distance between two image files; optionally writes a heat-map PNG.

    Args:
      path_a, path_b: the image files.
      metric: from :func:`load`.
      resize: resize ``path_b`` to the size of ``path_a`` (bicubic) when they differ.
      spatial_map: where to write the heat map (PNG), or ``None``.
      max_pixels, alpha: see :func:`images.load_rgb`.

    Returns:
      The distance.
    """
    outputs.check_outputs([("--spatial-map", spatial_map)], [path_a, path_b])
    a = images.load_rgb(path_a, max_pixels=max_pixels, alpha=alpha)
    b = images.load_rgb(path_b, max_pixels=max_pixels, alpha=alpha)
    b = _fit(a, b, resize, (path_a, path_b))
    _check_size(metric, a, path_a)
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
        outputs.atomic_write_text(out, text)
        print(f"wrote {len(rows)} distances to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def heatmap_paths(names: Sequence[str], directory: str) -> dict[str, str]:
    """{image name: heat-map path} (``DIR/<stem>.png``); refuses two names with one stem.

    Raises:
      InputError: e.g. ``x.jpg`` and ``x.png``, which would both write ``DIR/x.png``.
    """
    paths: dict[str, str] = {}
    by_path: dict[str, str] = {}
    for name in names:
        path = os.path.join(directory, os.path.splitext(name)[0] + ".png")
        if path in by_path:
            raise InputError(f"{by_path[path]} and {name} would both write the heat map {path}; "
                             "rename one of them or compare them separately")
        by_path[path] = name
        paths[name] = path
    return paths


def _same_dir(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _plan_dirs(dir_a: str, dir_b: str, spatial_map_dir: str | None):
    """Names to compare, unmatched names, heat-map paths and input files; checks the outputs."""
    names_a, names_b = images.list_images(dir_a), images.list_images(dir_b)
    common = sorted(set(names_a) & set(names_b))
    unmatched = sorted(set(names_a) ^ set(names_b))
    if not common:
        raise InputError(f"no same-named images in {dir_a} and {dir_b} "
                         f"({len(names_a)} and {len(names_b)} images)")
    maps: dict[str, str] = {}
    if spatial_map_dir is not None:
        for d in (dir_a, dir_b):
            if _same_dir(spatial_map_dir, d):
                raise InputError(f"--spatial-map {spatial_map_dir} is the input folder {d}; "
                                 "heat maps would replace or mix with the inputs: choose "
                                 "another folder")
        maps = heatmap_paths(common, spatial_map_dir)
    inputs = [os.path.join(dir_a, n) for n in names_a] + [os.path.join(dir_b, n) for n in names_b]
    return common, unmatched, maps, inputs


def _skip_or_raise(err: InputError, what: str, skip_errors: bool, skipped: list) -> None:
    if not skip_errors:
        raise err
    skipped.append((what, str(err)))


def compare_dirs(dir_a: str, dir_b: str, metric: Metric, *, resize: bool = False,
                 spatial_map_dir: str | None = None, skip_errors: bool = False,
                 max_pixels: int = images.DEFAULT_MAX_PIXELS, alpha: str = "warn",
                 extra_outputs: Sequence[tuple[str, str | None]] = ()):
    """Compares same-named images of two folders.

    Args:
      dir_a, dir_b: the folders.
      metric: from :func:`load`.
      resize: resize images of ``dir_b`` to their partner's size (bicubic) when they differ.
      spatial_map_dir: write heat maps ``<stem>.png`` into this folder (not an input folder).
      skip_errors: skip pairs with an unreadable or unusable image instead of raising.
      max_pixels, alpha: see :func:`images.load_rgb`.
      extra_outputs: further ``(what, path)`` outputs to check with the heat maps (the CSV).

    Returns:
      ``(rows, unmatched, skipped)``: ``[(name, distance)]``, names present in only one folder,
      and ``[(name, reason)]`` of the skipped pairs.
    """
    common, unmatched, maps, inputs = _plan_dirs(dir_a, dir_b, spatial_map_dir)
    outputs.check_outputs([(f"heat map of {n}", p) for n, p in maps.items()]
                          + list(extra_outputs), inputs)
    pairs, names, skipped = [], [], []
    for name in common:
        pa, pb = os.path.join(dir_a, name), os.path.join(dir_b, name)
        try:
            a = images.load_rgb(pa, max_pixels=max_pixels, alpha=alpha)
            b = _fit(a, images.load_rgb(pb, max_pixels=max_pixels, alpha=alpha), resize,
                     (pa, pb))
            _check_size(metric, a, pa)
        except InputError as err:
            _skip_or_raise(err, name, skip_errors, skipped)
            continue
        pairs.append((a, b))
        names.append(name)
    if not pairs:
        raise InputError(f"none of the {len(common)} same-named images of {dir_a} and {dir_b} "
                         "could be compared (see the skipped files above)")
    rows = [(name, d) for name, (d, _) in zip(names, _distances(metric, pairs, spatial=False))]
    if spatial_map_dir is not None:
        for name, (_, m) in zip(names, _distances(metric, pairs, spatial=True)):
            images.save_png_atomic(maps[name], images.heatmap(m))
    return rows, unmatched, skipped


def compare_all_pairs(directory: str, metric: Metric, *, resize: bool = False,
                      skip_errors: bool = False, max_pixels: int = images.DEFAULT_MAX_PIXELS,
                      alpha: str = "warn"):
    """Distances between every unordered pair of images in ``directory``.

    Args:
      directory: the folder.
      metric: from :func:`load`.
      resize: resize every image to the first one's size (bicubic) when they differ.
      skip_errors: leave out unreadable or unusable images instead of raising.
      max_pixels, alpha: see :func:`images.load_rgb`.

    Returns:
      ``(rows, skipped)``: ``[(a, b, distance)]`` and ``[(name, reason)]``.
    """
    names = images.list_images(directory)
    if len(names) < 2:
        raise InputError(f"{directory} holds {len(names)} image(s); pairs needs at least 2")
    imgs, skipped, first = {}, [], None
    for n in names:
        path = os.path.join(directory, n)
        try:
            img = images.load_rgb(path, max_pixels=max_pixels, alpha=alpha)
            if first is None:
                _check_size(metric, img, path)
                first = n
            else:
                img = _fit(imgs[first], img, resize, (os.path.join(directory, first), path))
        except InputError as err:
            _skip_or_raise(err, n, skip_errors, skipped)
            continue
        imgs[n] = img
    if len(imgs) < 2:
        raise InputError(f"{directory}: only {len(imgs)} of {len(names)} images could be read; "
                         "pairs needs at least 2")
    combos = list(itertools.combinations(list(imgs), 2))
    results = _distances(metric, [(imgs[a], imgs[b]) for a, b in combos], spatial=False)
    return [(a, b, d) for (a, b), (d, _) in zip(combos, results)], skipped


def run_example(*, out=None) -> dict[str, tuple[float, float]]:
    """The quickstart job: the bundled example triplet under every pretrained model.

    Args:
      out: the text stream for the table (default stdout).

    Returns:
      ``{"net/variant": (d(ref, p0), d(ref, p1))}``.
    """
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


def check_model_args(net: str, variant: str) -> None:
    """Refuses an unknown net / variant before anything is loaded.

    Args:
      net: a pretrained net name (or alias).
      variant: a pretrained variant of it.

    Raises:
      InputError: listing the pretrained nets and variants.
    """
    from .backbones import NET_ALIASES
    known = available_models()
    canonical = NET_ALIASES.get(net, net)
    nets = sorted({n for n, _ in known})
    if canonical not in nets:
        raise InputError(f"unknown net {net!r}; pretrained nets: {nets} (models: {known})")
    if (canonical, variant) not in known:
        variants = sorted(v for n, v in known if n == canonical)
        raise InputError(f"unknown variant {variant!r} for net {canonical!r}; pretrained "
                         f"variants: {variants}")


def _metric(net: str, variant: str, checkpoint: str | None) -> Metric:
    if checkpoint:
        return load(checkpoint=checkpoint)
    return load(net, variant)


def _prepare(net: str, variant: str, checkpoint: str | None, max_pixels: int) -> None:
    """Checks shared by the jobs, before anything is loaded."""
    if not checkpoint:
        check_model_args(net, variant)
    images.allow_large_images(max_pixels)


def _report_skipped(skipped, total: int, unit: str) -> None:
    for name, reason in skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    if skipped:
        print(f"skipped {len(skipped)} of {total} {unit} (--skip-errors)", file=sys.stderr)


def _existing(path: str) -> str:
    if not os.path.lexists(path):
        raise PathNotFoundError(f"not found: {path} (expected an image file or a folder)")
    return path


def run_compare(a: str, b: str, *, net: str = "alex", variant: str = "shift_tolerant",
                checkpoint: str | None = None, resize: bool = False,
                spatial_map: str | None = None, out: str | None = None,
                skip_errors: bool = False, max_pixels: int = images.DEFAULT_MAX_PIXELS,
                alpha: str = "warn") -> float | list[tuple[str, float]]:
    """The ``compare`` job: two images (prints the distance) or two folders (CSV).

    Args:
      a, b: two image files, or two folders (same-named images are compared).
      net, variant: the pretrained model; ``checkpoint``: a metric directory instead.
      resize: resize the second image of a pair to the first one's size (bicubic).
      spatial_map: heat-map PNG (a folder for folder inputs); checked before any work.
      out: CSV file for folder inputs (default stdout).
      skip_errors: in folder jobs, skip unreadable or unusable files (listed on stderr).
      max_pixels, alpha: see :func:`images.load_rgb`.

    Returns:
      The distance (files) or ``[(name, distance)]`` (folders).
    """
    _prepare(net, variant, checkpoint, max_pixels)
    a, b = _existing(a), _existing(b)
    read = dict(max_pixels=max_pixels, alpha=alpha)
    if os.path.isdir(a) or os.path.isdir(b):
        if not (os.path.isdir(a) and os.path.isdir(b)):
            raise InputError("compare takes two image files or two directories, not a mix")
        common, _, maps, inputs = _plan_dirs(a, b, spatial_map)
        csv_out = [("--out", out)]
        outputs.check_outputs([(f"heat map of {n}", p) for n, p in maps.items()] + csv_out,
                              inputs)
        metric = _metric(net, variant, checkpoint)
        rows, unmatched, skipped = compare_dirs(
            a, b, metric, resize=resize, spatial_map_dir=spatial_map, skip_errors=skip_errors,
            extra_outputs=csv_out, **read)
        for name in unmatched:
            print(f"warning: {name} has no same-named image in the other folder; skipped",
                  file=sys.stderr)
        _report_skipped(skipped, len(common), "image pairs")
        _emit_csv(("name", "distance"), [(n, f"{d:.8g}") for n, d in rows], out)
        return rows
    outputs.check_outputs([("--spatial-map", spatial_map)], [a, b])
    metric = _metric(net, variant, checkpoint)
    d = compare_images(a, b, metric, resize=resize, spatial_map=spatial_map, **read)
    print(f"{d:.6f}")
    return d


def run_pairs(directory: str, *, net: str = "alex", variant: str = "shift_tolerant",
              checkpoint: str | None = None, resize: bool = False, out: str | None = None,
              skip_errors: bool = False, max_pixels: int = images.DEFAULT_MAX_PIXELS,
              alpha: str = "warn") -> list[tuple[str, str, float]]:
    """The ``pairs`` job: every pair of images in ``directory``, as CSV.

    Args:
      directory: the folder.
      net, variant, checkpoint, resize, skip_errors, max_pixels, alpha: as :func:`run_compare`.
      out: CSV file (default stdout).

    Returns:
      ``[(a, b, distance)]``.
    """
    _prepare(net, variant, checkpoint, max_pixels)
    names = images.list_images(directory)
    outputs.check_outputs([("--out", out)], [os.path.join(directory, n) for n in names])
    metric = _metric(net, variant, checkpoint)
    rows, skipped = compare_all_pairs(directory, metric, resize=resize, skip_errors=skip_errors,
                                      max_pixels=max_pixels, alpha=alpha)
    _report_skipped(skipped, len(names), "images")
    _emit_csv(("a", "b", "distance"), [(a, b, f"{d:.8g}") for a, b, d in rows], out)
    return rows
