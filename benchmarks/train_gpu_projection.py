"""Projected wall time of the full BAPPS training schedule on this machine's accelerator.

Measures the steady-state time of our real train step (``shiftlpips_jax.training.step``: the
same jitted shard_map step ``python -m train`` runs, with dropout, Adam, clamping and the NaN
guard) for alex shift_tolerant trained from scratch, global batch 50, 64x64 BAPPS-shaped
synthetic uint8 triplets (a fresh batch copied host->device every step, as in training), then
projects 10 epochs (5 + 5 decay) over 151,400 triplets (BAPPS 2AFC train: traditional + cnn +
mix). Goal: <= 30 minutes on one H200. Data decoding is not included (grain decodes 64x64 PNGs on
reader threads, overlapped with the device; see benchmarks/train_throughput.py for CPU figures).

    python benchmarks/train_gpu_projection.py                 # ~1-2 min including compiles
    python benchmarks/train_gpu_projection.py --steps 200 --nets alex:shift_tolerant,vgg:shift_tolerant
    python benchmarks/train_gpu_projection.py --dtype bfloat16

Needs only jax, flax, optax and numpy (the package is imported from this repository).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import shiftlpips_jax as sl  # noqa: E402
from shiftlpips_jax._src.training import init as init_lib  # noqa: E402
from shiftlpips_jax._src.training import objective, optim  # noqa: E402
from shiftlpips_jax._src.training import state as state_lib  # noqa: E402
from shiftlpips_jax.training import step as step_lib  # noqa: E402

BAPPS_TRAIN = 151_400
EPOCHS = 10
GOAL_MIN = 30.0


def measure(net: str, variant: str, *, batch: int, size: int, steps: int, warmup: int,
            dtype: str, seed: int = 0) -> dict:
    backbone = sl.make_backbone(net, variant, dtype=jnp.dtype(dtype))
    model = sl.LPIPS(net=backbone)
    rank = objective.RankNet()
    variables = init_lib.init_metric_variables(model, net, jax.random.key(seed), image_size=size)
    params = {"metric": variables["params"],
              "rank": rank.init(jax.random.key(1), jnp.ones(1), jnp.ones(1))["params"]}
    schedule = optim.make_schedule(base_lr=1e-4, global_batch=batch, num_train=BAPPS_TRAIN,
                                   nepoch=5, nepoch_decay=5)
    tx = optim.make_optimizer(params, train_trunk=True, schedule=schedule)
    mesh = step_lib.make_mesh()
    state = step_lib.replicate(mesh, state_lib.TrainState.create(
        params=params, batch_stats=variables.get("batch_stats", {}), tx=tx))
    train_step = step_lib.make_train_step(
        model, rank, tx, mesh, clamp=optim.clamp_mask(params, "upstream"),
        trainable=optim.trainable_labels(params, train_trunk=True), schedule=schedule)
    rng = np.random.default_rng(seed)
    pool = [{"ref": rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
             "p0": rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
             "p1": rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
             "judge": rng.random(batch).astype(np.float32)} for _ in range(4)]
    key = step_lib.replicate(mesh, jax.random.key(seed))

    t0 = time.perf_counter()
    state, metrics = train_step(state, step_lib.shard_batch(mesh, pool[0]), key)
    jax.block_until_ready(metrics["loss"])
    compile_s = time.perf_counter() - t0
    for i in range(warmup):
        state, metrics = train_step(state, step_lib.shard_batch(mesh, pool[i % 4]), key)
    jax.block_until_ready(metrics["loss"])

    # Steady state: dispatch runs ahead as in the training loop (metrics stay on device).
    t0 = time.perf_counter()
    for i in range(steps):
        state, metrics = train_step(state, step_lib.shard_batch(mesh, pool[i % 4]), key)
    jax.block_until_ready(state.params)
    total = time.perf_counter() - t0
    # Per-step latency with a sync every step (upper bound; no overlap).
    lat = []
    for i in range(min(steps, 20)):
        t1 = time.perf_counter()
        state, metrics = train_step(state, step_lib.shard_batch(mesh, pool[i % 4]), key)
        jax.block_until_ready(metrics["loss"])
        lat.append(time.perf_counter() - t1)
    loss = float(metrics["loss"])
    step_s = total / steps
    steps_full = EPOCHS * BAPPS_TRAIN // batch
    return {"model": f"{net}/{variant}", "dtype": dtype, "compile_s": compile_s,
            "step_ms": 1e3 * step_s, "sync_step_ms": 1e3 * float(np.median(lat)),
            "triplets_per_s": batch / step_s, "steps_full": steps_full,
            "projected_min": steps_full * step_s / 60.0, "loss": loss,
            "finite": bool(np.isfinite(loss))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--dtype", default="float32", help="trunk compute dtype (float32, bfloat16)")
    p.add_argument("--nets", default="alex:shift_tolerant",
                   help="comma-separated net:variant list")
    args = p.parse_args(argv)
    dev = jax.devices()
    print(f"jax {jax.__version__} | {len(dev)} x {dev[0].device_kind} ({dev[0].platform}) | "
          f"batch {args.batch} of {args.size}x{args.size} | {args.steps} timed steps | "
          f"schedule: {EPOCHS} epochs x {BAPPS_TRAIN:,} triplets = "
          f"{EPOCHS * BAPPS_TRAIN // args.batch:,} steps", flush=True)
    rows = []
    for spec in args.nets.split(","):
        net, variant = spec.split(":")
        rows.append(measure(net, variant, batch=args.batch, size=args.size, steps=args.steps,
                            warmup=args.warmup, dtype=args.dtype))
        r = rows[-1]
        print(f"  measured {r['model']}: compile {r['compile_s']:.1f}s, "
              f"{r['step_ms']:.2f} ms/step", flush=True)
    head = (f"{'model':<24}{'dtype':<10}{'compile s':>10}{'ms/step':>10}{'sync ms':>10}"
            f"{'triplets/s':>12}{'10 epochs':>12}{'goal':>8}")
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        ok = "ok" if r["projected_min"] <= GOAL_MIN and r["finite"] else "MISS"
        print(f"{r['model']:<24}{r['dtype']:<10}{r['compile_s']:>10.1f}{r['step_ms']:>10.2f}"
              f"{r['sync_step_ms']:>10.2f}{r['triplets_per_s']:>12.0f}"
              f"{r['projected_min']:>10.1f} m{ok:>8}")
    print(f"\n10 epochs = {rows[0]['steps_full']:,} steps; goal <= {GOAL_MIN:.0f} min "
          "(ms/step: steady state with async dispatch; sync ms: blocking every step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
