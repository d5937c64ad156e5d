"""Evaluation and training throughput of two checkouts of this package, in alternating rounds.

The machine may be shared, so a single timing says little; this runs the same two jobs on a
checkout A and a checkout B alternately (each job in a fresh interpreter whose ``PYTHONPATH``
puts that checkout first) and prints per-round rates and the medians:

* eval: ``evaluation.evaluate_2afc`` (ST-LPIPS alex, 2AFC + crop-shift r_rf at 1, 2, 3 px,
  batch 50, compile excluded) on ``--triplets`` generated 64x64 triplets read from a BAPPS-shaped
  folder (tests/bapps_fixture.py) -- the same code path as ``shiftlpips eval``;
* train: ``training.train_and_evaluate`` with ``train/configs/tiny.py`` (alex vanilla from
  scratch, batch 8) on a generated folder of 64 training and 64 validation triplets, 16 steps
  with two validations: the median logged triplets/s (the loop's own rate, compile excluded)
  and the seconds of the whole run.

Usage::

    python benchmarks/pipeline_ab.py --a /path/to/old/checkout --b . --rounds 3
    python benchmarks/pipeline_ab.py --a OLD --b . --jobs eval --triplets 500 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

EVAL = r"""
import json, sys, time
from shiftlpips_jax import data, evaluation as ev
src = data.read_2afc(sys.argv[1], ["val/traditional"])
dist = ev.get_distance("alex")
res = ev.evaluate_2afc(src, dist, shifts=(1, 2, 3), batch_size=50, progress=False)
print(json.dumps({"eval_triplets_per_s": res.triplets_per_second}))
"""

TRAIN = r"""
import json, os, statistics, sys, time, contextlib, io
sys.path.insert(0, sys.argv[3])
from train.configs import tiny
from shiftlpips_jax import training
c = tiny.get_config()
c.data.synthetic = 0
c.data.root = sys.argv[1]
c.data.train_sets = ("train/traditional",)
c.data.val_sets = ("val/traditional",)
t = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    out = training.train_and_evaluate(c, sys.argv[2])
wall = time.perf_counter() - t
rates = [h["triplets_per_s"] for h in out["history"] if h.get("triplets_per_s")]
print(json.dumps({"train_triplets_per_s": statistics.median(rates), "train_run_s": wall}))
"""


def run(code: str, checkout: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         env=env, cwd=os.path.abspath(checkout))
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{checkout}: failed\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(lines[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, help="checkout A (e.g. the old layout)")
    p.add_argument("--b", required=True, help="checkout B")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--triplets", type=int, default=200)
    p.add_argument("--jobs", default="eval,train", help="comma list of jobs: eval, train")
    args = p.parse_args(argv)
    jobs = set(args.jobs.split(","))
    if not jobs or not jobs <= {"eval", "train"}:
        p.error(f"--jobs takes a comma list of eval, train; got {args.jobs!r}")
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    from bapps_fixture import make_2afc

    results = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        root_eval = os.path.join(tmp, "eval")
        make_2afc(root_eval, {"val/traditional": args.triplets}, size=64, seed=0)
        root_train = os.path.join(tmp, "train")
        make_2afc(root_train, {"train/traditional": 64, "val/traditional": 64}, size=64, seed=1)
        for r in range(args.rounds):
            for name, checkout in (("A", args.a), ("B", args.b)):
                row = run(EVAL, checkout, root_eval) if "eval" in jobs else {}
                if "train" in jobs:
                    work = tempfile.mkdtemp(dir=tmp)
                    row.update(run(TRAIN, checkout, root_train, work, os.path.abspath(checkout)))
                results[name].append(row)
                print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v:.2f}"
                                                           for k, v in row.items()), flush=True)
    print()
    for key in results["A"][0]:
        a = statistics.median(x[key] for x in results["A"])
        b = statistics.median(x[key] for x in results["B"])
        paired = statistics.median(y[key] / x[key] for x, y in zip(results["A"], results["B"]))
        print(f"median {key:<22} A {a:8.2f}   B {b:8.2f}   B/A {b / a:.3f}   "
              f"median of per-round B/A {paired:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
