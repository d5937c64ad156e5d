"""The metric under every JAX transformation and sharding mode, on 4 fake CPU devices.

For every pretrained model and one preset of each other backbone family (random weights), the
pure function ``module.apply(variables, x, y)`` runs, on the CPU kernels, under ``jit``,
``grad`` (inputs and params), ``jvp``, ``linearize``, ``vmap``, ``jax.checkpoint`` inside
``lax.scan``, ``eval_shape``; ``jax.jit`` with ``NamedSharding`` inputs on Auto and on Explicit
meshes from ``jax.make_mesh`` (forward and input gradient); ``jax.shard_map`` with its default
checks (forward, input gradient, gradient of a ``psum``'d loss, gradient with respect to the
replicated params of a ``pmean``'d loss); ``jax.export`` with a symbolic batch, serialized,
deserialized and called at two batch sizes. Each result equals the plain result: the same
distance or gradient computed unsharded, untransformed but for ``jit``, with the plain layers
(the non-CPU path, JAX's own derivatives), within 1e-5 relative (per output array, max |diff| /
max |reference|). Forward-mode tangents along the plain input gradient g must be sum(g^2) per
pair. One more entry runs ST alex with the CPU batch chunking on at this small size.

The device count is fixed when JAX starts, so each model's cases run in their own Python
process with 4 fake devices (this file is also the worker: ``python tests/test_transforms.py
MODEL OUT.json``); the cases of one group (single device, each mesh, shard_map) share one
compiled program, and a group that fails reruns case by case to name the failing case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEVICES = 4
BATCH, HEIGHT, WIDTH = 8, 40, 44   # 40 px: the smallest side every model here accepts is 39
TOL = 1e-5
# LLVM optimisation off: the same XLA programs (HLO) as users run, compiled ~2.5x faster into
# less optimised machine code; compilation is most of this file's run time.
XLA_FLAGS = (f"--xla_force_host_platform_device_count={DEVICES} "
             "--xla_backend_optimization_level=0")

# (net, variant, pretrained, chunked)
MODELS = {
    "alex/shift_tolerant": ("alex", "shift_tolerant", True, False),
    "alex/lpips": ("alex", "lpips", True, False),
    "vgg/shift_tolerant": ("vgg", "shift_tolerant", True, False),
    "vgg/lpips": ("vgg", "lpips", True, False),
    "squeeze/antialiased": ("squeeze", "antialiased", False, False),
    "resnet/antialiased": ("resnet", "antialiased", False, False),
    "alex/antialiased": ("alex", "antialiased", False, False),
    "alex/shift_tolerant+chunks": ("alex", "shift_tolerant", True, True),
}
CASES = ("jit", "grad", "jvp", "linearize", "vmap", "checkpoint_scan", "eval_shape",
         "auto_mesh_forward", "auto_mesh_grad", "explicit_mesh_forward", "explicit_mesh_grad",
         "shard_map_forward", "shard_map_grad_x", "shard_map_psum_grad",
         "shard_map_pmean_param_grad", "export")


# -------------------------------------------------------------------------------------------
# Worker (runs with 4 fake devices).

def _rel_err(got, want) -> float:
    import jax
    import numpy as np
    got_leaves, want_leaves = jax.tree.leaves(got), jax.tree.leaves(want)
    assert len(got_leaves) == len(want_leaves), (len(got_leaves), len(want_leaves))
    worst = 0.0
    for a, b in zip(got_leaves, want_leaves):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert a.shape == b.shape, (a.shape, b.shape)
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        err = float(np.max(np.abs(a - b))) if b.size else 0.0
        assert np.isfinite(a).all(), "non-finite result"
        worst = max(worst, err / scale if scale > 0 else err)
    return worst


def _model(net, variant, pretrained):
    import jax
    import jax.numpy as jnp
    import shiftlpips_jax as sl
    if pretrained:
        metric = sl.load(net, variant)
        return metric.module, metric.params
    module = sl.LPIPS(net=sl.make_backbone(net, variant))
    x = jnp.zeros((1, HEIGHT, WIDTH, 3), jnp.float32)
    variables = module.init(jax.random.key(0), x, x)
    # Learned heads are non-negative (as trained ones): abs of the random 1x1 kernels.
    variables = jax.tree_util.tree_map_with_path(
        lambda path, a: jnp.abs(a) if "lin" in jax.tree_util.keystr(path) else a, variables)
    return module, variables


def _groups(module, variables, x, y):
    """{group: (run, want)} for one model: ``run(cases)`` computes the listed cases of the group
    in one program and returns {case: result}; ``want[case]`` is the plain result."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import export, lax
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

    from shiftlpips_jax._src import layers

    params = variables   # differentiated as a whole (ResNet's batch statistics too)

    # Every jitted function takes params and both images as arguments: closed-over arrays would
    # be constants that XLA folds through the network (slow compiles, other rounding).
    def f(p, a, b):
        return module.apply(p, a, b)

    def loss(p, a, b):
        return jnp.sum(f(p, a, b))

    with layers.kernels_for("default"):   # the plain layers: the reference
        d_ref, (gp_ref, gx_ref) = jax.jit(
            lambda p, a, b: (f(p, a, b), jax.grad(loss, (0, 1))(p, a, b)))(params, x, y)
    tan_ref = np.sum(np.asarray(gx_ref, np.float64) ** 2, axis=(1, 2, 3))

    def one_pair(p, a, b):
        return f(p, a[None], b[None])[0]

    def scan_loss(xs, p, ys):
        step = jax.checkpoint(lambda a, b: loss(p, a, b))
        return lax.scan(lambda c, ab: (c + step(*ab), None), jnp.float32(0), (xs, ys))[0]

    def scanned(p, a, b):
        half = (2, BATCH // 2) + a.shape[1:]
        value, g = jax.value_and_grad(scan_loss)(a.reshape(half), p, b.reshape(half))
        return value, g.reshape(a.shape)

    def linearized(p, a, b, t):
        out, f_jvp = jax.linearize(lambda v: f(p, v, b), a)
        return out, f_jvp(t)

    single = {   # case: (body(p, a, b, t), plain result); t = the plain input gradient
        "jit": (lambda p, a, b, t: f(p, a, b), d_ref),
        "grad": (lambda p, a, b, t: jax.grad(loss, (0, 1))(p, a, b), (gp_ref, gx_ref)),
        "jvp": (lambda p, a, b, t: jax.jvp(lambda v: f(p, v, b), (a,), (t,)), (d_ref, tan_ref)),
        "linearize": (linearized, (d_ref, tan_ref)),
        "vmap": (lambda p, a, b, t: (jax.vmap(lambda u, v: one_pair(p, u, v))(a, b),
                                     jax.vmap(jax.grad(lambda u, v: one_pair(p, u, v)))(a, b)),
                 (d_ref, gx_ref)),
        "checkpoint_scan": (lambda p, a, b, t: scanned(p, a, b), (jnp.sum(d_ref), gx_ref)),
    }

    def run_single(cases):
        fn = jax.jit(lambda p, a, b, t: {c: single[c][0](p, a, b, t) for c in cases})
        return fn(params, x, y, gx_ref)

    def run_eval_shape(cases):
        got = (jax.eval_shape(f, params, x, y),
               jax.eval_shape(jax.grad(loss, (0, 1)), params, x, y))
        same = jax.tree.map(lambda g, w: (g.shape, g.dtype) == (w.shape, w.dtype), got,
                            (d_ref, (gp_ref, gx_ref)))
        assert all(jax.tree.leaves(same)), got
        return {"eval_shape": 0.0}

    def on_mesh(axis_type):
        mesh = jax.make_mesh((DEVICES,), ("data",), axis_types=(axis_type,))
        data, repl = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
        return (mesh, jax.device_put(params, repl), jax.device_put(x, data),
                jax.device_put(y, data))

    def run_mesh(axis_type, prefix):
        def run(cases):
            _, p, a, b = on_mesh(axis_type)
            bodies = {f"{prefix}_forward": f, f"{prefix}_grad": jax.grad(loss, 1)}
            out = jax.jit(lambda p, a, b: {c: bodies[c](p, a, b) for c in cases})(p, a, b)
            assert all(o.sharding.num_devices == DEVICES for o in jax.tree.leaves(out))
            return out
        return run

    sharded = {   # case: (per-device body, out_specs, plain result)
        "shard_map_forward": (f, P("data"), d_ref),
        "shard_map_grad_x": (jax.grad(loss, 1), P("data"), gx_ref),
        "shard_map_psum_grad": (
            lambda p, a, b: jax.grad(lambda v: lax.psum(loss(p, v, b), "data"))(a), P("data"),
            gx_ref),
        # The pmean of the per-device sums is sum(d) / DEVICES.
        "shard_map_pmean_param_grad": (
            lambda p, a, b: jax.grad(lambda q: lax.pmean(loss(q, a, b), "data"))(p), P(),
            jax.tree.map(lambda g: g / DEVICES, gp_ref)),
    }

    def run_shard_map(cases):
        mesh, p, a, b = on_mesh(AxisType.Explicit)   # jax.make_mesh's default axis type
        assert jax.make_mesh((DEVICES,), ("data",)).axis_types == mesh.axis_types
        fn = jax.shard_map(lambda p, a, b: {c: sharded[c][0](p, a, b) for c in cases},
                           mesh=mesh, in_specs=(P(), P("data"), P("data")),
                           out_specs={c: sharded[c][1] for c in cases})
        return jax.jit(fn)(p, a, b)

    def run_export(cases):
        spec = jax.ShapeDtypeStruct(export.symbolic_shape(f"b, {HEIGHT}, {WIDTH}, 3"),
                                    jnp.float32)
        exported = export.export(jax.jit(f))(params, spec, spec)
        restored = export.deserialize(exported.serialize())
        return {"export": (restored.call(params, x, y), restored.call(params, x[:3], y[:3]))}

    want = {c: w for c, (_, w) in single.items()}
    want.update({c: w for c, (_, _, w) in sharded.items()})
    want.update({"eval_shape": 0.0, "auto_mesh_forward": d_ref, "auto_mesh_grad": gx_ref,
                 "explicit_mesh_forward": d_ref, "explicit_mesh_grad": gx_ref,
                 "export": (d_ref, d_ref[:3])})
    return {
        "single": (run_single, tuple(single)),
        "eval_shape": (run_eval_shape, ("eval_shape",)),
        "auto_mesh": (run_mesh(AxisType.Auto, "auto_mesh"),
                      ("auto_mesh_forward", "auto_mesh_grad")),
        "explicit_mesh": (run_mesh(AxisType.Explicit, "explicit_mesh"),
                          ("explicit_mesh_forward", "explicit_mesh_grad")),
        "shard_map": (run_shard_map, tuple(sharded)),
        "export": (run_export, ("export",)),
    }, want


def _run_model(name, net, variant, pretrained, x, y) -> dict:
    """{case: {"rel_err": float} or {"error": traceback}} for one model."""
    try:
        module, variables = _model(net, variant, pretrained)
        groups, want = _groups(module, variables, x, y)
    except Exception:  # noqa: BLE001 - reported for every case
        error = traceback.format_exc()[-3000:]
        return {c: {"error": f"setup failed:\n{error}"} for c in CASES}
    results = {}
    for run, cases in groups.values():
        try:   # the group's cases in one program (one compilation)
            outs = run(cases)
        except Exception:  # noqa: BLE001 - then case by case, to tell which one fails
            outs = {}
            for case in cases:
                try:
                    outs.update(run((case,)))
                except Exception:  # noqa: BLE001 - every failure is a reported result
                    results[case] = {"error": traceback.format_exc()[-3000:]}
        for case, got in outs.items():
            try:
                results[case] = {"rel_err": _rel_err(got, want[case])}
            except Exception:  # noqa: BLE001
                results[case] = {"error": traceback.format_exc()[-3000:]}
    assert sorted(results) == sorted(CASES), sorted(results)
    return results


def worker(model: str, out_path: str) -> None:
    """Runs every case for ``model`` and writes {"devices", "cases", "seconds"} to out_path."""
    import jax
    import numpy as np

    from shiftlpips_jax._src import cpu_kernels

    start = time.perf_counter()
    net, variant, pretrained, chunked = MODELS[model]
    if chunked:   # chunks of 3 images: (3, 3, 2) on the unsharded batch of 8
        cpu_kernels.CPU_CHUNK_PIXELS = 3 * HEIGHT * WIDTH
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (BATCH, HEIGHT, WIDTH, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.3, x.shape), -1, 1).astype(np.float32)
    x, y = jax.numpy.asarray(x), jax.numpy.asarray(y)
    cases = _run_model(model, net, variant, pretrained, x, y)
    report = {"devices": jax.device_count(), "cases": cases,
              "seconds": time.perf_counter() - start}
    tmp = out_path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(report, fh, indent=1)
    os.replace(tmp, out_path)


# -------------------------------------------------------------------------------------------
# Tests.

@pytest.mark.parametrize("model", list(MODELS))
def test_every_transform_equals_plain_result(tmp_path, model):
    out = str(tmp_path / "report.json")
    env = dict(os.environ)
    env["XLA_FLAGS"] = XLA_FLAGS
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), model, out], cwd=REPO,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:]
    with open(out) as fh:
        report = json.load(fh)
    assert report["devices"] == DEVICES
    assert sorted(report["cases"]) == sorted(CASES)
    failed = {case: r for case, r in report["cases"].items()
              if "error" in r or not r["rel_err"] <= TOL}
    print(f"{model}: {len(CASES) - len(failed)}/{len(CASES)} cases within {TOL:g} relative "
          f"({report['seconds']:.0f} s); worst "
          f"{max(r.get('rel_err', 0.0) for r in report['cases'].values()):.2g}")
    assert not failed, "\n\n".join(
        f"{model} | {case}: " + (r["error"] if "error" in r else f"rel_err {r['rel_err']:.3g}")
        for case, r in failed.items())


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2])
