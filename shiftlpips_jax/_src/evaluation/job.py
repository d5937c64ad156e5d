"""The ``shiftlpips eval`` job: BAPPS 2AFC / JND scores of a metric, as the paper reports them.

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

    result = run_eval("~/BAPPS/dataset/2afc", limit=200, json_path="scores.json")
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
from shiftlpips_jax._src.compare import check_model_args
from shiftlpips_jax._src.data import folder as _folder
from shiftlpips_jax._src.evaluation import runner as _runner
from shiftlpips_jax._src.evaluation.scores import twoafc_per_sample
from shiftlpips_jax._src.evaluation import distances as _distances

__all__ = ["run_eval", "per_sample_csv", "EVAL_DESCRIPTION"]

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
    """Upstream-style per-sample rows: set, p0 path, distances, 2AFC score and judge.

    Args:
      result: a :class:`TwoAFCResult` or :class:`JNDResult`.

    Returns:
      The CSV text (JND rows: set, p0 path, distance, same).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if isinstance(result, _runner.TwoAFCResult):
        ns = (0,) + result.shifts if result.shifts else ()
        w.writerow(["set", "p0_path", "d0", "d1", "score", "judge"]
                   + [f"{k}_crop{n}" for n in ns for k in ("d0", "d1")])
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
    images_lib.allow_large_images(max_pixels)
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
    _runner.check_image_sizes(source, dist, shifts=shifts if mode == "2afc" else ())
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
          f"{_device()})", file=out)
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


def _device() -> str:
    import jax
    d = jax.devices()[0]
    return f"{d.platform} x{jax.device_count()}"


# The command's --help text: this module's synopsis up to its example.
EVAL_DESCRIPTION = __doc__.split("Example::")[0].replace("The ``shiftlpips eval`` job: ", "", 1)
