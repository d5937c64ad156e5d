"""Peak RSS of one 1024x1024 pair: forward distance + input gradient, each model in a fresh process.

Each measurement runs in its own subprocess (so earlier allocations and compilations do not
count) that loads the metric, compiles ``jax.grad(lambda x: module.apply(params, x, y).sum())``
for one (1, 1024, 1024, 3) pair, runs it twice and reports ``ru_maxrss`` (the process's peak
resident set, which includes the Python runtime, JAX/XLA and the weights). Goal: <= 4 GB.

    python benchmarks/memory_1024.py                      # ST-LPIPS alex
    python benchmarks/memory_1024.py --models alex:shift_tolerant,vgg:shift_tolerant
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2   # KiB -> GiB
net, variant, size, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
import jax, jax.numpy as jnp
import shiftlpips_jax as sl
metric = sl.load(net, variant, dtype=jnp.bfloat16 if dtype == "bfloat16" else jnp.float32)
rng = np.random.default_rng(0)
x = jnp.asarray(rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32))
y = jnp.asarray(rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32))
loaded = peak()
def fwd_grad(x, y):
    with jax.default_matmul_precision(metric.precision):
        return jax.value_and_grad(lambda a: metric.module.apply(metric.params, a, y).sum())(x)
f = jax.jit(fwd_grad).lower(x, y).compile()
compiled = peak()
t0 = time.perf_counter()
d, g = jax.block_until_ready(f(x, y))
t1 = time.perf_counter()
d, g = jax.block_until_ready(f(x, y))
t2 = time.perf_counter()
mem = f.memory_analysis()
temp = getattr(mem, "temp_size_in_bytes", None)
print(json.dumps(dict(model=f"{net}/{variant}", dtype=dtype, size=size, d=float(d),
                      grad_finite=bool(jnp.isfinite(g).all()), peak_gib=peak(),
                      after_load_gib=loaded, after_compile_gib=compiled,
                      xla_temp_gib=None if temp is None else temp / 1024**3,
                      first_s=t1 - t0, second_s=t2 - t1)))
"""


def measure(net: str, variant: str, size: int = 1024, dtype: str = "float32") -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, net, variant, str(size), dtype],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{net}/{variant} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="alex:shift_tolerant")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--limit-gb", type=float, default=4.0)
    args = p.parse_args(argv)
    print(f"{'model':22s}{'dtype':10s}{'size':>6s}{'peak RSS':>11s}{'after load':>12s}"
          f"{'XLA temp':>10s}{'run s':>8s}  goal")
    worst = 0.0
    for spec in args.models.split(","):
        net, variant = spec.split(":")
        r = measure(net, variant, args.size, args.dtype)
        gb = r["peak_gib"] * 1.073741824   # GiB -> GB (the goal is in GB)
        worst = max(worst, gb)
        temp = "-" if r["xla_temp_gib"] is None else f"{r['xla_temp_gib']:.2f}Gi"
        ok = "ok" if gb <= args.limit_gb and r["grad_finite"] else "MISS"
        print(f"{r['model']:22s}{r['dtype']:10s}{r['size']:>6d}{r['peak_gib']:>9.2f}Gi"
              f"{r['after_load_gib']:>10.2f}Gi{temp:>10s}{r['second_s']:>8.2f}  {ok} "
              f"(d={r['d']:.4f}, {gb:.2f} GB)", flush=True)
    return 0 if worst <= args.limit_gb else 1


if __name__ == "__main__":
    sys.exit(main())
