"""BAPPS 2AFC evaluation loop: ours vs upstream's, on the same in-memory batches, alternating.

Upstream (``test_shiftedDataset_model.py`` / ``stlpips/trainer.py:score_2afc_dataset``) calls
``d0 = model(ref, p0)`` and ``d1 = model(ref, p1)`` per batch of 50 64x64 triplets (the reference
goes through the trunk twice, and autograd records the graph since the loop has no ``no_grad``),
and for the crop-shift test reruns the whole loop for each shift n. Ours is the project's
evaluation step (``shiftlpips_jax._src.evaluation.runner.make_2afc_step``): uint8 batches in, the
reference's features computed once (and once for its crop, shared by every shift), one jitted
program per batch. Data decoding is excluded on both sides (batches are prepared in memory; see
benchmarks/eval_throughput.py for decoding): this times the metric loop itself, including
host->device copies and fetching the distances to NumPy.

    python benchmarks/eval_2afc.py                  # alex, 10 batches
    python benchmarks/eval_2afc.py --shifts 1,2,3   # + crop-shift test
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def make_batches(n_batches: int, batch: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        ref = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        noise = lambda s: rng.normal(0, s, ref.shape)  # noqa: E731
        p0 = np.clip(ref + noise(20), 0, 255).astype(np.uint8)
        p1 = np.clip(ref + noise(40), 0, 255).astype(np.uint8)
        out.append((ref, p0, p1))
    return out


def ours(net: str, variant: str, batches, shifts: tuple[int, ...]):
    import jax
    from shiftlpips_jax import evaluation as ev
    from shiftlpips_jax._src.evaluation import runner as _runner

    dist = ev.get_distance(net, variant)
    step = _runner.make_2afc_step(dist, shifts=shifts)

    def run():
        d0s, d1s = [], []
        pending = None
        for ref, p0, p1 in batches:   # dispatch runs one batch ahead, as the runner does
            out = step(dist.params, ref, p0, p1)
            if pending is not None:
                d0s.append(np.asarray(pending["d0"]))
                d1s.append(np.asarray(pending["d1"]))
            pending = out
        d0s.append(np.asarray(pending["d0"]))
        d1s.append(np.asarray(pending["d1"]))
        jax.block_until_ready(pending)
        return np.concatenate(d0s), np.concatenate(d1s)

    return run


def upstream(net: str, variant: str, batches, shifts: tuple[int, ...], no_grad: bool):
    import contextlib

    import torch
    from stlpips_pytorch import stlpips

    model = stlpips.LPIPS(net=net, variant=variant, verbose=False)   # as upstream: eval mode,
    # parameters still requiring grad (the loop records autograd graphs unless no_grad)
    # What upstream's data loader hands the loop: contiguous NCHW float tensors in [-1, 1].
    tensors = [tuple((torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1).contiguous()
                     for a in b) for b in batches]
    ctx = torch.no_grad if no_grad else contextlib.nullcontext
    offset = 3

    def run():
        d0s, d1s = [], []
        with ctx():
            for ref, p0, p1 in tensors:      # score_2afc_dataset
                d0s += model.forward(ref, p0).data.cpu().numpy().flatten().tolist()
                d1s += model.forward(ref, p1).data.cpu().numpy().flatten().tolist()
            for n in (0,) + shifts if shifts else ():   # score_shifted_2afc_dataset, one loop per n
                for ref, p0, p1 in tensors:
                    w = ref.shape[-1]
                    r = ref[:, :, :, :w - offset]
                    model.forward(r, p0[:, :, :, n:w - offset + n]).data.cpu().numpy()
                    model.forward(r, p1[:, :, :, n:w - offset + n]).data.cpu().numpy()
        return np.array(d0s), np.array(d1s)

    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", default="alex")
    p.add_argument("--variant", default="shift_tolerant")
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--shifts", default="", help="crop shifts, e.g. 1,2,3 (default none)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--gap", type=float, default=0.05)
    args = p.parse_args(argv)
    shifts = tuple(int(s) for s in args.shifts.split(",") if s.strip())
    batches = make_batches(args.batches, args.batch_size, args.size)
    n = args.batches * args.batch_size
    runs = {"ours": ours(args.net, args.variant, batches, shifts),
            "upstream": upstream(args.net, args.variant, batches, shifts, no_grad=False),
            "upstream+no_grad": upstream(args.net, args.variant, batches, shifts, no_grad=True)}
    d_ours = runs["ours"]()
    d_up = runs["upstream"]()
    err = max(float(np.max(np.abs(a - b) / (1e-5 + 1e-4 * np.abs(b)))) for a, b in
              zip(d_ours, d_up))
    times = {k: [] for k in runs}
    for _ in range(args.repeats):
        for k, fn in runs.items():
            time.sleep(args.gap)
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"2AFC loop, {args.net}/{args.variant}, {n} triplets of {args.size}x{args.size} in "
          f"batches of {args.batch_size}, shifts {shifts or 'none'}; median of {args.repeats} "
          f"alternating runs")
    print(f"distances agree with upstream: max |delta| / (1e-5 + 1e-4|d|) = {err:.3f}")
    for k in runs:
        print(f"  {k:18s} {n / med[k]:8.1f} triplets/s  ({med[k]:.2f} s)")
    print(f"  ratio ours / upstream loop:          {med['upstream'] / med['ours']:.2f}x")
    print(f"  ratio ours / upstream under no_grad: {med['upstream+no_grad'] / med['ours']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
