"""The CPU convolution kernels alone against XLA's convolution, per layer shape.

For each shape: ``lax.conv_general_dilated`` against ``cpu_kernels.conv_small_map`` (maps of at
most ``SMALL_MAP`` pixels a side), ``cpu_kernels.conv_winograd`` (3x3, float32) or
``cpu_kernels.conv_winograd_rows`` (5x5, float32; rows ``winograd_rows/M`` run it with tile
``WINOGRAD_ROWS_TILE = M``), each jitted alone, forward only; alternating rounds in one process, median wall time; the ratio is XLA's
time / the kernel's (> 1: the kernel is faster) and the error max |diff| / max |XLA|. These are
the numbers behind the kernels' thresholds (``SMALL_MAP``, ``WINOGRAD_MIN_CIN``,
``WINOGRAD_ROWS_TILE``). ``bf16_rows`` rows time ``cpu_kernels.conv_bf16_rows`` in bfloat16
against XLA's bfloat16 convolution and also print XLA's float32 time (``f32``): the bf16
trunk's speed-up over float32 is what that kernel is for.

    .venv/bin/python benchmarks/cpu_conv_kernels.py                 # every shape below
    .venv/bin/python benchmarks/cpu_conv_kernels.py --only winograd --rounds 21
    .venv/bin/python benchmarks/cpu_conv_kernels.py --only winograd_rows --rounds 41
    .venv/bin/python benchmarks/cpu_conv_kernels.py --only bf16_rows --rounds 21
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from shiftlpips_jax._src import cpu_kernels

NHWC = ("NHWC", "HWIO", "NHWC")

# (kernel, label, (N, H, W, Cin, Cout, k)); padding k // 2, stride 1.
SHAPES = [
    ("small_map", "LPIPS alex conv3 at 64 (3x3 map)", (100, 3, 3, 192, 384, 3)),
    ("small_map", "LPIPS alex conv4 at 64", (100, 3, 3, 384, 256, 3)),
    ("small_map", "VGG block 5 at 64 (4x4 map)", (100, 4, 4, 512, 512, 3)),
    ("small_map", "5x5 map", (100, 5, 5, 256, 256, 3)),
    ("small_map", "8x8 map (beyond SMALL_MAP)", (100, 8, 8, 256, 256, 3)),
    ("winograd", "LPIPS alex conv3 at 256 (15x15)", (8, 15, 15, 192, 384, 3)),
    ("winograd", "LPIPS alex conv4 at 256", (8, 15, 15, 384, 256, 3)),
    ("winograd", "LPIPS alex conv5 at 256", (8, 15, 15, 256, 256, 3)),
    ("winograd", "LPIPS alex conv3 at 256, one CPU chunk", (2, 15, 15, 192, 384, 3)),
    ("winograd", "LPIPS alex conv4 at 256, one CPU chunk", (2, 15, 15, 384, 256, 3)),
    ("winograd", "LPIPS alex conv5 at 256, one CPU chunk", (2, 15, 15, 256, 256, 3)),
    ("winograd", "VGG block 4 at 64 (8x8)", (100, 8, 8, 512, 512, 3)),
    ("winograd", "VGG block 3 at 64 (16x16)", (100, 16, 16, 256, 256, 3)),
    ("winograd", "VGG block 5 at 256 (16x16)", (8, 16, 16, 512, 512, 3)),
    ("winograd", "VGG block 4 at 256 (32x32)", (8, 32, 32, 512, 512, 3)),
    ("winograd", "VGG block 3 at 256 (64x64)", (8, 64, 64, 256, 256, 3)),
    ("winograd", "VGG block 2 at 256, Cin 128 (below WINOGRAD_MIN_CIN)", (8, 128, 128, 128, 128, 3)),
    ("winograd", "VGG block 2 at 64, Cin 128 (below WINOGRAD_MIN_CIN)", (100, 32, 32, 128, 128, 3)),
    ("winograd_rows/2", "LPIPS alex conv2 at 256, one CPU chunk (31x31)", (2, 31, 31, 64, 192, 5)),
    ("winograd_rows/3", "LPIPS alex conv2 at 256, one CPU chunk", (2, 31, 31, 64, 192, 5)),
    ("winograd_rows/4", "LPIPS alex conv2 at 256, one CPU chunk", (2, 31, 31, 64, 192, 5)),
    ("winograd_rows/4", "LPIPS alex conv2 at 256, batch 8", (8, 31, 31, 64, 192, 5)),
    ("winograd_rows/4", "LPIPS alex conv2 at 64 (7x7)", (100, 7, 7, 64, 192, 5)),
    ("winograd_rows/4", "ST alex conv2 at 64 (15x15)", (20, 15, 15, 64, 192, 5)),
    ("winograd_rows/4", "ST alex conv2 at 256 (63x63)", (2, 63, 63, 64, 192, 5)),
    # One CPU chunk of ST alex at 64x64 (10 images) and at 256x256 (1 image); conv1 as the
    # metric runs it in bf16: after space-to-depth, a VALID 7x7 convolution over 12 channels.
    ("bf16_rows", "ST alex conv1 at 64 after space-to-depth", (10, 34, 34, 12, 64, 7, 0)),
    ("bf16_rows", "ST alex conv2 at 64 (15x15)", (10, 15, 15, 64, 192, 5)),
    ("bf16_rows", "ST alex conv3 at 64 (8x8)", (10, 8, 8, 192, 384, 3)),
    ("bf16_rows", "ST alex conv4 at 64", (10, 8, 8, 384, 256, 3)),
    ("bf16_rows", "ST alex conv5 at 64", (10, 8, 8, 256, 256, 3)),
    ("bf16_rows", "ST alex conv1 at 256 after space-to-depth", (1, 131, 131, 12, 64, 7, 0)),
    ("bf16_rows", "ST alex conv2 at 256 (63x63)", (1, 63, 63, 64, 192, 5)),
    ("bf16_rows", "VGG block 1 at 64 (64x64, 64 channels)", (4, 64, 64, 64, 64, 3)),
    ("bf16_rows", "VGG block 3 at 64 (16x16)", (10, 16, 16, 256, 256, 3)),
]


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("small_map", "winograd", "winograd_rows", "bf16_rows"))
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs, float32 (bf16_rows: bfloat16), median "
          f"of {args.rounds} alternating rounds")
    for kernel, label, (n, h, w, cin, cout, k, *pad) in SHAPES:
        kernel, _, tile = kernel.partition("/")
        if args.only and kernel != args.only:
            continue
        p = pad[0] if pad else k // 2
        pads = ((p, p),) * 2
        x = jnp.asarray(np.maximum(rng.standard_normal((n, h, w, cin), np.float32), 0))
        kern = jnp.asarray(rng.standard_normal((k, k, cin, cout), np.float32) / np.sqrt(k * k * cin))
        xla = jax.jit(lambda a, b: lax.conv_general_dilated(a, b, (1, 1), pads,
                                                            dimension_numbers=NHWC))
        extra = ""
        if kernel == "bf16_rows":
            xla(x, kern)
            t_f32 = statistics.median([_timed(xla, x, kern) for _ in range(args.rounds)])
            extra = f"  (f32 {t_f32 * 1e3:.2f} ms: f32/ours {{:.2f}})"
            x, kern = x.astype(jnp.bfloat16), kern.astype(jnp.bfloat16)
        if tile:
            ours = jax.jit(lambda a, b, m=int(tile): cpu_kernels._winograd_rows_conv(
                a, b, pads, None, m))
        else:
            fast = getattr(cpu_kernels, f"conv_{kernel}")
            ours = jax.jit(lambda a, b: fast(a, b, pads, None))
        want, got = xla(x, kern), ours(x, kern)
        err = float(jnp.max(jnp.abs(got.astype(jnp.float32) - want.astype(jnp.float32)))
                    / jnp.max(jnp.abs(want.astype(jnp.float32))))
        times = {"xla": [], "ours": []}
        for _ in range(args.rounds):
            times["xla"].append(_timed(xla, x, kern))
            times["ours"].append(_timed(ours, x, kern))
        t_xla, t_ours = (statistics.median(times[key]) for key in ("xla", "ours"))
        ratio = statistics.median(a / b for a, b in zip(times["xla"], times["ours"]))
        gflop = 2 * n * h * w * cin * cout * k * k / 1e9
        name = f"{kernel}/{tile}" if tile else kernel
        print(f"{name:15s} {label:52s} N={n:<3d} xla {t_xla * 1e3:8.2f} ms "
              f"({gflop / t_xla:4.0f} GFLOP/s)  {name} {t_ours * 1e3:8.2f} ms  "
              f"xla/ours {ratio:.2f}  err {err:.1e}"
              + (extra.format(t_f32 / t_ours) if extra else ""), flush=True)
    print("load", os.getloadavg())


if __name__ == "__main__":
    main()
