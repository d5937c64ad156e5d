"""First-call time of the README's training loss with the target closed over vs passed in.

An array a jitted function closes over is a constant of the compiled program, and XLA:CPU then
constant-folds the target's backbone at compile time. Each variant runs in a fresh process (so
nothing is cached), alternating, ``--rounds`` times; it prints the wall and CPU seconds of the
first call (trace, compile and run) of ``jax.jit(jax.value_and_grad(loss))`` on ST alex,
4 x 64 x 64 images. The machine may be shared: compare the variants within a round.

Example::

    python benchmarks/fold_target.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import jax, jax.numpy as jnp, numpy as np
import shiftlpips_jax as sl
mode = sys.argv[1]
metric = sl.load("alex")
rng = np.random.default_rng(0)
x = jnp.asarray(rng.uniform(-1, 1, (4, 64, 64, 3)).astype(np.float32))
target = jnp.asarray(rng.uniform(-1, 1, (4, 64, 64, 3)).astype(np.float32))
jax.block_until_ready((x, target))
wall, cpu = time.perf_counter(), time.process_time()
if mode == "closed":
    loss = lambda img: metric.module.apply(metric.variables, img, target).mean()
    out = jax.jit(jax.value_and_grad(loss))(x)
else:
    loss = lambda img, t: metric.module.apply(metric.variables, img, t).mean()
    out = jax.jit(jax.value_and_grad(loss))(x, target)
jax.block_until_ready(out)
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
"""


def first_call(mode: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode], check=True, text=True,
                          stdout=subprocess.PIPE, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    times = {"closed": [], "argument": []}
    for r in range(args.rounds):
        for mode in times:
            t = first_call(mode)
            times[mode].append(t)
            print(f"round {r}: target {mode:8s} first call {t['wall']:6.1f} s wall "
                  f"{t['cpu']:6.1f} s CPU", flush=True)
    for mode, ts in times.items():
        print(f"median target {mode:8s}: {statistics.median(t['wall'] for t in ts):.1f} s wall, "
              f"{statistics.median(t['cpu'] for t in ts):.1f} s CPU")


if __name__ == "__main__":
    main()
