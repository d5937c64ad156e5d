"""The jobs behind ``shiftlpips compare``, ``shiftlpips pairs`` and ``shiftlpips example``.

* ``compare A.png B.png`` prints the distance; ``compare DIR_A DIR_B`` compares same-named files
  and writes CSV (``--out`` or stdout); ``--spatial-map OUT.png`` (``.svg``, ``.pdf``; a
  directory for folder inputs, not an input folder, receiving ``<name without extension>.png``,
  or ``.svg`` / ``.pdf`` with ``--map-format``)
  draws the spatial distance maps with matplotlib, all on one colour scale (the 99th percentile
  of every map of the run, or ``--map-vmax``) with a colour bar, over the first image in grey
  with ``--map-overlay``.
* ``pairs DIR`` compares every pair of images in a folder (CSV).
* Folder jobs print N, mean, std and the 95% CI of the mean after the rows (on stdout, or on
  stderr when the CSV goes to stdout); ``--json OUT`` writes ``{"summary": {...}, "per_image":
  {name: d}}`` (``pairs``: ``"per_pair"``), NaN as null. ``--skip-errors`` counts what it
  skipped in the summary.
* Each step scores ``BATCH`` pairs on every local device (a ``("data",)`` mesh,
  ``shard_map``), so results do not depend on the device count; with ``jax.distributed``
  initialised each process scores its share (``compare`` reads only its share's images,
  ``pairs`` reads every image since a pair needs two) and process 0 prints and writes.
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
import json
import math
import os
import sys
import weakref
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import PartitionSpec as P

from . import distributed, images, outputs, plots
from .distributed import AXIS
from .errors import InputError, PathNotFoundError
from .metric import Metric, available_models, load
from .pixels import to_unit_range
from .streaming import pad_batch, summarize

# (1 - MS-SSIM) / 2 on 8-bit RGB, as in evaluation (the window shrinks for sides 33-160).
MSSSIM_NETS = ("msssim", "ms-ssim", "ms_ssim")

__all__ = ["compare_images", "compare_dirs", "compare_all_pairs", "run_example", "run_compare",
           "run_pairs", "heatmap_paths", "check_model_args", "check_map_args", "folder_summary",
           "summary_line", "resolve_model", "MSSSIM_NETS"]

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


# Per metric, its sharded distance programs and replicated parameters; weak keys, so a metric
# dropped by the caller is not kept alive here. The programs close over the module, never the
# Metric (which holds the parameters).
_SHARDED: "weakref.WeakKeyDictionary[Metric, dict]" = weakref.WeakKeyDictionary()


def _sharded_distance(metric: Metric, spatial: bool, mesh):
    """``(fn, params)``: ``fn(params, a, b)`` on uint8 batches split over ``mesh``'s devices.

    Every device runs the model on its own ``BATCH`` rows (``shard_map``), so each device
    computes exactly what one device computes for a batch of ``BATCH``: the results do not
    depend on the device count.
    """
    cache = _SHARDED.setdefault(metric, {})
    key = (spatial, mesh)
    if key not in cache:
        module, precision = metric.module, metric.precision

        def per_device(params, a, b):
            with jax.default_matmul_precision(precision):
                # Modules without a spatial map (DISTS, MS-SSIM) take no ``spatial`` option.
                extra = {"spatial": True} if spatial else {}
                return module.apply(params, to_unit_range(a), to_unit_range(b), **extra)

        fn = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS), P(AXIS)),
                                   out_specs=P(AXIS)))
        cache[key] = (fn, distributed.replicate(mesh, metric.variables))
    return cache[key]


def _distances(metric: Metric, pairs: list[tuple[np.ndarray, np.ndarray]], spatial: bool):
    """Distances (and maps) for (a, b) uint8 pairs, batched by image size over every local
    device (``BATCH`` pairs per device and step; the last step padded)."""
    out: list = [None] * len(pairs)
    by_shape: dict[tuple, list[int]] = {}
    for i, (a, _) in enumerate(pairs):
        by_shape.setdefault(a.shape, []).append(i)
    mesh = distributed.local_mesh()
    fn, params = _sharded_distance(metric, spatial, mesh)
    rows = BATCH * mesh.devices.size
    for idx in by_shape.values():
        for start in range(0, len(idx), rows):
            chunk = idx[start:start + rows]
            (xa, xb), _ = pad_batch((np.stack([pairs[i][0] for i in chunk]),
                                     np.stack([pairs[i][1] for i in chunk])), rows)
            res = np.asarray(fn(params, distributed.shard_rows(mesh, xa),
                                distributed.shard_rows(mesh, xb)))
            for j, i in enumerate(chunk):
                out[i] = (float(res[j].mean()), res[j, ..., 0]) if spatial else \
                    (float(res[j]), None)
    return out


def check_map_args(spatial_map: str | None, *, folder: bool, overlay: bool = False,
                   vmax: float | None = None, map_format: str | None = None) -> str:
    """Refuses bad map options before any work: format, matplotlib, ``vmax``, stray flags.

    Args:
      spatial_map: the ``--spatial-map`` path (a figure file, or a folder when ``folder``).
      folder: the inputs are folders (maps are ``<stem>.png`` in ``spatial_map``).
      overlay, vmax, map_format: ``--map-overlay``, ``--map-vmax`` and ``--map-format``
        (``png``, ``svg`` or ``pdf``: the maps' format in a folder job).

    Returns:
      The extension of the folder job's maps (``".png"`` by default).

    Raises:
      InputError: an unknown extension or format, a ``vmax`` that is not positive, or a map
        option without ``spatial_map``.
      PlotDependencyError: matplotlib is missing.
    """
    if spatial_map is None:
        for flag, given in (("--map-overlay", overlay), ("--map-vmax", vmax is not None),
                            ("--map-format", map_format is not None)):
            if given:
                raise InputError(f"{flag} needs --spatial-map OUT")
        return ".png"
    ext = ".png"
    if not folder:
        plots.figure_format(spatial_map)
        if map_format is not None:
            raise InputError("--map-format is for folder inputs; for two files the extension "
                             f"of --spatial-map {spatial_map} picks the format")
    elif map_format is not None:
        ext = "." + str(map_format).lower().lstrip(".")
        if ext not in plots.FORMATS:
            raise InputError(f"--map-format must be png, svg or pdf; got {map_format!r}")
    if vmax is not None and not (np.isfinite(vmax) and vmax > 0):
        raise InputError(f"--map-vmax must be a positive number; got {vmax}")
    plots.check_available()
    return ext


def _write_map(path: str, m: np.ndarray, vmax: float, image: np.ndarray | None,
               title: str) -> None:
    data = plots.render_map_figure(m, vmax=vmax, image=image, titles=[title],
                                   format=plots.figure_format(path))
    outputs.atomic_write_bytes(path, data)


def compare_images(path_a: str, path_b: str, metric: Metric, *, resize: bool = False,
                   spatial_map: str | None = None, max_pixels: int = images.DEFAULT_MAX_PIXELS,
                   alpha: str = "warn", map_overlay: bool = False,
                   map_vmax: float | None = None) -> float:
    """Distance between two image files; optionally draws the spatial distance map.

    Args:
      path_a, path_b: the image files.
      metric: from :func:`load`.
      resize: resize ``path_b`` to the size of ``path_a`` (bicubic) when they differ.
      spatial_map: where to draw the map (``.png``, ``.svg`` or ``.pdf``), or ``None``.
      max_pixels, alpha: see :func:`images.load_rgb`.
      map_overlay: draw the map over ``path_a`` (in grey).
      map_vmax: top of the colour scale (default: the map's 99th percentile).

    Returns:
      The distance.
    """
    check_map_args(spatial_map, folder=False, overlay=map_overlay, vmax=map_vmax)
    outputs.check_outputs([("--spatial-map", spatial_map)], [path_a, path_b])
    a = images.load_rgb(path_a, max_pixels=max_pixels, alpha=alpha)
    b = images.load_rgb(path_b, max_pixels=max_pixels, alpha=alpha)
    b = _fit(a, b, resize, (path_a, path_b))
    _check_size(metric, a, path_a)
    if spatial_map:
        m = np.asarray(metric(a, b, spatial=True))[..., 0]
        vmax = map_vmax if map_vmax is not None else plots.shared_vmax(m)
        _write_map(spatial_map, m, vmax, a if map_overlay else None,
                   f"{os.path.basename(path_a)} vs {os.path.basename(path_b)}")
    return float(np.asarray(metric(a, b)))


def _csv_text(header, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float as ``None`` (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def folder_summary(distances: Sequence[float], *, skipped: int | None = None) -> dict[str, Any]:
    """The summary a folder job prints and writes: count, mean, std, 95% CI of the mean.

    Args:
      distances: the per-image (or per-pair) distances.
      skipped: how many files ``--skip-errors`` left out (``None``: not counted).

    Returns:
      ``{"count", "mean", "std", "ci95": [lo, hi], "min", "max"}`` (as
      :func:`~shiftlpips_jax._src.streaming.summarize`; NaN where undefined), plus
      ``"skipped"`` when given.
    """
    s = summarize(np.asarray(distances, np.float64))
    out = {k: s[k] for k in ("count", "mean", "std", "ci95", "min", "max")}
    if skipped is not None:
        out["skipped"] = int(skipped)
    return out


def summary_line(summary: dict[str, Any]) -> str:
    """One line: ``N 3, mean 0.41, std 0.2, 95% CI of the mean [0.1, 0.7]`` (``n/a`` for NaN).

    Args:
      summary: from :func:`folder_summary`.

    Returns:
      The line.
    """
    def fmt(v):
        return "n/a" if v is None or not math.isfinite(v) else f"{v:.6g}"

    lo, hi = summary["ci95"]
    line = (f"N {summary['count']}, mean {fmt(summary['mean'])}, std {fmt(summary['std'])}, "
            f"95% CI of the mean [{fmt(lo)}, {fmt(hi)}]")
    if "skipped" in summary:
        line += f", skipped {summary['skipped']}"
    return line


def _emit(header, rows, out: str | None, *, json_path: str | None = None,
          payload: dict | None = None) -> None:
    """Writes the CSV (``out``, atomically, or stdout) and the JSON together, then prints the
    summary after the rows: on stdout, or on stderr when stdout carries the CSV (so it stays
    CSV for pipes)."""
    text = _csv_text(header, rows)
    files = [(out, text.encode())] if out else []
    if json_path:
        files.append((json_path, (json.dumps(_json_safe(payload), indent=2, allow_nan=False)
                                  + "\n").encode()))
    outputs.atomic_write_many(files)
    if not out:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        print(f"wrote {len(rows)} distances to {out}", file=sys.stderr)
    if json_path:
        print(f"wrote {json_path}", file=sys.stderr)
    print(summary_line(payload["summary"]), file=sys.stdout if out else sys.stderr)


def heatmap_paths(names: Sequence[str], directory: str, ext: str = ".png") -> dict[str, str]:
    """{image name: map path} (``DIR/<stem>.png``, or ``ext``); refuses two names with one stem.

    Raises:
      InputError: e.g. ``x.jpg`` and ``x.png``, which would both write ``DIR/x.png``.
    """
    paths: dict[str, str] = {}
    by_path: dict[str, str] = {}
    for name in names:
        path = os.path.join(directory, os.path.splitext(name)[0] + ext)
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


def _plan_dirs(dir_a: str, dir_b: str, spatial_map_dir: str | None, *, overlay: bool,
               vmax: float | None, map_format: str | None,
               extra_outputs: Sequence[tuple[str, str | None]] = ()):
    """Names to compare, unmatched names and heat-map paths of a folder job, after checking the
    map options and (on the writing process) every output against every input file."""
    map_ext = check_map_args(spatial_map_dir, folder=True, overlay=overlay, vmax=vmax,
                             map_format=map_format)
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
        maps = heatmap_paths(common, spatial_map_dir, map_ext)
    inputs = [os.path.join(dir_a, n) for n in names_a] + [os.path.join(dir_b, n) for n in names_b]
    if distributed.is_writer():
        outputs.check_outputs([(f"heat map of {n}", p) for n, p in maps.items()]
                              + list(extra_outputs), inputs)
    return common, unmatched, maps


def _skip_or_raise(err: InputError, what: str, skip_errors: bool, skipped: list) -> None:
    if not skip_errors:
        raise err
    skipped.append((what, str(err)))


def compare_dirs(dir_a: str, dir_b: str, metric: Metric, *, resize: bool = False,
                 spatial_map_dir: str | None = None, skip_errors: bool = False,
                 max_pixels: int = images.DEFAULT_MAX_PIXELS, alpha: str = "warn",
                 extra_outputs: Sequence[tuple[str, str | None]] = (),
                 map_overlay: bool = False, map_vmax: float | None = None,
                 map_format: str | None = None):
    """Compares same-named images of two folders.

    Args:
      dir_a, dir_b: the folders.
      metric: from :func:`load`.
      resize: resize images of ``dir_b`` to their partner's size (bicubic) when they differ.
      spatial_map_dir: draw the maps as ``<stem>.png`` into this folder (not an input folder),
        all on one colour scale: ``map_vmax``, by default the 99th percentile of every map.
      skip_errors: skip pairs with an unreadable or unusable image instead of raising.
      max_pixels, alpha: see :func:`images.load_rgb`.
      extra_outputs: further ``(what, path)`` outputs to check with the heat maps (the CSV).
      map_overlay: draw each map over its image of ``dir_a`` (in grey).
      map_format: ``"png"`` (default), ``"svg"`` or ``"pdf"``: the maps' format.

    Returns:
      ``(rows, unmatched, skipped)``: ``[(name, distance)]``, names present in only one folder,
      and ``[(name, reason)]`` of the skipped pairs.
    """
    common, unmatched, maps = _plan_dirs(dir_a, dir_b, spatial_map_dir, overlay=map_overlay,
                                         vmax=map_vmax, map_format=map_format,
                                         extra_outputs=extra_outputs)
    if spatial_map_dir is not None and jax.process_count() > 1:
        raise InputError("--spatial-map needs a single process; run the heat maps without "
                         "--num-processes")
    start, stop = distributed.share(len(common))    # this process's names
    pairs, names, skipped = [], [], []
    for name in common[start:stop]:
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
    rows = [(name, d) for name, (d, _) in zip(names, _distances(metric, pairs, spatial=False))]
    if jax.process_count() > 1:      # every process's rows and skips, in the names' order
        parts = distributed.allgather({"rows": rows, "skipped": skipped})
        rows = [tuple(r) for p in parts for r in p["rows"]]
        skipped = [tuple(r) for p in parts for r in p["skipped"]]
    if not rows:
        raise InputError(f"none of the {len(common)} same-named images of {dir_a} and {dir_b} "
                         "could be compared (see the skipped files above)")
    if spatial_map_dir is not None:
        spatial = [m for _, m in _distances(metric, pairs, spatial=True)]
        # One colour scale for the whole run, so the maps compare with each other.
        vmax = map_vmax if map_vmax is not None else plots.shared_vmax(spatial)
        for name, (a, _), m in zip(names, pairs, spatial):
            _write_map(maps[name], m, vmax, a if map_overlay else None, name)
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
    start, stop = distributed.share(len(combos))    # this process's pairs
    mine = combos[start:stop]
    results = _distances(metric, [(imgs[a], imgs[b]) for a, b in mine], spatial=False)
    rows = [(a, b, d) for (a, b), (d, _) in zip(mine, results)]
    if jax.process_count() > 1:      # every process's rows, in the pairs' order
        rows = [tuple(r) for part in distributed.allgather(rows) for r in part]
    return rows, skipped


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


def check_model_args(net: str, variant: str | None) -> None:
    """Refuses an unknown net / variant before anything is loaded.

    Args:
      net: a pretrained net name (or alias).
      variant: a pretrained variant of it (``None``: the net's default).

    Raises:
      InputError: listing the pretrained nets and variants.
    """
    from .backbones import NET_ALIASES
    known = available_models()
    canonical = NET_ALIASES.get(net, net)
    nets = sorted({n for n, _ in known})
    if canonical not in nets:
        raise InputError(f"unknown net {net!r}; pretrained nets: {nets} (models: {known})")
    if variant is None:
        return
    if (canonical, variant) not in known:
        variants = sorted(v for n, v in known if n == canonical)
        raise InputError(f"unknown variant {variant!r} for net {canonical!r}; pretrained "
                         f"variants: {variants}")


def resolve_model(net: str | None, variant: str | None,
                  checkpoint: str | None) -> tuple[str | None, str | None]:
    """The model a job's ``net`` / ``variant`` / ``checkpoint`` options name, checked.

    Args:
      net: a pretrained net, ``msssim``, or ``None`` (``alex``).
      variant: its variant, or ``None`` (the net's default).
      checkpoint: a metric directory instead; then ``net`` and ``variant`` must be ``None``.

    Returns:
      ``(net, variant)`` with ``net`` filled in (``(None, None)`` for a checkpoint).

    Raises:
      InputError: a checkpoint together with a net or variant, or an unknown net / variant.
    """
    if checkpoint:
        given = [f"--{k} {v}" for k, v in (("net", net), ("variant", variant)) if v is not None]
        if given:
            raise InputError(f"--checkpoint {checkpoint} already names the model; drop "
                             f"{' and '.join(given)}")
        return None, None
    net = "alex" if net is None else net
    if net.lower() in MSSSIM_NETS:
        if variant is not None:
            raise InputError(f"--variant {variant} does not apply to msssim (it has no variants)")
        return "msssim", None
    check_model_args(net, variant)
    return net, variant


def _metric(net: str | None, variant: str | None, checkpoint: str | None) -> Metric:
    if checkpoint:
        return load(checkpoint=checkpoint)
    if net == "msssim":
        from .evaluation.msssim import MSSSIM
        return Metric(MSSSIM(), {}, net="msssim", variant="RGB")
    return load(net, variant)


def _prepare(net: str | None, variant: str | None, checkpoint: str | None,
             max_pixels: int) -> tuple[str | None, str | None]:
    """Checks shared by the jobs, before anything is loaded; returns the resolved model."""
    net, variant = resolve_model(net, variant, checkpoint)
    images.allow_large_images(max_pixels)
    return net, variant


def _report_skipped(skipped, total: int, unit: str) -> None:
    for name, reason in skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    if skipped:
        print(f"skipped {len(skipped)} of {total} {unit} (--skip-errors)", file=sys.stderr)


def _existing(path: str) -> str:
    if not os.path.lexists(path):
        raise PathNotFoundError(f"not found: {path} (expected an image file or a folder)")
    return path


def run_compare(a: str, b: str, *, net: str | None = None, variant: str | None = None,
                checkpoint: str | None = None, resize: bool = False,
                spatial_map: str | None = None, out: str | None = None,
                skip_errors: bool = False, max_pixels: int = images.DEFAULT_MAX_PIXELS,
                alpha: str = "warn", map_overlay: bool = False, map_vmax: float | None = None,
                map_format: str | None = None, json_path: str | None = None
                ) -> float | list[tuple[str, float]]:
    """The ``compare`` job: two images (prints the distance) or two folders (CSV + summary).

    Args:
      a, b: two image files, or two folders (same-named images are compared).
      net, variant: the model (``None``: ``alex`` / the net's default variant): ``alex``,
        ``vgg``, ``dists`` or ``msssim`` ((1 - MS-SSIM) / 2 on RGB; no variants).
      checkpoint: a metric directory instead (not together with ``net`` or ``variant``).
      resize: resize the second image of a pair to the first one's size (bicubic).
      spatial_map: the map figure (``.png``, ``.svg``, ``.pdf``; a folder for folder inputs);
        checked before any work.
      map_overlay, map_vmax, map_format: as :func:`compare_dirs` (``map_format``: folders
        only).
      out: CSV file for folder inputs (default stdout).
      skip_errors: in folder jobs, skip unreadable or unusable files (listed on stderr and
        counted in the summary).
      max_pixels, alpha: see :func:`images.load_rgb`.
      json_path: for folder inputs, write ``{"summary": {"count", "mean", "std", "ci95", ...},
        "per_image": {name: distance}}`` (NaN as null; atomically, with the CSV).

    Returns:
      The distance (files) or ``[(name, distance)]`` (folders).
    """
    net, variant = _prepare(net, variant, checkpoint, max_pixels)
    a, b = _existing(a), _existing(b)
    read = dict(max_pixels=max_pixels, alpha=alpha)
    draw = dict(map_overlay=map_overlay, map_vmax=map_vmax)
    if os.path.isdir(a) or os.path.isdir(b):
        if not (os.path.isdir(a) and os.path.isdir(b)):
            raise InputError("compare takes two image files or two directories, not a mix")
        csv_out = [("--out", out), ("--json", json_path)]
        # Checked here before the model loads (a mistake costs no load); compare_dirs, a
        # public function, checks the same plan again.
        common, _, _ = _plan_dirs(a, b, spatial_map, overlay=map_overlay, vmax=map_vmax,
                                  map_format=map_format, extra_outputs=csv_out)
        metric = _metric(net, variant, checkpoint)
        rows, unmatched, skipped = compare_dirs(
            a, b, metric, resize=resize, spatial_map_dir=spatial_map, skip_errors=skip_errors,
            extra_outputs=csv_out, map_format=map_format, **read, **draw)
        if not distributed.is_writer():
            return rows
        for name in unmatched:
            print(f"warning: {name} has no same-named image in the other folder; skipped",
                  file=sys.stderr)
        _report_skipped(skipped, len(common), "image pairs")
        payload = {"summary": folder_summary([d for _, d in rows],
                                             skipped=len(skipped) if skip_errors else None),
                   "per_image": {n: d for n, d in rows}}
        if skipped:
            payload["skipped"] = [{"name": n, "reason": r} for n, r in skipped]
        if unmatched:
            payload["unmatched"] = list(unmatched)
        _emit(("name", "distance"), [(n, f"{d:.8g}") for n, d in rows], out,
              json_path=json_path, payload=payload)
        return rows
    if json_path:
        raise InputError("--json is for folder comparisons (two folders); for two files the "
                         "distance is printed")
    check_map_args(spatial_map, folder=False, overlay=map_overlay, vmax=map_vmax,
                   map_format=map_format)
    outputs.check_outputs([("--spatial-map", spatial_map)], [a, b])
    metric = _metric(net, variant, checkpoint)
    d = compare_images(a, b, metric, resize=resize, spatial_map=spatial_map, **read, **draw)
    print(f"{d:.6f}")
    return d


def run_pairs(directory: str, *, net: str | None = None, variant: str | None = None,
              checkpoint: str | None = None, resize: bool = False, out: str | None = None,
              skip_errors: bool = False, max_pixels: int = images.DEFAULT_MAX_PIXELS,
              alpha: str = "warn", json_path: str | None = None) -> list[tuple[str, str, float]]:
    """The ``pairs`` job: every pair of images in ``directory``, as CSV, then the summary.

    Args:
      directory: the folder.
      net, variant, checkpoint, resize, skip_errors, max_pixels, alpha: as :func:`run_compare`.
      out: CSV file (default stdout).
      json_path: write ``{"summary": {...}, "per_pair": [{"a", "b", "distance"}]}`` (NaN as
        null; atomically, with the CSV).

    Returns:
      ``[(a, b, distance)]``.
    """
    net, variant = _prepare(net, variant, checkpoint, max_pixels)
    names = images.list_images(directory)
    if distributed.is_writer():
        outputs.check_outputs([("--out", out), ("--json", json_path)],
                              [os.path.join(directory, n) for n in names])
    metric = _metric(net, variant, checkpoint)
    rows, skipped = compare_all_pairs(directory, metric, resize=resize, skip_errors=skip_errors,
                                      max_pixels=max_pixels, alpha=alpha)
    if not distributed.is_writer():
        return rows
    _report_skipped(skipped, len(names), "images")
    payload = {"summary": folder_summary([d for _, _, d in rows],
                                         skipped=len(skipped) if skip_errors else None),
               "per_pair": [{"a": a, "b": b, "distance": d} for a, b, d in rows]}
    if skipped:
        payload["skipped"] = [{"name": n, "reason": r} for n, r in skipped]
    _emit(("a", "b", "distance"), [(a, b, f"{d:.8g}") for a, b, d in rows], out,
          json_path=json_path, payload=payload)
    return rows
