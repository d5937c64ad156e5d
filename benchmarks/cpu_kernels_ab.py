"""What each CPU kernel buys: the metric with all of them against the metric without one.

For each workload it compiles the jitted forward distance and input gradient (random weights,
``precision="highest"``) once with every CPU kernel of ``shiftlpips_jax/_src/cpu_kernels.py``,
once without each kernel (that layer falls back to its plain formulation) and once with none
(the plain layers, as on other platforms), then times them in alternating rounds in one process
and prints median pairs/s and the ratio all / variant (> 1: the kernel is worth it).

Example::

    python benchmarks/cpu_kernels_ab.py --model alex/shift_tolerant --workloads 64x50,256x4
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import jax
import jax.numpy as jnp
from jax import lax

from shiftlpips_jax._src import bench, cpu_kernels, layers

NHWC = ("NHWC", "HWIO", "NHWC")

# Each variant replaces one kernel by the plain layer it stands in for.
WITHOUT = {
    "batch_chunks": lambda n, h, w: [(0, n)],
    "max_pool": lambda x, window, stride, pads: layers.reduce_window_max(x, window, stride, pads),
    "blur_pool": lambda x, taps, stride, pad: layers.separable_blur(x, taps, stride, pad),
    "conv_small_cin": lambda x, w, strides, padding, precision: lax.conv_general_dilated(
        x, w, strides, padding, dimension_numbers=NHWC, precision=precision),
    "conv_stride2_small_cin": lambda x, k, precision: lax.conv_general_dilated(
        x, k, (2, 2), ((0, 0), (0, 0)), dimension_numbers=NHWC, precision=precision),
    "conv_small_map": lambda x, w, padding, precision: lax.conv_general_dilated(
        x, w, (1, 1), padding, dimension_numbers=NHWC, precision=precision),
    "conv_winograd": lambda x, w, padding, precision: lax.conv_general_dilated(
        x, w, (1, 1), padding, dimension_numbers=NHWC, precision=precision),
}


@contextlib.contextmanager
def variant(name: str):
    """``all`` (every kernel), ``plain`` (none), or ``-KERNEL`` (all but that one)."""
    if name == "all":
        yield
    elif name == "plain":
        with layers.kernels_for("default"):
            yield
    else:
        kernel = name[1:]
        saved = getattr(cpu_kernels, kernel)
        setattr(cpu_kernels, kernel, WITHOUT[kernel])
        try:
            yield
        finally:
            setattr(cpu_kernels, kernel, saved)


def run(model: str, size: int, batch: int, rounds: int, variants: list[str]) -> None:
    net, var = model.split("/")
    module, variables, _ = bench.load_model(net, var, "float32", random_init=True)
    x, y = (jnp.asarray(a) for a in bench._inputs(size, batch))

    def dist(v, a, b):
        return module.apply(v, a, b)

    def grad(v, a, b):
        return jax.grad(lambda c: jnp.sum(module.apply(v, c, b)))(a)

    calls = {}
    for name in variants:
        with variant(name), jax.default_matmul_precision("highest"):
            for mode, fn in (("forward", dist), ("grad", grad)):
                compiled = jax.jit(fn).lower(variables, x, y).compile()
                calls[(name, mode)] = lambda c=compiled: jax.block_until_ready(c(variables, x, y))
    for call in calls.values():
        call()
    times = {k: [] for k in calls}
    for _ in range(rounds):
        for k, call in calls.items():
            t = time.perf_counter()
            call()
            times[k].append(time.perf_counter() - t)
    print(f"# {model} {size}x{size}x{batch}: median pairs/s of {rounds} alternating rounds")
    for mode in ("forward", "grad"):
        base = statistics.median(times[("all", mode)])
        for name in variants:
            med = statistics.median(times[(name, mode)])
            print(f"{mode:8s} {name:24s} {batch / med:9.2f} pairs/s   all/this {med / base:6.3f}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="alex/shift_tolerant")
    p.add_argument("--workloads", default="64x50,256x4")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--variants", default="all,plain," + ",".join("-" + k for k in WITHOUT))
    args = p.parse_args(argv)
    for size, batch in bench.parse_workloads(args.workloads):
        run(args.model, size, batch, args.rounds, args.variants.split(","))


if __name__ == "__main__":
    main()
