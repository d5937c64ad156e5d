"""Error of the evaluation-only CPU kernels in the distance: the jitted forward (which may take
``cpu_kernels.conv_winograd_rows``) against the primal of a ``jax.jvp`` of the same distance
(which never does), for the pretrained LPIPS and ST alex models, on three scikit-image photos
with noisy, shifted and blurred copies, for Winograd tiles F(2, 5), F(3, 5), F(4, 5).

    .venv/bin/python benchmarks/forward_only_error.py [--sizes 64,256] [--min-map 24]

``--min-map 1`` puts every conv2 map on the kernel (as at 64x64 it is not by default). Prints
one row per model, size, tile and pair kind: the mean distance and the largest relative error.
"""
import argparse

import jax
import numpy as np
import skimage.data
from PIL import Image

import shiftlpips_jax as sl
from shiftlpips_jax._src import cpu_kernels


def photos(side: int) -> np.ndarray:
    ims = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    return np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.BICUBIC),
                                np.float32) / 127.5 - 1 for im in ims])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,256")
    ap.add_argument("--tiles", default="2,3,4")
    ap.add_argument("--min-map", type=int, default=None)
    args = ap.parse_args()
    if args.min_map is not None:
        cpu_kernels.WINOGRAD_ROWS_MIN_MAP = args.min_map
    print(f"# WINOGRAD_ROWS_MIN_MAP = {cpu_kernels.WINOGRAD_ROWS_MIN_MAP}; rel = max |d_fwd - d_jvp| / d_jvp")
    for variant in ("lpips", "shift_tolerant"):
        m = sl.load("alex", variant=variant)
        for side in (int(s) for s in args.sizes.split(",")):
            x = photos(side)
            rng = np.random.default_rng(0)
            pairs = {"noise0.05": x + 0.05 * rng.standard_normal(x.shape),
                     "noise0.01": x + 0.01 * rng.standard_normal(x.shape),
                     "shift1": np.roll(x, 1, axis=2),
                     "blur": (x + np.roll(x, 1, 1) + np.roll(x, 1, 2)) / 3}
            for tile in (int(t) for t in args.tiles.split(",")):
                cpu_kernels.WINOGRAD_ROWS_TILE = tile
                for kind, y in pairs.items():
                    y = np.clip(y, -1, 1).astype(np.float32)
                    # Fresh functions each time: jit caches traces by function.
                    fwd = jax.jit(lambda p, a, b: m.module.apply(p, a, b))
                    prim = jax.jit(lambda p, a, b: jax.jvp(
                        lambda c: m.module.apply(p, c, b), (a,), (a,))[0])
                    d1 = np.asarray(fwd(m.variables, x, y))
                    d0 = np.asarray(prim(m.variables, x, y))
                    rel = float(np.max(np.abs(d1 - d0) / np.abs(d0)))
                    print(f"alex/{variant:14s} {side:4d}  F({tile}, 5)  {kind:9s}  "
                          f"d {d0.mean():.4f}  rel {rel:.2e}", flush=True)


if __name__ == "__main__":
    main()
