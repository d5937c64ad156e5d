"""A loss against fixed targets: cached target features vs recomputing them every step.

The training-loss use case (image optimisation, a generator trained toward fixed targets):
``loss(x) = mean_i d(x_i, t_i)`` with targets ``t`` that never change. Recomputing runs the
trunk on ``t`` at every step; the cache computes ``f_t = features(t)`` once and each step runs
the trunk (forward and backward) on ``x`` only::

    f_t = metric.module.apply(metric.params, t, method=sl.LPIPS.features)   # once
    def loss(x):
        f_x = metric.module.apply(metric.params, x, method=sl.LPIPS.features)
        return metric.module.apply(metric.params, f_x, f_t,
                                   method=sl.LPIPS.compare_features).mean()
    g = jax.jit(jax.grad(loss))(x)

(outside jit: ``metric.features(t)`` and ``metric.distance_from_features(fx, ft)``). Times the
gradient step and the loss value alone, cached vs recomputed, and the upstream PyTorch loss
(``model(x, t).mean().backward()``, which recomputes), in alternating runs.

    python benchmarks/loss_cache.py
    python benchmarks/loss_cache.py --workloads 256x4 --no-torch
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import shiftlpips_jax as sl
import harness as bench


def cases(metric, size: int, batch: int, with_torch: bool):
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    ts = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    x, t = jnp.asarray(xs), jnp.asarray(ts)
    module, params = metric.module, metric.params

    def feats(a):
        return module.apply(params, a, method=sl.LPIPS.features)

    def dist_cached(a, f_t):
        return module.apply(params, feats(a), f_t, method=sl.LPIPS.compare_features).mean()

    def dist_recompute(a, b):
        return module.apply(params, a, b).mean()

    with jax.default_matmul_precision(metric.precision):
        f_t = jax.jit(feats)(t)
        progs = {
            "grad cached": jax.jit(jax.grad(dist_cached)).lower(x, f_t).compile(),
            "grad recompute": jax.jit(jax.grad(dist_recompute)).lower(x, t).compile(),
            "loss cached": jax.jit(dist_cached).lower(x, f_t).compile(),
            "loss recompute": jax.jit(dist_recompute).lower(x, t).compile(),
        }
    g1, g2 = progs["grad cached"](x, f_t), progs["grad recompute"](x, t)
    rel = float(jnp.abs(g1 - g2).max() / jnp.abs(g2).max())
    out = {
        "grad cached": lambda: jax.block_until_ready(progs["grad cached"](x, f_t)),
        "grad recompute": lambda: jax.block_until_ready(progs["grad recompute"](x, t)),
        "loss cached": lambda: jax.block_until_ready(progs["loss cached"](x, f_t)),
        "loss recompute": lambda: jax.block_until_ready(progs["loss recompute"](x, t)),
    }
    if with_torch:
        import torch
        stlpips = bench.import_reference()
        model = stlpips.LPIPS(net=metric.net, variant=metric.variant, verbose=False).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        tx = torch.from_numpy(xs).permute(0, 3, 1, 2).contiguous()
        tt = torch.from_numpy(ts).permute(0, 3, 1, 2).contiguous()

        def torch_grad():
            a = tx.clone().requires_grad_(True)
            model(a, tt).mean().backward()
            return a.grad

        def torch_loss():
            with torch.no_grad():
                return model(tx, tt).mean()

        out["torch grad (recompute)"] = torch_grad
        out["torch loss (recompute)"] = torch_loss
    return out, rel


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", default="alex")
    p.add_argument("--variant", default="shift_tolerant")
    p.add_argument("--workloads", default="64x50,256x4")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args(argv)
    metric = sl.load(args.net, args.variant)
    with_torch = not args.no_torch and metric.variant == "shift_tolerant"
    for size, batch in bench.parse_workloads(args.workloads):
        runs, rel = cases(metric, size, batch, with_torch)
        times = bench.time_interleaved({k: bench.Case(v) for k, v in runs.items()},
                                       repeats=args.repeats, warmup=1, gap=0.05)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{metric.name} {size}x{size} batch {batch}: median of {args.repeats} alternating "
              f"runs (cached vs recomputed gradients: max rel diff {rel:.1e})")
        for k, v in med.items():
            print(f"  {k:24s} {batch / v:8.2f} images/s ({1e3 * v:.1f} ms)")
        print(f"  gradient step: cached / recompute = "
              f"{med['grad recompute'] / med['grad cached']:.2f}x", end="")
        if with_torch:
            print(f"; cached / upstream torch = "
                  f"{med['torch grad (recompute)'] / med['grad cached']:.2f}x", end="")
        print()
        print(f"  loss value:    cached / recompute = "
              f"{med['loss recompute'] / med['loss cached']:.2f}x", end="")
        if with_torch:
            print(f"; cached / upstream torch = "
                  f"{med['torch loss (recompute)'] / med['loss cached']:.2f}x", end="")
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
