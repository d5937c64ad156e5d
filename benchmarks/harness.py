"""What the benchmark scripts share: the library's timing pieces plus accelerator helpers.

The scripts in ``benchmarks/`` import this module, never the package's private modules: it puts
the repository first on ``sys.path`` (so a checkout runs without installing), re-exports the
timing harness that ``shiftlpips bench`` itself uses (:mod:`shiftlpips_jax._src.bench`:
workloads, interleaved timing, the JAX and PyTorch cases, the matmul reference) and holds the
helpers only benchmark scripts need (back-to-back GPU calls with one sync, a vendored
stlpips-pytorch import, a matmul GFLOP/s probe).

Example::

    import harness
    case = harness.jax_case(module, variables, "highest", harness.Workload(...))
    times = harness.time_interleaved({"jax": case}, repeats=5)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from shiftlpips_jax._src.bench import (  # noqa: E402,F401 - re-exported for the scripts
    MODES, Case, Workload, flops_of, format_table, import_reference, jax_case, load_model,
    matmul_case, parse_workloads, time_interleaved, torch_case)
from shiftlpips_jax._src.pixels import to_unit_range  # noqa: E402,F401

__all__ = ["REPO", "MODES", "Case", "Workload", "flops_of", "format_table", "import_reference",
           "jax_case", "load_model", "matmul_case", "parse_workloads", "time_interleaved",
           "torch_case", "to_unit_range", "load_reference", "repeat_case", "matmul_gflops", "pick_inner"]


def load_reference(src: str | None):
    """(torch, stlpips module, device) or (None, None, reason)."""
    if not src:
        return None, None, "no --stlpips-src"
    try:
        import torch
    except ImportError as err:
        return None, None, f"torch not importable ({err})"
    for name, attr in (("IPython", "embed"), ("torchsummary", "summary")):
        try:
            __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            setattr(stub, attr, lambda *a, **k: None)
            sys.modules[name] = stub
    sys.path.insert(0, os.path.abspath(src))
    try:
        from stlpips_pytorch import stlpips
    except Exception as err:  # noqa: BLE001
        return None, None, f"stlpips import failed ({type(err).__name__}: {err})"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # True float32 convolutions and matmuls on the PyTorch side too (cuDNN defaults to TF32).
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch, stlpips, device


def repeat_case(case: Case, inner: int, sync) -> Case:
    """``inner`` back-to-back calls, one sync at the end (GPU calls are asynchronous)."""
    run = case.run

    def many():
        out = None
        for _ in range(inner):
            out = run(sync=False) if _accepts_sync(run) else run()
        sync(out)
        return out

    return Case(many, None if case.flops is None else case.flops * inner)


def _accepts_sync(fn) -> bool:
    return getattr(fn, "accepts_sync", False)


def matmul_gflops(n: int, precision: str, dtype, repeats: int = 10) -> float:
    a = jax.random.normal(jax.random.key(1), (n, n), dtype)
    b = jax.random.normal(jax.random.key(2), (n, n), dtype)
    with jax.default_matmul_precision(precision):
        f = jax.jit(jnp.matmul).lower(a, b).compile()
    jax.block_until_ready(f(a, b))
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = None
        for _ in range(10):
            out = f(a, b)
        jax.block_until_ready(out)
        ts.append((time.perf_counter() - t0) / 10)
    return 2 * n ** 3 / statistics.median(ts) / 1e9


def pick_inner(case: Case, target_s: float = 0.05, cap: int = 50) -> int:
    case.run()
    t0 = time.perf_counter()
    case.run()
    dt = max(time.perf_counter() - t0, 1e-6)
    return int(max(1, min(cap, round(target_s / dt))))
