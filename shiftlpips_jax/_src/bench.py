"""Throughput of the metric, side by side with the PyTorch reference (``shiftlpips bench``).

For each model and workload (image side x batch) it times the forward distance and the input
gradient ``d/dx sum(d(x, y))`` (the training-loss use), in pairs per second, as the median of
interleaved repetitions. With ``--against-pytorch`` the same workloads run on the reference
(``stlpips_pytorch``; ``lpips`` architecture for ``--variant lpips``) in alternating runs, so the
ratio is measured under the same machine load. ``dists`` (DISTS) runs against the official
``DISTS_pytorch`` code with the same weights (its trunk and alpha/beta read by this library's
torch-free readers, since that package would download the trunk); ``msssim`` times the MS-SSIM
module (no PyTorch side). Every row also reports the FLOPs per pair from
XLA's cost analysis of the compiled program and the achieved GFLOP/s as a fraction of a float32
matmul timed in the same rounds (the machine's practical peak). Timings use the pure
``metric.module.apply`` under ``jax.jit`` with the metric's precision (no host-side checks),
inputs already on the device.

Why this lives in the package and not in ``benchmarks/``: ``shiftlpips bench`` is an installed
command, and every piece here is part of it -- the PyTorch cases and the reference import are
``--against-pytorch``, the matmul case is the "of matmul" column. (torch is optional: imported only
for ``--against-pytorch``, ``pip install 'shiftlpips-jax[pytorch]'``.) What only the scripts in
``benchmarks/`` need (GPU back-to-back calls, a vendored reference import, probes) is in
``benchmarks/harness.py``, which re-exports these pieces so that the scripts never import the
package's private modules.

Example::

    rows = run_bench([("alex", "shift_tolerant")], [(64, 50)], against_pytorch=True)
    print(format_table(rows))
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import outputs
from .errors import InputError, ShiftLPIPSError

__all__ = ["ReferenceMissingError", "Workload", "Case", "parse_workloads", "load_model",
           "jax_case", "torch_case", "matmul_case", "flops_of", "import_reference",
           "time_interleaved", "run_bench", "format_table", "environment", "run_bench_command",
           "MODES", "DEFAULT_WORKLOADS"]

DEFAULT_WORKLOADS = "64x50,256x4"
MODES = ("forward", "grad")


class ReferenceMissingError(ShiftLPIPSError, RuntimeError):
    """``--against-pytorch`` without PyTorch or the stlpips-pytorch reference installed."""


@dataclasses.dataclass(frozen=True)
class Workload:
    """One timed configuration: ``batch`` image pairs of ``size`` x ``size``."""
    net: str
    variant: str
    size: int
    batch: int
    mode: str      # "forward" or "grad" (gradient with respect to x)
    dtype: str     # "float32" or "bfloat16" (backbone compute dtype)

    @property
    def label(self) -> str:
        return f"{self.net}/{self.variant} {self.size}x{self.size} b{self.batch} {self.mode} " \
               f"{self.dtype}"


@dataclasses.dataclass
class Case:
    """A ready-to-time callable (runs once, synchronises) and its FLOPs per call."""
    run: Callable[[], Any]
    flops: float | None = None


def parse_workloads(text: str) -> list[tuple[int, int]]:
    """``"64x50,256x4"`` -> ``[(64, 50), (256, 4)]`` (side x batch)."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            size, batch = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise InputError(f"bad workload {item!r}: expected SIDExBATCH, e.g. 64x50") from None
        if size < 1 or batch < 1:
            raise InputError(f"bad workload {item!r}: side and batch must be positive")
        out.append((size, batch))
    if not out:
        raise InputError("no workloads given")
    return out


def _inputs(size: int, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.2, x.shape), -1, 1).astype(np.float32)
    return x, y


def flops_of(compiled) -> float | None:
    """FLOPs of a compiled XLA program from its cost analysis (``None`` where unavailable)."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - backends without cost analysis
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        return None
    return float(cost["flops"])


def load_model(net: str, variant: str, dtype: str, *, random_init: bool = False):
    """(module, variables, precision) of a pretrained model, or of its architecture with random
    weights (``random_init``: no weight files needed; speed does not depend on the values)."""
    jdtype = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    if net == "msssim":
        from .evaluation.msssim import MSSSIM
        return MSSSIM(), {}, "highest"
    if net == "dists" and random_init:
        from .dists import DISTS
        module = DISTS(dtype=jdtype)
        x = jnp.zeros((1, 16, 16, 3), jnp.float32)
        return module, module.init(jax.random.key(0), x, x), "highest"
    if random_init:
        from .weights import registry
        module = registry.build_model(net, variant, dtype=jdtype)
        x = jnp.zeros((1, 64, 64, 3), jnp.float32)
        variables = module.init(jax.random.key(0), x, x)
        variables = jax.tree_util.tree_map_with_path(   # learned heads are non-negative
            lambda path, a: jnp.abs(a) if "lin" in jax.tree_util.keystr(path) else a, variables)
        return module, variables, "highest"
    from .metric import load
    metric = load(net, variant, dtype=jdtype)
    return metric.module, metric.variables, metric.precision


def jax_case(module, variables, precision: str, w: Workload, *, seed: int = 0) -> Case:
    """Compiles the workload (forward distance or input gradient) and returns its callable."""
    x, y = _inputs(w.size, w.batch, seed)
    x, y = jnp.asarray(x), jnp.asarray(y)

    def forward(v, a, b):
        with jax.default_matmul_precision(precision):
            return module.apply(v, a, b)

    if w.mode == "forward":
        fn = forward
    elif w.mode == "grad":
        def fn(v, a, b):
            return jax.grad(lambda a_: forward(v, a_, b).sum())(a)
    else:
        raise InputError(f"unknown mode {w.mode!r}; expected one of {MODES}")
    compiled = jax.jit(fn).lower(variables, x, y).compile()

    def run(sync: bool = True):
        out = compiled(variables, x, y)
        return jax.block_until_ready(out) if sync else out

    run.accepts_sync = True  # GPU loops may queue several calls before one sync
    return Case(run, flops_of(compiled))


def matmul_case(n: int = 2048) -> Case:
    """A float32 ``n x n`` matmul under XLA: the practical peak the other rows are compared to."""
    a = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(2), (n, n), jnp.float32)
    with jax.default_matmul_precision("highest"):
        compiled = jax.jit(jnp.matmul).lower(a, b).compile()
    return Case(lambda: jax.block_until_ready(compiled(a, b)), 2.0 * n ** 3)


def import_reference():
    """Imports torch and stlpips_pytorch; :class:`ReferenceMissingError` names what to install
    when they are missing."""
    try:
        import torch  # noqa: F401
    except ImportError as err:
        raise ReferenceMissingError("--against-pytorch needs PyTorch, which is not installed: "
                                    "pip install 'shiftlpips-jax[pytorch]' (torch, torchvision)"
                                    ) from err
    try:
        from stlpips_pytorch import stlpips
    except ImportError as err:
        raise ReferenceMissingError("--against-pytorch needs the reference implementation: pip "
                                    f"install stlpips-pytorch==0.0.2 (import failed: {err})"
                                    ) from err
    return stlpips


def _official_dists(pretrained: bool):
    """The official ``DISTS_pytorch.DISTS`` module on CPU; with ``pretrained`` its trunk and
    alpha/beta are this library's checksum-verified files (DISTS' constructor would download
    torchvision's VGG16 otherwise)."""
    import warnings

    import torch
    import torchvision
    try:
        from DISTS_pytorch import DISTS_pt
    except ImportError as err:
        raise RuntimeError("--against-pytorch with dists needs the official code: pip install "
                           f"DISTS-pytorch==0.1 (import failed: {err})") from err
    real = torchvision.models.vgg16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DISTS_pt.models.vgg16 = lambda *a, **k: real(weights=None)
        try:
            model = DISTS_pt.DISTS(load_weights=False)
        finally:
            DISTS_pt.models.vgg16 = real
    if pretrained:
        from .dists import load_dists_variables
        p = load_dists_variables()["params"]
        model.alpha.data = torch.from_numpy(np.asarray(p["alpha"]).reshape(1, -1, 1, 1).copy())
        model.beta.data = torch.from_numpy(np.asarray(p["beta"]).reshape(1, -1, 1, 1).copy())
        convs = [m for stage in (model.stage1, model.stage2, model.stage3, model.stage4,
                                 model.stage5) for m in stage if isinstance(m, torch.nn.Conv2d)]
        from .dists import CONV_NAMES
        for conv, name in zip(convs, CONV_NAMES, strict=True):
            kernel = np.asarray(p["net"][name]["kernel"]).transpose(3, 2, 0, 1)
            conv.weight.data = torch.from_numpy(np.ascontiguousarray(kernel))
            conv.bias.data = torch.from_numpy(np.asarray(p["net"][name]["bias"]).copy())
    return model.eval()


def torch_case(w: Workload, *, device: str = "cpu", pretrained: bool = True, seed: int = 0,
               stlpips_module=None, sync: bool = True, channels_last: bool = False) -> Case:
    """The same workload on the PyTorch reference (``stlpips.LPIPS``; for ``variant="lpips"``
    its LPIPS v0.1 architecture with ``pnet_rand`` trunk, which is upstream ``lpips``' code).
    Inputs are contiguous NCHW, as upstream's data loader makes them (``channels_last``: the
    layout oneDNN prefers instead). ``sync=False``: CUDA runs are left asynchronous."""
    import warnings

    import torch
    if w.net == "msssim":
        raise InputError("bench has no PyTorch side for msssim; drop --against-pytorch")
    stlpips = None if w.net == "dists" else (stlpips_module or import_reference())
    with warnings.catch_warnings():  # torchvision's deprecated `pretrained=` argument
        warnings.simplefilter("ignore")
        if w.net == "dists":
            model = _official_dists(pretrained)
        elif w.variant == "lpips":
            model = stlpips.LPIPS(net=w.net, variant="", pretrained=False, pnet_rand=True,
                                  verbose=False)
        else:
            model = stlpips.LPIPS(net=w.net, variant=w.variant, pretrained=pretrained,
                                  verbose=False)
    model = model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    xs, ys = _inputs(w.size, w.batch, seed)
    if w.net == "dists":   # the official code takes [0, 1] images
        xs, ys = (xs + 1.0) / 2.0, (ys + 1.0) / 2.0
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.from_numpy(xs).permute(0, 3, 1, 2).contiguous(memory_format=fmt).to(device)
    y = torch.from_numpy(ys).permute(0, 3, 1, 2).contiguous(memory_format=fmt).to(device)
    sync = (torch.cuda.synchronize if device.startswith("cuda") and sync
            else (lambda: None))

    def ctx():
        if w.dtype == "bfloat16":
            return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
        return contextlib.nullcontext()

    if w.mode == "forward":
        def run():
            with torch.no_grad(), ctx():
                out = model(x, y)
            sync()
            return out
    else:
        def run():
            xg = x.detach().clone().requires_grad_(True)
            with ctx():
                # DISTS_pytorch runs its trunk under no_grad unless asked.
                out = model(xg, y, require_grad=True) if w.net == "dists" else model(xg, y)
                loss = out.sum()
            loss.backward()
            sync()
            return xg.grad

    return Case(run)


def time_interleaved(cases: dict[str, Case], *, repeats: int, warmup: int = 1,
                     gap: float = 0.0) -> dict[str, list[float]]:
    """Runs the cases round-robin (``warmup`` untimed rounds, then ``repeats`` timed ones) and
    returns each case's wall times in seconds. ``gap`` sleeps between runs so that one library's
    spinning worker threads do not eat into the next one's time."""
    for _ in range(warmup):
        for case in cases.values():
            case.run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            if gap:
                time.sleep(gap)
            t0 = time.perf_counter()
            case.run()
            times[name].append(time.perf_counter() - t0)
    return times


def _row(w: Workload, times: dict[str, list[float]], cases: dict[str, Case]) -> dict:
    jax_t = statistics.median(times["jax"])
    mm_t = statistics.median(times["matmul"])
    mm_gflops = cases["matmul"].flops / mm_t / 1e9
    flops = cases["jax"].flops
    row = dict(model=f"{w.net}/{w.variant}", size=w.size, batch=w.batch, mode=w.mode,
               dtype=w.dtype, jax_pairs_per_s=w.batch / jax_t, jax_s=jax_t,
               jax_times=times["jax"], matmul_gflops=mm_gflops,
               gflop_per_pair=None, gflops=None, fraction_of_matmul=None,
               torch_pairs_per_s=None, torch_s=None, torch_times=None, ratio=None)
    if flops:
        row["gflop_per_pair"] = flops / w.batch / 1e9
        row["gflops"] = flops / jax_t / 1e9
        row["fraction_of_matmul"] = row["gflops"] / mm_gflops
    if "torch" in times:
        torch_t = statistics.median(times["torch"])
        row.update(torch_pairs_per_s=w.batch / torch_t, torch_s=torch_t,
                   torch_times=times["torch"], ratio=torch_t / jax_t)
    return row


def run_bench(models: Sequence[tuple[str, str]], workloads: Sequence[tuple[int, int]], *,
              modes: Sequence[str] = MODES, dtypes: Sequence[str] = ("float32",),
              against_pytorch: bool = False, repeats: int = 5, warmup: int = 1,
              gap: float = 0.05, random_init: bool = False, matmul_n: int = 2048,
              device: str = "cpu", stlpips_module=None, torch_channels_last: bool = False,
              log: Callable[[str], None] | None = None) -> list[dict]:
    """Times every (model, workload, mode, dtype) and returns one result dict per row.

    Each row's JAX run, PyTorch run (``against_pytorch``) and a float32 matmul are interleaved
    round by round, so their medians see the same machine load.
    """
    if against_pytorch and stlpips_module is None and any(
            net not in ("dists", "msssim") for net, _ in models):
        stlpips_module = import_reference()
    mm = matmul_case(matmul_n)
    rows = []
    for net, variant in models:
        for dtype in dtypes:
            module, variables, precision = load_model(net, variant, dtype,
                                                      random_init=random_init)
            for size, batch in workloads:
                for mode in modes:
                    w = Workload(net, variant, size, batch, mode, dtype)
                    cases = {"jax": jax_case(module, variables, precision, w)}
                    if against_pytorch:
                        cases["torch"] = torch_case(w, device=device, pretrained=not random_init,
                                                    stlpips_module=stlpips_module,
                                                    channels_last=torch_channels_last)
                    cases["matmul"] = mm
                    times = time_interleaved(cases, repeats=repeats, warmup=warmup, gap=gap)
                    row = _row(w, times, cases)
                    rows.append(row)
                    if log:
                        log(format_table([row], header=not rows[:-1]))
    return rows


def _fmt(v, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


COLUMNS = ("model", "input", "mode", "dtype", "jax pairs/s", "torch pairs/s", "ratio",
           "GFLOP/pair", "GFLOP/s", "of matmul")


def format_table(rows: list[dict], header: bool = True) -> str:
    """Fixed-width text table of :func:`run_bench` rows (ratio = torch time / JAX time)."""
    widths = (20, 12, 8, 9, 12, 14, 7, 11, 9, 10)
    lines = []
    if header:
        lines.append("".join(c.ljust(wd) for c, wd in zip(COLUMNS, widths)).rstrip())
    for r in rows:
        cells = (r["model"], f"{r['size']}x{r['size']}x{r['batch']}", r["mode"], r["dtype"],
                 _fmt(r["jax_pairs_per_s"], ".2f"), _fmt(r["torch_pairs_per_s"], ".2f"),
                 _fmt(r["ratio"], ".2f"), _fmt(r["gflop_per_pair"], ".3f"),
                 _fmt(r["gflops"], ".1f"),
                 "-" if r["fraction_of_matmul"] is None else f"{100 * r['fraction_of_matmul']:.0f}%")
        lines.append("".join(str(c).ljust(wd) for c, wd in zip(cells, widths)).rstrip())
    return "\n".join(lines)


def environment() -> dict:
    """What the numbers were measured on."""
    env = dict(python=platform.python_version(), jax=jax.__version__,
               backend=jax.default_backend(), devices=[str(d) for d in jax.devices()],
               cpu_count=os.cpu_count(), machine=platform.machine(),
               xla_flags=os.environ.get("XLA_FLAGS", ""))
    try:
        env["loadavg"] = os.getloadavg()
    except OSError:
        pass
    if "torch" in sys.modules:
        import torch
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    return env


def _models(text: str, variant: str) -> list[tuple[str, str]]:
    from .backbones import NET_ALIASES
    from .weights.registry import PRETRAINED
    nets = [NET_ALIASES.get(n.strip(), n.strip()) for n in text.split(",") if n.strip()]
    variants = sorted({v for _, v in PRETRAINED}) if variant == "all" else [variant]
    out = []
    for net in nets:
        if net in ("dists", "msssim"):   # one model each; --variant is for the LPIPS nets
            out.append((net, "official" if net == "dists" else "RGB"))
            continue
        for v in variants:
            if (net, v) not in PRETRAINED:
                known = sorted(PRETRAINED)
                raise InputError(f"no pretrained model {net}/{v}; pretrained models: {known}")
            out.append((net, v))
    return out


def run_bench_command(*, models: str = "alex,vgg", variant: str = "shift_tolerant",
                      workloads: str = DEFAULT_WORKLOADS, modes: str = "both",
                      bf16: bool = False, against_pytorch: bool = False, repeats: int = 7,
                      warmup: int = 2, gap: float = 0.05, random_init: bool = False,
                      matmul_size: int = 2048, torch_channels_last: bool = False,
                      json_path: str | None = None, argv: Sequence[str] = ()) -> list[dict]:
    """The ``shiftlpips bench`` job: prints the table as rows finish, writes JSON if asked.

    Args:
      models: comma-separated nets (``"alex,vgg"``; also ``dists``, ``msssim``).
      variant: ``shift_tolerant``, ``lpips`` or ``all`` (every pretrained variant).
      workloads: ``SIDExBATCH`` list, e.g. ``"64x50,256x4"``.
      modes: ``forward``, ``grad`` or ``both``.
      bf16: also time the bfloat16 backbone (PyTorch under bf16 autocast).
      against_pytorch: time stlpips-pytorch on the same workloads in alternating runs.
      repeats, warmup, gap: timed rounds, untimed rounds, sleep between timed runs (s).
      random_init: random weights of the same architectures (no weight files needed).
      matmul_size: side of the float32 matmul timed as the reference peak.
      torch_channels_last: give PyTorch channels-last inputs.
      json_path: also write every row, the environment and ``argv`` as JSON (atomically).
      argv: the command line, recorded in the JSON.

    Returns:
      The result rows of :func:`run_bench`.
    """
    model_list = _models(models, variant)
    if against_pytorch and ("msssim", "RGB") in model_list:
        raise InputError("bench has no PyTorch side for msssim; drop --against-pytorch or "
                         "time msssim separately")
    sizes = parse_workloads(workloads)
    mode_list = MODES if modes == "both" else (modes,)
    dtypes = ("float32", "bfloat16") if bf16 else ("float32",)
    if json_path:
        outputs.check_outputs([("--json", json_path)])
    print(f"# shiftlpips bench: {jax.default_backend()} x{len(jax.devices())}, "
          f"{os.cpu_count()} CPUs, jax {jax.__version__}; median of {repeats} interleaved "
          f"runs; ratio = PyTorch time / JAX time", flush=True)
    rows = run_bench(model_list, sizes, modes=mode_list, dtypes=dtypes,
                     against_pytorch=against_pytorch, repeats=repeats, warmup=warmup, gap=gap,
                     random_init=random_init, matmul_n=matmul_size,
                     torch_channels_last=torch_channels_last, log=lambda s: print(s, flush=True))
    # The bf16 trunk against the float32 one, per workload (each timed in its own rounds).
    f32 = {(r["model"], r["size"], r["batch"], r["mode"]): r for r in rows
           if r["dtype"] == "float32"}
    for r in rows:
        base = f32.get((r["model"], r["size"], r["batch"], r["mode"]))
        if r["dtype"] == "bfloat16" and base is not None:
            print(f"# bf16 / float32 {r['model']} {r['size']}x{r['size']}x{r['batch']} "
                  f"{r['mode']}: {r['jax_pairs_per_s'] / base['jax_pairs_per_s']:.2f}x")
    mm = statistics.median(r["matmul_gflops"] for r in rows)
    print(f"# float32 {matmul_size}^2 matmul (XLA), same rounds: {mm:.1f} GFLOP/s "
          f"(median over rows; per row in --json)")
    if json_path:
        payload = dict(environment=environment(), argv=list(argv), rows=rows)
        outputs.atomic_write_text(json_path, json.dumps(payload, indent=1))
    return rows


