"""GPU benchmark: the ``shiftlpips bench`` workloads on an accelerator, beside PyTorch, plus a
projection of the full BAPPS training time. Meant to finish in under 4 minutes on one GPU.

It needs only jax, flax, optax and numpy; the package is imported from this repository and the
models use random weights of the pretrained architectures (speed does not depend on the values;
no weight files or network). The PyTorch reference is optional: pass ``--stlpips-src DIR``, a
copy of the stlpips-pytorch 0.0.2 Python files (``DIR/stlpips_pytorch/...``; IPython and
torchsummary, which it imports but does not need, are stubbed when absent); without it, or
without a CUDA-enabled torch, the PyTorch columns are skipped.

For every model (ST-LPIPS alex/vgg, LPIPS alex/vgg) and workload (64x64 batch 50, 256x256 batch
4, plus larger GPU batches) it times the forward distance and the input gradient in float32
(``precision="highest"``: true float32, no TF32, on both sides) and the bfloat16 trunk (PyTorch:
bf16 autocast), each timed run being ``--inner`` back-to-back calls then one sync, median of
``--repeats`` alternating JAX/PyTorch runs. FLOPs/pair come from XLA's cost analysis; GFLOP/s are
compared with a float32 (highest) matmul timed in the same run. An ablation row times ST alex
with the reference layers (conv then depthwise-conv BlurPool, XLA max-pool and conv gradients)
instead of the rewrites. The projection runs our real train step
(benchmarks/train_gpu_projection.py) for alex shift_tolerant, batch 50 of 64x64 triplets, and
scales to 10 epochs of BAPPS 2AFC train (151,400 triplets).

    # once, where stlpips-pytorch is installed (copies ~130 kB of .py files, no weights):
    python benchmarks/gpu_bench.py --vendor-stlpips benchmarks/_stlpips_src
    # on the GPU host, from the repository root:
    python3 benchmarks/gpu_bench.py --stlpips-src benchmarks/_stlpips_src --json gpu_bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import statistics
import sys
import time
import traceback

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave room for PyTorch
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import harness as bench  # noqa: E402
from harness import load_reference, matmul_gflops, pick_inner, repeat_case  # noqa: E402

MODELS = (("alex", "shift_tolerant"), ("vgg", "shift_tolerant"), ("alex", "lpips"),
          ("vgg", "lpips"))
WORKLOADS = ((64, 50), (256, 4), (64, 512), (256, 64))


def vendor_stlpips(dest: str) -> None:
    """Copies the installed stlpips_pytorch's Python files (no weights) to DEST."""
    import importlib.util
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("stlpips_pytorch is not installed here (pip install "
                         "stlpips-pytorch==0.0.2 --no-deps)")
    src = list(spec.submodule_search_locations)[0]
    out = os.path.join(dest, "stlpips_pytorch")
    shutil.copytree(src, out, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("weights", "__pycache__", "*.pth"))
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    print(f"copied {src} -> {out} ({size / 1024:.0f} kB)")


def jax_case(module, variables, w: bench.Workload, precision: str) -> bench.Case:
    return bench.jax_case(module, variables, precision, w)


def torch_case(stlpips, device: str, w: bench.Workload) -> bench.Case:
    return bench.torch_case(w, device=device, pretrained=False, stlpips_module=stlpips,
                            sync=False)


@contextlib.contextmanager
def reference_layers():
    """Temporarily swaps in the plain formulations (depthwise conv, XLA's own gradients)."""
    from jax import lax

    from shiftlpips_jax._src import layers
    names = ("blur_pool", "max_pool", "conv_general_dilated", "conv_blur")
    saved = [getattr(layers, n) for n in names]
    for n, f in zip(names, (layers.blur_pool_reference, layers.max_pool_reference,
                            lax.conv_general_dilated, layers.conv_blur_reference)):
        setattr(layers, n, f)
    try:
        yield
    finally:
        for n, f in zip(names, saved):
            setattr(layers, n, f)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stlpips-src", default=None, help="folder holding stlpips_pytorch/")
    p.add_argument("--vendor-stlpips", default=None, metavar="DEST",
                   help="copy the installed stlpips_pytorch .py files to DEST and exit")
    p.add_argument("--models", default=",".join(f"{n}:{v}" for n, v in MODELS))
    p.add_argument("--workloads", default=",".join(f"{s}x{b}" for s, b in WORKLOADS))
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget-s", type=float, default=170.0,
                   help="start no new row after this many seconds (default 170; the run ends "
                        "within about a minute more)")
    p.add_argument("--projection-steps", type=int, default=40,
                   help="timed train steps for the BAPPS projection (0: skip)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.vendor_stlpips:
        vendor_stlpips(args.vendor_stlpips)
        return 0

    start = time.perf_counter()
    dev = jax.devices()[0]
    torch, stlpips, tdev = load_reference(args.stlpips_src)
    env = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               jax=jax.__version__, device=f"{dev.device_kind} ({dev.platform})",
               devices=len(jax.devices()))
    if torch is not None:
        env.update(torch=torch.__version__, torch_device=(
            torch.cuda.get_device_name(0) if tdev == "cuda" else "cpu"))
    else:
        env["torch"] = f"skipped: {tdev}"
    print(" | ".join(f"{k} {v}" for k, v in env.items()), flush=True)
    mm32 = matmul_gflops(4096 if dev.platform == "gpu" else 1024, "highest", jnp.float32)
    mm16 = matmul_gflops(4096 if dev.platform == "gpu" else 1024, "default", jnp.bfloat16)
    print(f"matmul: float32 (highest) {mm32:,.0f} GFLOP/s, bfloat16 {mm16:,.0f} GFLOP/s",
          flush=True)

    models = [tuple(s.split(":")) for s in args.models.split(",") if s]
    workloads = bench.parse_workloads(args.workloads)
    dtypes = [d for d in args.dtypes.split(",") if d]
    rows, skipped = [], []
    header = (f"{'model':20s}{'input':12s}{'mode':8s}{'dtype':9s}{'jax pairs/s':>13s}"
              f"{'torch pairs/s':>15s}{'ratio':>7s}{'GFLOP/pair':>11s}{'GFLOP/s':>10s}"
              f"{'of mm':>7s}")
    print(header, flush=True)

    def one(net, variant, dtype, size, batch, mode, layers="fast"):
        w = bench.Workload(net, variant, size, batch, mode, dtype)
        module, variables, _ = bench.load_model(net, variant, dtype, random_init=True)
        ctx = reference_layers() if layers == "reference" else contextlib.nullcontext()
        with ctx:
            jc = jax_case(module, variables, w, "highest")
        inner = pick_inner(jc)
        cases = {"jax": repeat_case(jc, inner, jax.block_until_ready)}
        if torch is not None and layers == "fast":
            tc = torch_case(stlpips, tdev, w)
            sync = (lambda _o: torch.cuda.synchronize()) if tdev == "cuda" else (lambda _o: None)
            cases["torch"] = repeat_case(tc, inner, sync)
        times = bench.time_interleaved(cases, repeats=args.repeats, warmup=1)
        jt = statistics.median(times["jax"]) / inner
        row = dict(model=f"{net}/{variant}", size=size, batch=batch, mode=mode, dtype=dtype,
                   layers=layers, inner=inner, jax_pairs_per_s=batch / jt,
                   gflop_per_pair=None if jc.flops is None else jc.flops / batch / 1e9)
        row["gflops"] = None if jc.flops is None else jc.flops / jt / 1e9
        ref = mm32 if dtype == "float32" else mm16
        row["fraction_of_matmul"] = None if row["gflops"] is None else row["gflops"] / ref
        row["torch_pairs_per_s"] = row["ratio"] = None
        if "torch" in times:
            tt = statistics.median(times["torch"]) / inner
            row.update(torch_pairs_per_s=batch / tt, ratio=tt / jt)
        rows.append(row)
        def fmt(v, spec, width):
            return ("-" if v is None else format(v, spec)).rjust(width)

        label = row["model"] + ("*" if layers == "reference" else "")
        print(f"{label:20s}{f'{size}x{size}x{batch}':12s}{mode:8s}{dtype:9s}"
              f"{fmt(row['jax_pairs_per_s'], ',.1f', 13)}"
              f"{fmt(row['torch_pairs_per_s'], ',.1f', 15)}{fmt(row['ratio'], '.2f', 7)}"
              f"{fmt(row['gflop_per_pair'], '.3f', 11)}{fmt(row['gflops'], ',.0f', 10)}"
              f"{fmt(row['fraction_of_matmul'], '.0%', 7)}", flush=True)

    def run_rows(items):
        for item in items:
            if time.perf_counter() - start > args.budget_s:
                skipped.append(item)
                continue
            try:
                one(*item)
            except Exception as err:  # noqa: BLE001 - one failing row must not lose the others
                print(f"  row {item} failed: {type(err).__name__}: {err}", flush=True)
                traceback.print_exc(limit=2)

    def rows_for(model_list, dtype):
        return [(n, v, dtype, s, b, m, "fast") for (n, v) in model_list for (s, b) in workloads
                for m in bench.MODES]

    st = [m for m in models if m[1] == "shift_tolerant"]
    other = [m for m in models if m[1] != "shift_tolerant"]
    first = rows_for(st[:1], "float32") if "float32" in dtypes else []
    if ("alex", "shift_tolerant") in st and "float32" in dtypes:
        first += [("alex", "shift_tolerant", "float32", 64, 50, m, "reference")
                  for m in bench.MODES]
    run_rows(first)

    projection = None
    if args.projection_steps > 0:
        try:
            import train_gpu_projection as tgp
            r = tgp.measure("alex", "shift_tolerant", batch=50, size=64,
                            steps=args.projection_steps, warmup=5, dtype="float32")
            projection = r
            print(f"BAPPS training projection (alex shift_tolerant, batch 50, 64x64, float32, "
                  f"real train step): {r['step_ms']:.2f} ms/step, {r['triplets_per_s']:,.0f} "
                  f"triplets/s -> 10 epochs x {tgp.BAPPS_TRAIN:,} triplets = "
                  f"{r['steps_full']:,} steps = {r['projected_min']:.1f} min "
                  f"(compile {r['compile_s']:.1f} s)", flush=True)
        except Exception as err:  # noqa: BLE001
            print(f"projection failed: {type(err).__name__}: {err}", flush=True)

    rest = rows_for(st[1:], "float32") if "float32" in dtypes else []
    for d in dtypes:
        if d != "float32":
            rest += rows_for(st, d)
    for d in dtypes:
        rest += rows_for(other, d)
    run_rows(rest)
    if skipped:
        print(f"skipped {len(skipped)} rows over the {args.budget_s:.0f} s budget: "
              + ", ".join(f"{n}/{v} {s}x{b} {m} {d}" for n, v, d, s, b, m, _ in skipped))
    print("* = reference layers (depthwise-conv BlurPool, XLA max-pool/conv gradients); "
          "ratio = PyTorch time / JAX time; of mm = GFLOP/s / matmul of the same dtype")
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(environment=env, matmul_gflops=dict(float32=mm32, bfloat16=mm16),
                           rows=rows, projection=projection,
                           skipped=[list(s) for s in skipped]), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
