"""The bench CLI's output structure (never its timings) and the fast compute paths of layers.py
against the formulas they replace: values, jax.grad, forward mode and vmap agree."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import shiftlpips_jax as sl
from shiftlpips_jax import cli
from shiftlpips_jax._src import bench, layers

# -------------------------------------------------------------------------------------------
# bench CLI smoke (tiny workload, random weights: structure only).


def test_bench_cli_output_structure(capsys, tmp_path):
    out_json = tmp_path / "bench.json"
    code = cli.main(["bench", "--models", "alex", "--workloads", "32x2", "--repeats", "1",
                     "--warmup", "0", "--gap", "0", "--matmul-size", "128", "--random-init",
                     "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("# shiftlpips bench")
    assert lines[1].split()[:4] == ["model", "input", "mode", "dtype"]
    assert "GFLOP/pair" in lines[1] and "of matmul" in lines[1]
    rows = [ln.split() for ln in lines[2:] if not ln.startswith("#")]
    assert [r[:4] for r in rows] == [["alex/shift_tolerant", "32x32x2", "forward", "float32"],
                                     ["alex/shift_tolerant", "32x32x2", "grad", "float32"]]
    for r in rows:
        assert float(r[4]) > 0            # JAX pairs/s
        assert r[5] == "-" and r[6] == "-"  # no PyTorch column without --against-pytorch
        assert float(r[7]) > 0 and float(r[8]) > 0 and r[9].endswith("%")
    assert "matmul" in lines[-1]
    payload = json.loads(out_json.read_text())
    assert payload["environment"]["backend"] == jax.default_backend()
    assert len(payload["rows"]) == 2
    fwd, grad = payload["rows"]
    assert grad["gflop_per_pair"] > fwd["gflop_per_pair"] > 0  # backward adds work
    assert len(fwd["jax_times"]) == 1 and fwd["matmul_gflops"] > 0


def test_bench_parse_and_errors():
    assert bench.parse_workloads("64x50, 256x4") == [(64, 50), (256, 4)]
    with pytest.raises(ValueError, match="SIDExBATCH"):
        bench.parse_workloads("64-50")
    with pytest.raises(ValueError, match="pretrained models"):
        bench._models("squeeze", "shift_tolerant")
    assert bench._models("alexnet,vgg", "all") == [("alex", "lpips"), ("alex", "shift_tolerant"),
                                                  ("vgg", "lpips"), ("vgg", "shift_tolerant")]


def test_bench_against_pytorch_missing_is_clear(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "torch" or name.startswith("stlpips_pytorch"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(RuntimeError, match="needs PyTorch|stlpips-pytorch"):
        bench.import_reference()


# -------------------------------------------------------------------------------------------
# BlurPool: separable strided slices with a hand-written transpose == depthwise conv.

BLUR_CASES = [(h, w, fs, pm, st) for h, w in ((9, 10), (8, 8), (5, 7), (3, 4))
              for fs in (1, 2, 3, 5) for pm in (False, True) for st in (1, 2, 3)
              if max(layers.blur_pad(fs, pm)) < min(h, w)]


@pytest.mark.parametrize("h,w,fs,pad_more,stride", BLUR_CASES)
def test_blur_pool_equals_depthwise_conv(h, w, fs, pad_more, stride):
    kw = dict(filter_size=fs, pad_more=pad_more, stride=stride)
    x = jax.random.normal(jax.random.key(0), (2, h, w, 3))
    want = layers.blur_pool_reference(x, **kw)
    got = layers.blur_pool(x, **kw)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-6)
    ct = jax.random.normal(jax.random.key(1), want.shape)
    g_want = jax.grad(lambda a: jnp.sum(layers.blur_pool_reference(a, **kw) * ct))(x)
    g_got = jax.grad(lambda a: jnp.sum(layers.blur_pool(a, **kw) * ct))(x)
    np.testing.assert_allclose(g_got, g_want, atol=1e-6)
    t = jax.random.normal(jax.random.key(2), x.shape)
    j_want = jax.jvp(lambda a: layers.blur_pool_reference(a, **kw), (x,), (t,))[1]
    j_got = jax.jvp(lambda a: layers.blur_pool(a, **kw), (x,), (t,))[1]
    np.testing.assert_allclose(j_got, j_want, atol=1e-6)


def test_blur_pool_vmap_jit_bf16():
    x = jax.random.normal(jax.random.key(0), (3, 2, 11, 9, 4))
    loss = lambda f: jax.grad(lambda a: jnp.sum(f(a, pad_more=True) ** 2))  # noqa: E731
    got = jax.jit(jax.vmap(loss(layers.blur_pool)))(x)
    want = jax.vmap(loss(layers.blur_pool_reference))(x)
    np.testing.assert_allclose(got, want, atol=1e-6)
    xb = x[0].astype(jnp.bfloat16)
    assert layers.blur_pool(xb).dtype == jnp.bfloat16
    np.testing.assert_allclose(layers.blur_pool(xb).astype(jnp.float32),
                               layers.blur_pool_reference(xb.astype(jnp.float32)), atol=2e-2)


# -------------------------------------------------------------------------------------------
# Max pool: first-argmax mask gradient == jax.grad of lax.reduce_window_max (ties included).

POOL_CASES = [dict(window=3, stride=1), dict(window=3, stride=2, ceil_mode=True),
              dict(window=2, stride=1), dict(window=3, stride=2, padding=1),
              dict(window=2, stride=2), dict(window=1, stride=1)]


@pytest.mark.parametrize("kw", POOL_CASES)
def test_max_pool_gradient_equals_reduce_window(kw):
    x = jax.random.normal(jax.random.key(0), (2, 13, 14, 5))
    x = jnp.round(x * 2) / 2          # many ties inside windows
    x = x.at[0, :4, :4, :].set(0.0)   # a flat (ReLU-dead) region
    want = layers.max_pool_reference(x, **kw)
    np.testing.assert_array_equal(layers.max_pool(x, **kw), want)
    ct = jax.random.normal(jax.random.key(1), want.shape)
    g_want = jax.grad(lambda a: jnp.sum(layers.max_pool_reference(a, **kw) * ct))(x)
    g_got = jax.grad(lambda a: jnp.sum(layers.max_pool(a, **kw) * ct))(x)
    np.testing.assert_array_equal(g_got, g_want)
    # Forward mode: JAX's own rule picks an unspecified element among tied maxima, so compare
    # on tie-free input.
    xr = jax.random.normal(jax.random.key(3), x.shape)
    t = jax.random.normal(jax.random.key(2), x.shape)
    j_want = jax.jvp(lambda a: layers.max_pool_reference(a, **kw), (xr,), (t,))[1]
    j_got = jax.jvp(lambda a: layers.max_pool(a, **kw), (xr,), (t,))[1]
    np.testing.assert_allclose(j_got, j_want, atol=1e-6)
    v_got = jax.vmap(jax.grad(lambda a: jnp.sum(layers.max_pool(a[None], **kw) ** 2)))(x)
    v_want = jax.vmap(jax.grad(
        lambda a: jnp.sum(layers.max_pool_reference(a[None], **kw) ** 2)))(x)
    np.testing.assert_array_equal(v_got, v_want)


# -------------------------------------------------------------------------------------------
# Conv with the fast small-Cin input gradient == lax.conv_general_dilated.

NHWC = ("NHWC", "HWIO", "NHWC")
CONV_CASES = [((2, 20, 21, 3), (11, 11, 3, 8), (1, 1), ((2, 2), (2, 2))),
              ((2, 23, 25, 3), (11, 11, 3, 8), (4, 4), ((2, 2), (2, 2))),
              ((2, 9, 9, 3), (3, 3, 3, 5), (1, 1), ((1, 1), (1, 1))),
              ((1, 12, 13, 2), (3, 5, 2, 4), (2, 3), ((0, 1), (2, 0))),
              ((1, 12, 13, 3), (7, 7, 3, 4), (2, 2), ((3, 3), (3, 3)))]


@pytest.mark.parametrize("xs,ws,strides,padding", CONV_CASES)
def test_small_cin_conv_gradients(xs, ws, strides, padding):
    x = jax.random.normal(jax.random.key(0), xs)
    w = jax.random.normal(jax.random.key(1), ws)

    def ref(a, k):
        return lax.conv_general_dilated(a, k, strides, padding, dimension_numbers=NHWC)

    def new(a, k):
        return layers.conv_general_dilated(a, k, strides, padding, dimension_numbers=NHWC)

    y = ref(x, w)
    scale = float(jnp.abs(y).max())
    np.testing.assert_allclose(new(x, w), y, atol=1e-5 * scale)
    ct = jax.random.normal(jax.random.key(2), y.shape)
    for argnums in (0, 1, (0, 1)):
        want = jax.grad(lambda a, k: jnp.sum(ref(a, k) * ct), argnums)(x, w)
        got = jax.jit(jax.grad(lambda a, k: jnp.sum(new(a, k) * ct), argnums))(x, w)
        for g, h in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(g, h, atol=1e-5 * float(jnp.abs(h).max()))
    tx, tw = 0.3 * x, 0.2 * w
    j_want = jax.jvp(ref, (x, w), (tx, tw))[1]
    j_got = jax.jvp(new, (x, w), (tx, tw))[1]
    np.testing.assert_allclose(j_got, j_want, atol=1e-5 * float(jnp.abs(j_want).max()))
    v_want = jax.vmap(jax.grad(lambda a: jnp.sum(ref(a[None], w) ** 2)))(x)
    v_got = jax.vmap(jax.grad(lambda a: jnp.sum(new(a[None], w) ** 2)))(x)
    np.testing.assert_allclose(v_got, v_want, atol=1e-5 * float(jnp.abs(v_want).max()))


def test_conv_falls_back_to_lax_for_wide_inputs():
    x = jax.random.normal(jax.random.key(0), (1, 8, 8, 16))
    w = jax.random.normal(jax.random.key(1), (3, 3, 16, 4))
    jaxpr = jax.make_jaxpr(lambda a: layers.conv_general_dilated(
        a, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=NHWC))(x)
    assert "custom_jvp" not in str(jaxpr)


# -------------------------------------------------------------------------------------------
# Conv straight into BlurPool as one composed strided conv == conv then blur_pool_reference.

CONV_BLUR_CASES = [((2, 64, 64, 3), 11, 1, 2, 3, True, 2),    # ST AlexNet conv1 (direct)
                   ((1, 150, 141, 3), 11, 1, 2, 3, True, 2),  # wide: space-to-depth forward
                   ((2, 33, 34, 3), 11, 2, 2, 3, False, 2),
                   ((2, 20, 21, 3), 5, 1, 0, 3, True, 2),
                   ((2, 16, 17, 6), 3, 1, 1, 5, False, 2),    # Cin > 4: plain lax pieces
                   ((2, 19, 18, 3), 3, 2, 1, 3, True, 3),
                   ((2, 13, 14, 3), 11, 1, 2, 3, True, 2)]


@pytest.mark.parametrize("xs,k,stride,pad,fs,pad_more,bstride", CONV_BLUR_CASES)
def test_conv_blur_equals_conv_then_blur(xs, k, stride, pad, fs, pad_more, bstride):
    x = jax.random.normal(jax.random.key(0), xs)
    w = jax.random.normal(jax.random.key(1), (k, k, xs[-1], 8))
    kw = dict(filter_size=fs, pad_more=pad_more, blur_stride=bstride)
    args = ((stride, stride), ((pad, pad), (pad, pad)))

    def ref(a, b):
        return layers.conv_blur_reference(a, b, *args, dimension_numbers=NHWC, **kw)

    def new(a, b):
        return layers.conv_blur(a, b, *args, dimension_numbers=NHWC, **kw)

    y = ref(x, w)
    got = jax.jit(new)(x, w)
    assert got.shape == y.shape
    np.testing.assert_allclose(got, y, atol=2e-6 * float(jnp.abs(y).max()))
    ct = jax.random.normal(jax.random.key(2), y.shape)
    want = jax.jit(jax.grad(lambda a, b: jnp.sum(ref(a, b) * ct), (0, 1)))(x, w)
    have = jax.jit(jax.grad(lambda a, b: jnp.sum(new(a, b) * ct), (0, 1)))(x, w)
    for g, h in zip(have, want):
        np.testing.assert_allclose(g, h, atol=2e-6 * float(jnp.abs(h).max()))
    t = (0.5 * x, 0.3 * w)
    jvp = jax.jit(lambda f, p, t: jax.jvp(f, p, t)[1], static_argnums=0)
    np.testing.assert_allclose(jvp(new, (x, w), t), jvp(ref, (x, w), t),
                               atol=2e-6 * float(jnp.abs(y).max()))


# -------------------------------------------------------------------------------------------
# The whole metric: the fast paths against the replaced formulas, through jit/grad/vmap.

@pytest.fixture(scope="module")
def tiny_models():
    out = {}
    for net in ("alex", "vgg"):
        for variant in ("shift_tolerant", "lpips"):
            module, variables, _ = bench.load_model(net, variant, "float32", random_init=True)
            out[(net, variant)] = (module, variables)
    return out


@pytest.mark.parametrize("key", [("alex", "shift_tolerant"), ("alex", "lpips"),
                                 ("vgg", "shift_tolerant")])
def test_metric_fast_paths_equal_reference_layers(monkeypatch, tiny_models, key):
    module, variables = tiny_models[key]
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(-1, 1, (2, 37, 41, 3)).astype(np.float32))
    y = jnp.asarray(rng.uniform(-1, 1, (2, 37, 41, 3)).astype(np.float32))

    def dist_and_grad():  # a fresh jitted program: the layers are looked up at trace time
        def run(x, y):
            f = lambda a, b: module.apply(variables, a, b)  # noqa: E731
            return (f(x, y), jax.grad(lambda a: f(a, y).sum())(x),
                    jax.grad(lambda a: f(a, x).sum())(x))
        return jax.jit(run)(x, y)

    fast = dist_and_grad()
    from shiftlpips_jax._src import backbones
    monkeypatch.setattr(backbones.layers, "blur_pool", layers.blur_pool_reference)
    monkeypatch.setattr(backbones.layers, "max_pool", layers.max_pool_reference)
    monkeypatch.setattr(backbones.layers, "conv_general_dilated", lax.conv_general_dilated)
    monkeypatch.setattr(backbones.layers, "conv_blur", layers.conv_blur_reference)
    slow = dist_and_grad()
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-5, atol=1e-7)
    scale = float(jnp.abs(slow[1]).max())
    np.testing.assert_allclose(fast[1], slow[1], atol=1e-4 * scale)
    assert np.all(np.isfinite(fast[2]))  # x == y: finite gradient


def test_cpu_batch_chunks_equal_whole_batch(monkeypatch, tiny_models):
    # The chunking is CPU code (cpu_kernels), chosen when the program is lowered for CPU.
    from shiftlpips_jax._src import cpu_kernels
    assert cpu_kernels.batch_chunks(1, 64, 64) == [(0, 1)]
    bounds = cpu_kernels.batch_chunks(50, 64, 64)
    assert bounds[0] == (0, 10) and bounds[-1][1] == 50 and len(bounds) == 5
    assert len(cpu_kernels.batch_chunks(10_000, 8, 8)) == cpu_kernels.CPU_MAX_CHUNKS
    module, variables = tiny_models[("alex", "shift_tolerant")]
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.uniform(-1, 1, (7, 33, 35, 3)).astype(np.float32))
    y = jnp.asarray(rng.uniform(-1, 1, (7, 33, 35, 3)).astype(np.float32))
    monkeypatch.setattr(cpu_kernels, "batch_chunks", lambda n, h, w: [(0, 3), (3, 5), (5, n)])

    def everything():  # one jitted program per chunking (chunks are chosen at trace time)
        def outputs(x, y):
            apply = lambda *a, **k: module.apply(variables, *a, **k)  # noqa: E731
            return (apply(x, y), apply(x, y, per_layer=True), apply(x, y, spatial=True),
                    apply(x[:1], y), apply(x, y[:1]),
                    apply(x, method=sl.LPIPS.features),
                    jax.grad(lambda a: apply(a, y).sum())(x))
        return jax.jit(outputs)(x, y)

    chunked = everything()
    monkeypatch.setattr(cpu_kernels, "batch_chunks", lambda n, h, w: [(0, n)])
    whole = everything()
    for a, b in zip(jax.tree.leaves(chunked), jax.tree.leaves(whole)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
