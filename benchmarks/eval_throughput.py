"""Evaluation throughput: triplets/s of ``evaluate_2afc`` on a generated BAPPS-shaped folder.

Writes ``--triplets`` 64x64 triplets (real photos, real distortions; tests/bapps_fixture.py) to a
temporary folder, measures image decoding alone (the runner's loader: threads or processes), then the full
evaluation (2AFC + crop-shift rank flips at 1, 2, 3 px, compile excluded) for each ``--nets``
entry, and projects the time for the full BAPPS 2AFC val split (36,344 triplets).

Usage::

    python benchmarks/eval_throughput.py                       # ST-LPIPS alex, 200 triplets
    python benchmarks/eval_throughput.py --nets alex vgg l2 ssim --triplets 1000 --batch-size 100
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from bapps_fixture import make_2afc  # noqa: E402

from shiftlpips_jax import data  # noqa: E402
from shiftlpips_jax import evaluation as ev  # noqa: E402
from shiftlpips_jax._src.evaluation import runner  # noqa: E402

BAPPS_VAL_TRIPLETS = 36_344


def decode_rate(source, num_threads: int, workers: int, batch_size: int) -> float:
    """Triplets/s of decoding alone, through the runner's input path (``data.make_loader``:
    ordered, padded last batch, grain reader threads or worker processes).

    With processes the clock starts once ``workers`` batches are in, so that process start-up
    (importing JAX in each) is not counted; with threads it starts before the first batch.
    """
    start = time.perf_counter()
    it = data.make_loader(source, batch_size=batch_size, shuffle=False, pad_remainder=True,
                          shard_index=0, shard_count=1, worker_count=workers,
                          read_threads=num_threads)
    count = 0
    for k, batch in enumerate(it):
        if k + 1 == workers:
            start = time.perf_counter()
        elif k + 1 > workers:
            count += int(batch["mask"].sum())
    return count / (time.perf_counter() - start) if count else float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("Usage::")[0])
    p.add_argument("--triplets", type=int, default=200)
    p.add_argument("--nets", nargs="+", default=["alex"],
                   help="alex, vgg (ST-LPIPS), alex:lpips, vgg:lpips, l2, ssim")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--shifts", type=int, nargs="*", default=[1, 2, 3])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--workers", type=int, default=None,
                   help="decode processes (default: automatic; 0 = threads)")
    p.add_argument("--precision", default="highest", choices=("highest", "default"))
    p.add_argument("--root", default=None, help="use this BAPPS 2afc folder instead")
    args = p.parse_args(argv)

    import jax
    print(f"device: {jax.devices()[0].platform} ({jax.devices()[0].device_kind}), "
          f"CPUs: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            root = os.path.join(tmp, "2afc")
            t = time.perf_counter()
            make_2afc(root, {"val/traditional": args.triplets}, size=64, seed=0)
            print(f"generated {args.triplets} triplets in {time.perf_counter() - t:.1f} s")
        source = data.read_2afc(root, None if args.root else ["val/traditional"])
        threads = args.threads or runner.default_threads()
        workers = runner.auto_workers(args.workers, total=len(source))
        rate = decode_rate(source, threads, workers, args.batch_size)
        print("decode only (" + (f"{workers} processes" if workers else f"{threads} threads")
              + f"): {rate:.0f} triplets/s")
        for spec in args.nets:
            net, _, variant = spec.partition(":")
            dist = ev.get_distance(net, variant or "shift_tolerant")
            res = ev.evaluate_2afc(source, dist, shifts=args.shifts, batch_size=args.batch_size,
                                   num_threads=threads, workers=args.workers,
                                   precision=args.precision, progress=False)
            tps = res.triplets_per_second
            wait = 100.0 * res.data_wait_seconds / res.seconds
            print(f"{dist.name:<18} batch {args.batch_size}, {args.precision} precision, "
                  f"shifts {args.shifts}: {tps:8.1f} triplets/s "
                  f"(compile {res.compile_seconds:.1f} s, waiting on decode {wait:.0f}%); "
                  f"full BAPPS val ({BAPPS_VAL_TRIPLETS} triplets): "
                  f"{BAPPS_VAL_TRIPLETS / tps / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
