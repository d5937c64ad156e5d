"""Where the forward time goes: ST-LPIPS alex by stage, time and FLOP rate, on this machine.

Times jitted programs that stop after each tap of the trunk (XLA drops the later layers) on
both images of every pair (2 x batch images, in the metric's CPU batch chunks), then the whole
distance; the difference between
consecutive programs is that stage's share. FLOPs come from XLA's cost analysis of each program,
so each stage's GFLOP/s can be set against a float32 matmul timed in the same rounds. Random
weights of the pretrained architecture (speed does not depend on the values).

    python benchmarks/profile_stages.py                 # 64x64, batch 50
    python benchmarks/profile_stages.py --size 256 --batch 4
    python benchmarks/profile_stages.py --dtype bfloat16   # the bf16 trunk
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import harness as bench  # noqa: E402
from shiftlpips_jax._src import lpips  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", default="alex")
    p.add_argument("--variant", default="shift_tolerant")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                   help="backbone dtype (heads stay float32)")
    args = p.parse_args(argv)

    module, variables, _ = bench.load_model(args.net, args.variant, args.dtype, random_init=True)
    rng = np.random.default_rng(0)
    shape = (args.batch, args.size, args.size, 3)
    x = jnp.asarray(rng.uniform(-1, 1, shape).astype(np.float32))
    y = jnp.asarray(rng.uniform(-1, 1, shape).astype(np.float32))
    taps = list(jax.eval_shape(lambda a: module.apply(variables, a, method=lambda m, v: m.net(v)),
                               x[:1]))

    def trunk_until(k):
        # In the batch chunks the metric itself uses on this backend (lpips.batch_chunks).
        def fn(a, b):
            both, out = jnp.concatenate([a, b]), []
            for lo, hi in lpips.batch_chunks(*both.shape[:3]):
                with jax.default_matmul_precision("highest"):
                    feats = module.apply(variables, both[lo:hi], method=lambda m, v: m.net(v))
                out.append([feats[t] for t in taps[:k + 1]])
            return out
        return fn

    def full(a, b):
        with jax.default_matmul_precision("highest"):
            return module.apply(variables, a, b)

    programs = [(f"trunk to {t}", trunk_until(k)) for k, t in enumerate(taps)]
    programs.append(("whole distance", full))
    cases = {}
    for name, fn in programs:
        compiled = jax.jit(fn).lower(x, y).compile()
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        flops = float(cost.get("flops", 0.0)) if cost else 0.0
        cases[name] = bench.Case(lambda c=compiled: jax.block_until_ready(c(x, y)), flops)
    cases["matmul"] = bench.matmul_case(2048)
    times = bench.time_interleaved(cases, repeats=args.repeats, warmup=2, gap=0.02)
    med = {k: statistics.median(v) for k, v in times.items()}
    mm = cases["matmul"].flops / med["matmul"] / 1e9
    print(f"# {args.net}/{args.variant} {args.dtype} forward, {args.size}x{args.size} batch {args.batch} "
          f"({2 * args.batch} trunk images); float32 2048^2 matmul {mm:.1f} GFLOP/s; "
          f"median of {args.repeats} interleaved runs")
    print(f"{'stage':32s}{'ms':>9s}{'share':>8s}{'GFLOP':>9s}{'GFLOP/s':>9s}{'of mm':>7s}")
    prev_t, prev_f = 0.0, 0.0
    total = med["whole distance"]
    for name, _ in programs:
        t, f = med[name] - prev_t, cases[name].flops - prev_f
        rate = f / t / 1e9 if t > 0 else float("nan")
        label = name if name == "whole distance" else f"+ {name.split()[-1]}"
        if name == "whole distance":
            label = "+ heads (normalise, lin, mean)"
        print(f"{label:32s}{t * 1e3:9.1f}{t / total:8.0%}{f / 1e9:9.2f}{rate:9.1f}{rate / mm:7.0%}")
        prev_t, prev_f = med[name], cases[name].flops
    print(f"{'whole distance':32s}{total * 1e3:9.1f}{1:8.0%}{cases['whole distance'].flops / 1e9:9.2f}"
          f"{cases['whole distance'].flops / total / 1e9:9.1f}"
          f"{cases['whole distance'].flops / total / 1e9 / mm:7.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
