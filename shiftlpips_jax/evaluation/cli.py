"""``shiftlpips eval``: BAPPS 2AFC / JND scores of a metric, as the paper reports them.

::

    shiftlpips eval ROOT --mode 2afc --datasets val/traditional val/cnn --net alex \\
        --variant shift_tolerant --load-size 64 --shifts 1 2 3 --json OUT.json
      -> {"2afc": {"val/traditional": %, "val/cnn": %, "mean": %},
          "r_rf": {"1": {"val/traditional": %, "val/cnn": %, "mean": %}, "2": {...}, "3": {...}},
          "rank_flips": {"1": {set: count, "total": count}, ...}, "triplets": {...}, ...}
    shiftlpips eval ROOT --mode jnd --datasets val/traditional val/cnn --net alex --json OUT.json
      -> {"jnd_map": {"val/traditional": x, "val/cnn": x, "mean": x}, "pairs": {...}, ...}

ROOT holds ``train/`` and ``val/`` of that mode (BAPPS ``dataset/2afc`` or ``dataset/jnd``).
``--net l2`` / ``--net ssim`` select the baselines (``--colorspace Lab``, upstream's default, or
``RGB``); ``--checkpoint DIR`` evaluates a trained metric. Prints the paper-style table and the
throughput; ``--limit N`` scores only the first N of each set. The JSON and CSV paths are
checked before anything is read (writable; neither may be a dataset file or the other) and
written atomically, only after the whole run succeeded. ``--skip-errors`` leaves out records
with unreadable files (listed on stderr and in the JSON's ``skipped``); images are read with
``--max-pixels`` and ``--alpha`` as in ``compare``.

Example::

    shiftlpips eval ~/BAPPS/dataset/2afc --limit 200
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from typing import Sequence, TextIO

from shiftlpips_jax._src import images as images_lib
from shiftlpips_jax._src import outputs
from shiftlpips_jax._src.errors import InputError, PathNotFoundError
from shiftlpips_jax.data import _folder
from shiftlpips_jax.evaluation import _distances, _runner

__all__ = ["run_eval", "add_parser", "per_sample_csv"]

_KNOWN = {"2afc": _folder.BAPPS_2AFC_SETS, "jnd": _folder.BAPPS_JND_SETS}


def _default_datasets(root: str, mode: str) -> list[str]:
    present = [d for d in _KNOWN[mode] if d.startswith("val/") and
               os.path.isdir(os.path.join(root, d))]
    if not present:
        raise PathNotFoundError(
            f"no BAPPS {mode} val sets under {root} (expected e.g. {root}/val/traditional); "
            f"ROOT must be the folder holding train/ and val/ (BAPPS dataset/{mode}), or pass "
            "--datasets")
    return present


def per_sample_csv(result) -> str:
    """Upstream-style per-sample rows: set, p0 path, distances, 2AFC score and judge."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if isinstance(result, _runner.TwoAFCResult):
        ns = (0,) + result.shifts if result.shifts else ()
        w.writerow(["set", "p0_path", "d0", "d1", "score", "judge"]
                   + [f"{k}_crop{n}" for n in ns for k in ("d0", "d1")])
        from shiftlpips_jax.evaluation._scores import twoafc_per_sample
        for s in result.sets:
            sc = twoafc_per_sample(s.d0, s.d1, s.judge)
            for i, path in enumerate(s.paths):
                extra = [f"{v:.9g}" for n in ns for v in (s.d0_shift[n][i], s.d1_shift[n][i])]
                w.writerow([s.name, path, f"{s.d0[i]:.9g}", f"{s.d1[i]:.9g}", f"{sc[i]:.6g}",
                            f"{s.judge[i]:.6g}"] + extra)
    else:
        w.writerow(["set", "p0_path", "d", "same"])
        for s in result.sets:
            for i, path in enumerate(s.paths):
                w.writerow([s.name, path, f"{s.d[i]:.9g}", f"{s.same[i]:.6g}"])
    return buf.getvalue()


def _check_args(*, mode, net, variant, checkpoint, colorspace, load_size, shifts, batch_size,
                limit, num_threads, workers, precision) -> None:
    """The command's own argument checks, before anything is read or loaded."""
    if mode not in _KNOWN:
        raise InputError(f"--mode must be 2afc or jnd; got {mode!r}")
    if checkpoint is None and net.lower() not in ("l2", "ssim", "dssim"):
        from shiftlpips_jax._src.compare_cli import check_model_args
        check_model_args(net, variant)
    if colorspace.lower() not in [c.lower() for c in _distances.COLORSPACES]:
        raise InputError(f"unknown colorspace {colorspace!r}; expected one of "
                         f"{_distances.COLORSPACES}")
    for name, value, low in (("--load-size", load_size, 1), ("--batch-size", batch_size, 1),
                             ("--limit", limit, 1), ("--threads", num_threads, 1),
                             ("--workers", workers, 0)):
        if value is not None and value < low:
            raise InputError(f"{name} must be >= {low}; got {value}")
    for n in shifts:
        if not 1 <= n <= _runner.SHIFT_OFFSET:
            raise InputError(f"--shifts must be in 1..{_runner.SHIFT_OFFSET} (the crop "
                             f"offset); got {n}")
    if precision not in _runner.PRECISIONS:
        raise InputError(f"--precision must be one of {_runner.PRECISIONS}; got {precision!r}")


def _check_image_sizes(source, dist, shifts) -> None:
    need = dist.min_size + (_runner.SHIFT_OFFSET if shifts else 0)
    for span in source.sets:
        h, w = source.image_shape(span.name)
        if min(h, w) < need:
            raise InputError(f"{span.name}: images are {h}x{w} after resizing; {dist.name} "
                             f"needs at least {need} pixels" + (" (crop-shifts remove "
                             f"{_runner.SHIFT_OFFSET} columns)" if shifts else "")
                             + "; raise --load-size")


def run_eval(root: str, *, mode: str = "2afc", datasets: Sequence[str] | None = None,
             net: str = "alex", variant: str = "shift_tolerant", checkpoint: str | None = None,
             colorspace: str = "Lab", load_size: int = 64, shifts: Sequence[int] = (1, 2, 3),
             batch_size: int = 50, limit: int | None = None, num_threads: int | None = None,
             workers: int | None = None, precision: str = "highest",
             json_path: str | None = None, csv_path: str | None = None, progress: bool = True,
             out: TextIO | None = None, skip_errors: bool = False,
             max_pixels: int = images_lib.DEFAULT_MAX_PIXELS, alpha: str = "warn"):
    """The ``eval`` job: reads ROOT, scores the distance, prints the table, writes JSON/CSV.

    Args: as the command's options (see ``shiftlpips eval --help``); ``skip_errors``,
      ``max_pixels`` and ``alpha`` are passed to :func:`shiftlpips_jax.data.read_2afc`.

    Returns:
      The :class:`TwoAFCResult` or :class:`JNDResult` (whose ``to_json()`` is the JSON, which
      also lists ``skipped`` records when there are any).

    Raises:
      InputError (and its PathNotFoundError) or DataError naming the problem, before any output
      is written; outputs that are dataset files, equal, or unwritable are refused up front.
    """
    out = out or sys.stdout
    _check_args(mode=mode, net=net, variant=variant, checkpoint=checkpoint,
                colorspace=colorspace, load_size=load_size, shifts=shifts,
                batch_size=batch_size, limit=limit, num_threads=num_threads, workers=workers,
                precision=precision)
    wanted = [("--json", json_path), ("--per-sample", csv_path)]
    outputs.check_outputs(wanted)  # writable and distinct, before the (long) read
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise PathNotFoundError(f"BAPPS {mode} folder not found: {root}")
    datasets = list(datasets) if datasets else _default_datasets(root, mode)
    read = _folder.read_2afc if mode == "2afc" else _folder.read_jnd
    source = read(root, datasets, load_size, skip_errors=skip_errors, max_pixels=max_pixels,
                  alpha=alpha)
    outputs.check_outputs(wanted, [p for v in source.paths.values() for p in v]
                          + list(source.label_paths))
    for path, reason in source.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if source.skipped:
        print(f"skipped {len(source.skipped)} {'triplets' if mode == '2afc' else 'pairs'} "
              f"(--skip-errors); {len(source)} remain", file=sys.stderr)
    dist = _distances.get_distance(net, variant, colorspace=colorspace, checkpoint=checkpoint)
    _check_image_sizes(source, dist, shifts if mode == "2afc" else ())
    if mode == "2afc":
        result = _runner.evaluate_2afc(source, dist, shifts=shifts, batch_size=batch_size,
                                       limit=limit, num_threads=num_threads, workers=workers,
                                       precision=precision, progress=progress)
        count, unit = result.triplets, "triplets"
    else:
        result = _runner.evaluate_jnd(source, dist, batch_size=batch_size, limit=limit,
                                      num_threads=num_threads, workers=workers,
                                      precision=precision, progress=progress)
        count, unit = result.pairs, "pairs"
    print(result.table(), file=out)
    rate = count / result.seconds if result.seconds > 0 else float("nan")
    wait = 100.0 * result.data_wait_seconds / result.seconds if result.seconds > 0 else 0.0
    print(f"{count} {unit} in {result.seconds:.1f} s: {rate:.1f} {unit}/s "
          f"(waiting on image decoding {wait:.0f}% of the time; compile {result.compile_seconds:.1f} s; "
          f"{jax_device()})", file=out)
    files = []
    if json_path:
        payload = result.to_json()
        if source.skipped:
            payload["skipped"] = [{"path": os.path.relpath(p, root), "reason": r}
                                  for p, r in source.skipped]
        files.append((json_path, (json.dumps(payload, indent=2) + "\n").encode()))
    if csv_path:
        files.append((csv_path, per_sample_csv(result).encode()))
    outputs.atomic_write_many(files)
    for path, _ in files:
        print(f"wrote {path}", file=out)
    return result


def jax_device() -> str:
    import jax
    d = jax.devices()[0]
    return f"{d.platform} x{jax.device_count()}"


def _cmd_eval(args) -> int:
    images_lib.allow_large_images(args.max_pixels)
    run_eval(args.root, mode=args.mode, datasets=args.datasets, net=args.net,
             variant=args.variant, checkpoint=args.checkpoint, colorspace=args.colorspace,
             load_size=args.load_size, shifts=args.shifts if args.mode == "2afc" else (),
             batch_size=args.batch_size, limit=args.limit, num_threads=args.threads,
             workers=args.workers, precision=args.precision, json_path=args.json,
             csv_path=args.per_sample, progress=not args.no_progress,
             skip_errors=args.skip_errors, max_pixels=args.max_pixels, alpha=args.alpha)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="BAPPS 2AFC / JND scores and shift rank flips of a metric",
                       description=__doc__.split("Example::")[0],
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("root", help="BAPPS mode folder holding train/ and val/ (dataset/2afc or "
                                "dataset/jnd)")
    p.add_argument("--mode", choices=("2afc", "jnd"), default="2afc")
    p.add_argument("--datasets", nargs="+", default=None, metavar="SET",
                   help="sets such as val/traditional val/cnn (default: every val set present)")
    p.add_argument("--net", default="alex",
                   help="alex (default) or vgg; l2 or ssim for the baselines")
    p.add_argument("--variant", default="shift_tolerant",
                   help="shift_tolerant (ST-LPIPS, default) or lpips (LPIPS v0.1)")
    p.add_argument("--checkpoint", default=None, help="a metric directory instead of --net")
    p.add_argument("--colorspace", default="Lab", choices=_distances.COLORSPACES,
                   help="colour space of the l2 / ssim baselines (default Lab, as upstream)")
    p.add_argument("--load-size", type=int, default=64,
                   help="shorter image side after resizing (default 64)")
    p.add_argument("--shifts", type=int, nargs="*", default=[1, 2, 3], metavar="N",
                   help="crop-shifts in pixels for r_rf (default 1 2 3; none: 2AFC only)")
    p.add_argument("--json", default=None, metavar="OUT.json", help="write the scores as JSON")
    p.add_argument("--per-sample", default=None, metavar="OUT.csv",
                   help="write per-sample distances and scores as CSV")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N triplets / pairs of each set (a quick look)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--threads", type=int, default=None,
                   help="image-decoding threads (default: 2 x CPUs, at most 16)")
    p.add_argument("--workers", type=int, default=None,
                   help="image-decoding processes (default: CPUs - 1 for runs of 4000+ "
                        "triplets, else threads; 0 = threads only)")
    p.add_argument("--precision", choices=_runner.PRECISIONS, default="highest",
                   help="float32 matmul/conv precision: highest (default) or default (TF32 "
                        "on recent GPUs: faster, distances move by ~0.1%%)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    images_lib.add_reading_args(p)
    p.set_defaults(func=_cmd_eval)
