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
throughput; ``--limit N`` scores only the first N of each set. JSON and CSV are written
atomically, and only after the whole run succeeded.

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
from shiftlpips_jax.data import _folder
from shiftlpips_jax.evaluation import _distances, _runner

__all__ = ["run_eval", "add_parser", "per_sample_csv"]

_KNOWN = {"2afc": _folder.BAPPS_2AFC_SETS, "jnd": _folder.BAPPS_JND_SETS}


def _default_datasets(root: str, mode: str) -> list[str]:
    present = [d for d in _KNOWN[mode] if d.startswith("val/") and
               os.path.isdir(os.path.join(root, d))]
    if not present:
        raise FileNotFoundError(
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


def run_eval(root: str, *, mode: str = "2afc", datasets: Sequence[str] | None = None,
             net: str = "alex", variant: str = "shift_tolerant", checkpoint: str | None = None,
             colorspace: str = "Lab", load_size: int = 64, shifts: Sequence[int] = (1, 2, 3),
             batch_size: int = 50, limit: int | None = None, num_threads: int | None = None,
             workers: int | None = None, precision: str = "highest",
             json_path: str | None = None, csv_path: str | None = None, progress: bool = True,
             out: TextIO | None = None):
    """The ``eval`` job: reads ROOT, scores the distance, prints the table, writes JSON/CSV.

    Returns the :class:`TwoAFCResult` or :class:`JNDResult` (whose ``to_json()`` is the JSON).
    """
    out = out or sys.stdout
    if mode not in _KNOWN:
        raise ValueError(f"--mode must be 2afc or jnd; got {mode!r}")
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"BAPPS {mode} folder not found: {root}")
    datasets = list(datasets) if datasets else _default_datasets(root, mode)
    dist = _distances.get_distance(net, variant, colorspace=colorspace, checkpoint=checkpoint)
    if mode == "2afc":
        source = _folder.read_2afc(root, datasets, load_size)
        result = _runner.evaluate_2afc(source, dist, shifts=shifts, batch_size=batch_size,
                                       limit=limit, num_threads=num_threads, workers=workers,
                                       precision=precision, progress=progress)
        count, unit = result.triplets, "triplets"
    else:
        source = _folder.read_jnd(root, datasets, load_size)
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
    if json_path:
        images_lib.write_text_atomic(json_path, json.dumps(result.to_json(), indent=2) + "\n")
        print(f"wrote {json_path}", file=out)
    if csv_path:
        images_lib.write_text_atomic(csv_path, per_sample_csv(result))
        print(f"wrote {csv_path}", file=out)
    return result


def jax_device() -> str:
    import jax
    d = jax.devices()[0]
    return f"{d.platform} x{jax.device_count()}"


def _cmd_eval(args) -> int:
    run_eval(args.root, mode=args.mode, datasets=args.datasets, net=args.net,
             variant=args.variant, checkpoint=args.checkpoint, colorspace=args.colorspace,
             load_size=args.load_size, shifts=args.shifts if args.mode == "2afc" else (),
             batch_size=args.batch_size, limit=args.limit, num_threads=args.threads,
             workers=args.workers, precision=args.precision, json_path=args.json, csv_path=args.per_sample, progress=not args.no_progress)
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
    p.set_defaults(func=_cmd_eval)
