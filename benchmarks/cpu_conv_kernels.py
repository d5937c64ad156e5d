"""The CPU convolution kernels alone against XLA's convolution, per layer shape.

For each shape: ``lax.conv_general_dilated`` against ``cpu_kernels.conv_small_map`` (maps of at
most ``SMALL_MAP`` pixels a side), ``cpu_kernels.conv_winograd`` (3x3, float32) or
``cpu_kernels.conv_winograd_rows`` (5x5, float32; rows ``winograd_rows/M`` run it with tile
``WINOGRAD_ROWS_TILE = M``), each jitted alone, forward only; alternating rounds in one process, median wall time; the ratio is XLA's
time / the kernel's (> 1: the kernel is faster) and the error max |diff| / max |XLA|. These are
the numbers behind the kernels' thresholds (``SMALL_MAP``, ``WINOGRAD_MIN_CIN``,
``WINOGRAD_ROWS_TILE``).

    .venv/bin/python benchmarks/cpu_conv_kernels.py                 # every shape below
    .venv/bin/python benchmarks/cpu_conv_kernels.py --only winograd --rounds 21
    .venv/bin/python benchmarks/cpu_conv_kernels.py --only winograd_rows --rounds 41
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
]


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("small_map", "winograd", "winograd_rows"))
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs, float32, median of {args.rounds} "
          "alternating rounds")
    for kernel, label, (n, h, w, cin, cout, k) in SHAPES:
        kernel, _, tile = kernel.partition("/")
        if args.only and kernel != args.only:
            continue
        pads = ((k // 2, k // 2),) * 2
        x = jnp.asarray(np.maximum(rng.standard_normal((n, h, w, cin), np.float32), 0))
        kern = jnp.asarray(rng.standard_normal((k, k, cin, cout), np.float32) / np.sqrt(k * k * cin))
        xla = jax.jit(lambda a, b: lax.conv_general_dilated(a, b, (1, 1), pads,
                                                            dimension_numbers=NHWC))
        if tile:
            ours = jax.jit(lambda a, b, m=int(tile): cpu_kernels._winograd_rows_conv(
                a, b, pads, None, m))
        else:
            fast = getattr(cpu_kernels, f"conv_{kernel}")
            ours = jax.jit(lambda a, b: fast(a, b, pads, None))
        want, got = xla(x, kern), ours(x, kern)
        err = float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))
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
              f"xla/ours {ratio:.2f}  err {err:.1e}", flush=True)
    print("load", os.getloadavg())


if __name__ == "__main__":
    main()
