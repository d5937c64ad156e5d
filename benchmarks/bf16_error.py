"""Error of the bfloat16 backbone (``sl.load(..., dtype=jnp.bfloat16)``) against float32.

On the golden image pairs (tests/goldens/pretrained.npz: the example triplet and photo crops
with real distortions, 64x64 and 256x256, plus crop-shifted pairs), for every pretrained model:
max and median |d_bf16 - d_f32|, the relative error, how often the float32 bound of the parity
tests (1e-5 + 1e-4 |d|) still holds, and whether the 2AFC choice d(ref, p0) < d(ref, p1) flips
for triplets. Also the float32 distances against the PyTorch goldens, for scale. Heads and
normalisation stay float32; only the trunk runs in bf16.

    python benchmarks/bf16_error.py
"""

from __future__ import annotations

import argparse
import os
import sys

import jax.numpy as jnp
import numpy as np

import shiftlpips_jax as sl
from harness import to_unit_range

GOLDENS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "goldens",
                       "pretrained.npz")
KEYS = {("alex", "shift_tolerant"): "st_alex", ("vgg", "shift_tolerant"): "st_vgg",
        ("alex", "lpips"): "lpips_alex", ("vgg", "lpips"): "lpips_vgg"}


def unit(a):
    return to_unit_range(a)  # the package's uint8 -> [-1, 1] converter


def pair_sets(g):
    sets = {}
    for size in (64, 256):
        imgs, pairs = g[f"images{size}"], g[f"pairs{size}"]
        sets[f"pairs{size}"] = (unit(imgs[pairs[:, 0]]), unit(imgs[pairs[:, 1]]), f"d{size}")
        sets[f"shift{size}"] = (unit(g[f"shift{size}_a"]), unit(g[f"shift{size}_b"]),
                                f"dshift{size}")
    return sets


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--goldens", default=GOLDENS)
    args = p.parse_args(argv)
    g = np.load(args.goldens)
    sets = pair_sets(g)
    print(f"{'model':22s}{'set':10s}{'n':>4s}{'max|dd|':>10s}{'median|dd|':>12s}"
          f"{'max rel':>9s}{'in f32 bound':>14s}{'2AFC flips':>12s}{'f32 vs torch':>14s}")
    for (net, variant), key in KEYS.items():
        f32 = sl.load(net, variant)
        b16 = sl.load(net, variant, dtype=jnp.bfloat16)
        for name, (x, y, gkey) in sets.items():
            d32 = np.asarray(f32(x, y), np.float64)
            d16 = np.asarray(b16(x, y), np.float64)
            err = np.abs(d16 - d32)
            rel = err / np.maximum(np.abs(d32), 1e-12)
            inb = np.mean(err <= 1e-5 + 1e-4 * np.abs(d32))
            torch_err = np.max(np.abs(d32 - g[f"{key}/{gkey}"]))
            flips = "-"
            if name.startswith("pairs"):
                # Consecutive rows (2k, 2k+1) share the reference image: a 2AFC triplet.
                pairs = g[f"images{name[5:]}"], g[name]
                refs = pairs[1][:, 0]
                idx = [(i, i + 1) for i in range(0, len(refs) - 1, 2) if refs[i] == refs[i + 1]]
                if idx:
                    i0, i1 = np.array(idx).T
                    flips = f"{int(np.sum((d32[i0] < d32[i1]) != (d16[i0] < d16[i1])))}/{len(idx)}"
            print(f"{net + '/' + variant:22s}{name:10s}{len(d32):>4d}{err.max():>10.2e}"
                  f"{np.median(err):>12.2e}{rel.max():>9.2%}{inb:>14.0%}{flips:>12s}"
                  f"{torch_err:>14.1e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
