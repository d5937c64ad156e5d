"""Training throughput (triplets/s) on this CPU: our JAX train step beside upstream's PyTorch
``stlpips.Trainer.optimize_parameters`` on the same architecture, batch and input size.

Both train the whole network from scratch (upstream ``--from_scratch --train_trunk``) with head
dropout, Adam and clamping, on random 64x64 uint8 triplets. They run alternately, ``--rounds``
times, in one invocation (PyTorch in a subprocess of the reference interpreter, its own start-up
and first step excluded; JAX compiled once, compile excluded). The PyTorch side executes the real
``stlpips/trainer.py`` from upstream's git repository, as ``tests/goldens/train_make_goldens.py``.

    python benchmarks/train_throughput.py                        # alex shift_tolerant, batch 50
    python benchmarks/train_throughput.py --variant vanilla --steps 5 --rounds 3
    python benchmarks/train_throughput.py --torch-python /path/to/python --net vgg
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# An interpreter with torch + stlpips-pytorch, and upstream's git repository (for trainer.py).
TORCH_PYTHON = os.environ.get("TORCH_PYTHON", "python3")
UPSTREAM_REPO = os.environ.get("STLPIPS_REPO", "")


def torch_worker(args) -> None:
    """Runs in the PyTorch interpreter: prints one JSON line with the timing."""
    import numpy as np
    import torch

    sys.path.insert(0, os.path.join(REPO, "tests", "goldens"))
    import train_make_goldens as tg  # the shim that executes upstream's trainer.py

    torch.set_num_threads(os.cpu_count() or 1)
    trainer_cls = tg.load_trainer_class(args.upstream)
    tg.patch_upstream_squeezenet()
    trainer = trainer_cls()
    trainer.initialize(model="lpips", net=args.net, variant=args.variant_torch, pnet_rand=True,
                       pnet_tune=True, use_gpu=False, printNet=False, is_train=True)
    rng = np.random.default_rng(0)
    data = {k: tg.to_torch(rng.integers(0, 256, (args.batch, args.size, args.size, 3),
                                        dtype=np.uint8)) for k in ("ref", "p0", "p1")}
    data["judge"] = torch.from_numpy(rng.random(args.batch).astype(np.float32)).view(-1, 1, 1, 1)
    trainer.set_input(data)
    trainer.optimize_parameters()  # warm-up
    t0 = time.perf_counter()
    for _ in range(args.steps):
        trainer.set_input(data)
        trainer.optimize_parameters()
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "steps": args.steps,
                      "loss": float(trainer.loss_total.detach().mean())}), flush=True)


class JaxBench:
    def __init__(self, net, variant, batch, size):
        sys.path.insert(0, REPO)
        import jax
        import jax.numpy as jnp
        import numpy as np

        import shiftlpips_jax as sl
        from shiftlpips_jax._src.training import init as init_lib, objective, optim
        from shiftlpips_jax._src.training import state as state_lib
        from shiftlpips_jax.training import step as step_lib

        self.jax, self.step_lib = jax, step_lib
        model = sl.LPIPS(net=sl.make_backbone(net, variant))
        rank = objective.RankNet()
        v = init_lib.init_metric_variables(model, net, jax.random.key(0), image_size=size)
        params = {"metric": v["params"],
                  "rank": rank.init(jax.random.key(1), jnp.ones(1), jnp.ones(1))["params"]}
        sched = optim.make_schedule(base_lr=1e-4, global_batch=batch, num_train=151_400,
                                    nepoch=5, nepoch_decay=5)
        tx = optim.make_optimizer(params, train_trunk=True, schedule=sched)
        self.mesh = step_lib.make_mesh()
        self.state = step_lib.replicate(self.mesh, state_lib.TrainState.create(
            params=params, batch_stats=v.get("batch_stats", {}), tx=tx))
        self.train_step = step_lib.make_train_step(
            model, rank, tx, self.mesh, clamp=optim.clamp_mask(params),
            trainable=optim.trainable_labels(params, train_trunk=True), schedule=sched)
        rng = np.random.default_rng(0)
        self.batch = {k: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
                      for k in ("ref", "p0", "p1")}
        self.batch["judge"] = rng.random(batch).astype(np.float32)
        self.key = step_lib.replicate(self.mesh, jax.random.key(0))
        t0 = time.perf_counter()
        self.run(1)
        self.compile_s = time.perf_counter() - t0

    def run(self, steps) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.state, m = self.train_step(self.state, self.step_lib.shard_batch(
                self.mesh, self.batch), self.key)
        self.jax.block_until_ready(self.state.params)
        self.loss = float(m["loss"])
        return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", default="alex")
    p.add_argument("--variant", default="shift_tolerant")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=3, help="timed steps per round and framework")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--torch-python", default=TORCH_PYTHON)
    p.add_argument("--upstream", default=UPSTREAM_REPO, help="upstream git repository")
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant-torch", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    # Upstream names the plain torchvision-style trunks variant "" (or "vanilla" in inv_net).
    args.variant_torch = args.variant_torch or args.variant
    if args.torch_worker:
        torch_worker(args)
        return 0

    jb = JaxBench(args.net, args.variant, args.batch, args.size)
    import jax
    print(f"{args.net}/{args.variant}, batch {args.batch} x {args.size}x{args.size}, "
          f"{args.steps} steps x {args.rounds} rounds, {os.cpu_count()} CPU cores, "
          f"jax {jax.__version__} (compile {jb.compile_s:.1f}s)", flush=True)
    cmd = [args.torch_python, os.path.abspath(__file__), "--torch-worker", "--net", args.net,
           "--variant-torch", args.variant_torch, "--batch", str(args.batch), "--size",
           str(args.size), "--steps", str(args.steps), "--upstream", args.upstream]
    rows = []
    for r in range(args.rounds):
        t_jax = jb.run(args.steps)
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode != 0 or not lines:
            print(out.stdout[-2000:], out.stderr[-3000:], file=sys.stderr)
            return 1
        t_torch = json.loads(lines[-1])["seconds"]
        rows.append((args.batch * args.steps / t_jax, args.batch * args.steps / t_torch))
        print(f"  round {r + 1}: jax {rows[-1][0]:8.1f} triplets/s | "
              f"pytorch {rows[-1][1]:8.1f} triplets/s", flush=True)
    jax_tps = max(x for x, _ in rows)
    torch_tps = max(y for _, y in rows)
    print(f"\n{'framework':<12}{'triplets/s (best round)':>26}{'s/step':>10}")
    print(f"{'jax':<12}{jax_tps:>26.1f}{args.batch / jax_tps:>10.2f}")
    print(f"{'pytorch':<12}{torch_tps:>26.1f}{args.batch / torch_tps:>10.2f}")
    print(f"speed-up jax/pytorch: {jax_tps / torch_tps:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
