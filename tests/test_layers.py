"""The backbones' layers (``_src/layers.py``) against the formulas they replace: BlurPool, max
pooling, the small-Cin and small-map convolutions and conv-into-BlurPool agree with their ``*_reference``
(depthwise conv, ``reduce_window`` with JAX's own derivative, plain ``lax.conv_general_dilated``)
in values, ``jax.grad``, forward mode and ``vmap``; then the whole metric with the fast layers
against the metric with the reference layers.

Every case runs as one jitted program (reference and fast path, value and derivatives together):
op by op, each of the ~100 cases would dispatch and compile dozens of tiny programs.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import shiftlpips_jax as sl
from shiftlpips_jax._src import cpu_kernels, layers

NHWC = ("NHWC", "HWIO", "NHWC")


def _value_grad_jvp(f, x, ct, t):
    """f(x), the VJP of f at x with cotangent ct, and the JVP with tangent t."""
    y, vjp = jax.vjp(f, x)
    return y, vjp(ct)[0], jax.jvp(f, (x,), (t,))[1]


# -------------------------------------------------------------------------------------------
# BlurPool: separable strided slices with a hand-written transpose == depthwise conv.

BLUR_CASES = [(h, w, fs, pm, st) for h, w in ((9, 10), (8, 8), (5, 7), (3, 4))
              for fs in (1, 2, 3, 5) for pm in (False, True) for st in (1, 2, 3)
              if max(layers.blur_pad(fs, pm)) < min(h, w)]


@functools.partial(jax.jit, static_argnames=("filter_size", "pad_more", "stride"))
def _blur_both(x, ct, t, *, filter_size, pad_more, stride):
    kw = dict(filter_size=filter_size, pad_more=pad_more, stride=stride)
    return (_value_grad_jvp(lambda a: layers.blur_pool_reference(a, **kw), x, ct, t),
            _value_grad_jvp(lambda a: layers.blur_pool(a, **kw), x, ct, t))


@pytest.mark.parametrize("h,w,fs,pad_more,stride", BLUR_CASES)
def test_blur_pool_equals_depthwise_conv(h, w, fs, pad_more, stride):
    kw = dict(filter_size=fs, pad_more=pad_more, stride=stride)
    x = jax.random.normal(jax.random.key(0), (2, h, w, 3))
    out_shape = jax.eval_shape(lambda a: layers.blur_pool_reference(a, **kw), x).shape
    assert out_shape == (2, layers.blur_out(h, fs, stride, pad_more),
                         layers.blur_out(w, fs, stride, pad_more), 3)
    ct = jax.random.normal(jax.random.key(1), out_shape)
    t = jax.random.normal(jax.random.key(2), x.shape)
    want, got = _blur_both(x, ct, t, **kw)
    for name, g, h_ in zip(("value", "grad", "jvp"), got, want):
        assert g.shape == h_.shape, name
        np.testing.assert_allclose(g, h_, atol=1e-6, err_msg=name)


def test_blur_pool_vmap_jit_bf16():
    x = jax.random.normal(jax.random.key(0), (3, 2, 11, 9, 4))
    loss = lambda f: jax.grad(lambda a: jnp.sum(f(a, pad_more=True) ** 2))  # noqa: E731
    got = jax.jit(jax.vmap(loss(layers.blur_pool)))(x)
    want = jax.jit(jax.vmap(loss(layers.blur_pool_reference)))(x)
    np.testing.assert_allclose(got, want, atol=1e-6)
    xb = x[0].astype(jnp.bfloat16)
    fast_b, ref_b = jax.jit(lambda a: (layers.blur_pool(a),
                                       layers.blur_pool_reference(a.astype(jnp.float32))))(xb)
    assert fast_b.dtype == jnp.bfloat16
    np.testing.assert_allclose(fast_b.astype(jnp.float32), ref_b, atol=2e-2)


# -------------------------------------------------------------------------------------------
# Max pool: first-argmax mask gradient == jax.grad of lax.reduce_window_max (ties included).

POOL_CASES = [dict(window=3, stride=1), dict(window=3, stride=2, ceil_mode=True),
              dict(window=2, stride=1), dict(window=3, stride=2, padding=1),
              dict(window=2, stride=2), dict(window=1, stride=1)]


@functools.partial(jax.jit, static_argnames=("fn", "kw"))
def _pool_all(x, xr, ct, t, *, fn, kw):
    kw = dict(kw)
    f = lambda a: fn(a, **kw)  # noqa: E731
    y, vjp = jax.vjp(f, x)
    jvp = jax.jvp(f, (xr,), (t,))[1]
    vgrad = jax.vmap(jax.grad(lambda a: jnp.sum(fn(a[None], **kw) ** 2)))(x)
    return y, vjp(ct)[0], jvp, vgrad


@pytest.mark.parametrize("kw", POOL_CASES)
def test_max_pool_gradient_equals_reduce_window(kw):
    x = jax.random.normal(jax.random.key(0), (2, 13, 14, 5))
    x = jnp.round(x * 2) / 2          # many ties inside windows
    x = x.at[0, :4, :4, :].set(0.0)   # a flat (ReLU-dead) region
    # Forward mode: JAX's own rule picks an unspecified element among tied maxima, so the JVP is
    # compared on tie-free input.
    xr = jax.random.normal(jax.random.key(3), x.shape)
    out_shape = jax.eval_shape(lambda a: layers.max_pool_reference(a, **kw), x).shape
    ct = jax.random.normal(jax.random.key(1), out_shape)
    t = jax.random.normal(jax.random.key(2), x.shape)
    frozen = tuple(sorted(kw.items()))
    y_w, g_w, j_w, v_w = _pool_all(x, xr, ct, t, fn=layers.max_pool_reference, kw=frozen)
    y_g, g_g, j_g, v_g = _pool_all(x, xr, ct, t, fn=layers.max_pool, kw=frozen)
    np.testing.assert_array_equal(y_g, y_w)
    np.testing.assert_array_equal(g_g, g_w)
    np.testing.assert_allclose(j_g, j_w, atol=1e-6)
    np.testing.assert_array_equal(v_g, v_w)


# -------------------------------------------------------------------------------------------
# Conv with the fast small-Cin input gradient == lax.conv_general_dilated.

CONV_CASES = [((2, 20, 21, 3), (11, 11, 3, 8), (1, 1), ((2, 2), (2, 2))),
              ((2, 23, 25, 3), (11, 11, 3, 8), (4, 4), ((2, 2), (2, 2))),
              ((2, 9, 9, 3), (3, 3, 3, 5), (1, 1), ((1, 1), (1, 1))),
              ((1, 12, 13, 2), (3, 5, 2, 4), (2, 3), ((0, 1), (2, 0))),
              ((1, 12, 13, 3), (7, 7, 3, 4), (2, 2), ((3, 3), (3, 3)))]


@functools.partial(jax.jit, static_argnames=("conv", "strides", "padding"))
def _conv_all(x, w, ct, *, conv, strides, padding):
    def f(a, k):
        return conv(a, k, strides, padding, dimension_numbers=NHWC)

    y = f(x, w)
    grads = [jax.grad(lambda a, k: jnp.sum(f(a, k) * ct), argnums)(x, w)
             for argnums in (0, 1, (0, 1))]
    jvp = jax.jvp(f, (x, w), (0.3 * x, 0.2 * w))[1]
    vgrad = jax.vmap(jax.grad(lambda a: jnp.sum(f(a[None], w) ** 2)))(x)
    return y, grads, jvp, vgrad


def _assert_conv_matches_lax(xs, ws, strides, padding):
    """``layers.conv_general_dilated`` equals lax (value, grads, jvp, vmap-grad) within 1e-5 of
    each result's scale; returns the random ``x``, ``w`` and lax's results."""
    x = jax.random.normal(jax.random.key(0), xs)
    w = jax.random.normal(jax.random.key(1), ws)
    out_shape = jax.eval_shape(lambda a, k: lax.conv_general_dilated(
        a, k, strides, padding, dimension_numbers=NHWC), x, w).shape
    ct = jax.random.normal(jax.random.key(2), out_shape)
    kw = dict(strides=strides, padding=padding)
    want = _conv_all(x, w, ct, conv=lax.conv_general_dilated, **kw)
    got = _conv_all(x, w, ct, conv=layers.conv_general_dilated, **kw)
    for g, h in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert g.shape == h.shape
        np.testing.assert_allclose(g, h, atol=1e-5 * float(jnp.abs(h).max()))
    return x, w, want


@pytest.mark.parametrize("xs,ws,strides,padding", CONV_CASES)
def test_small_cin_conv_gradients(xs, ws, strides, padding):
    _assert_conv_matches_lax(xs, ws, strides, padding)


def test_conv_falls_back_to_lax_for_wide_inputs():
    # Beyond SMALL_CIN input channels the plain lax convolution (and JAX's derivative) is used.
    x = jax.random.normal(jax.random.key(0), (1, 8, 8, 16))
    w = jax.random.normal(jax.random.key(1), (3, 3, 16, 4))
    jaxpr = jax.make_jaxpr(lambda a: layers.conv_general_dilated(
        a, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=NHWC))(x)
    assert "custom_jvp" not in str(jaxpr)


# -------------------------------------------------------------------------------------------
# Stride-1 convolution over a small map, per kernel tap == lax.conv_general_dilated.

SMALL_MAP_CASES = [((2, 3, 3, 8), (3, 3, 8, 6), ((1, 1), (1, 1))),     # LPIPS alex conv3-5 at 64
                   ((2, 4, 4, 8), (3, 3, 8, 5), ((1, 1), (1, 1))),     # LPIPS VGG last block
                   ((3, 5, 4, 6), (3, 3, 6, 4), ((1, 1), (1, 1))),
                   ((2, 1, 2, 6), (3, 3, 6, 4), ((1, 1), (1, 1))),     # taps that meet padding only
                   ((2, 3, 3, 6), (5, 5, 6, 4), ((2, 2), (2, 2))),
                   ((2, 4, 3, 6), (3, 2, 6, 4), ((0, 1), (2, 0))),     # asymmetric padding
                   ((2, 5, 5, 6), (3, 3, 6, 4), ((0, 0), (0, 0)))]     # VALID


@pytest.mark.parametrize("xs,ws,padding", SMALL_MAP_CASES)
def test_small_map_conv_equals_lax(xs, ws, padding):
    assert max(xs[1:3]) <= cpu_kernels.SMALL_MAP and xs[3] > layers.SMALL_CIN
    x, w, want = _assert_conv_matches_lax(xs, ws, (1, 1), padding)
    # The forward pass is the per-tap form on CPU (dots, no convolution), and in bfloat16 it
    # stays within bfloat16 rounding of the float32 convolution.
    with layers.kernels_for("cpu"):
        jaxpr = str(jax.make_jaxpr(lambda a, k: layers.conv_general_dilated(
            a, k, (1, 1), padding, dimension_numbers=NHWC))(x, w))
    assert "dot_general" in jaxpr
    lo = jax.jit(lambda a, k: layers.conv_general_dilated(
        a, k, (1, 1), padding, dimension_numbers=NHWC))(x.astype(jnp.bfloat16),
                                                        w.astype(jnp.bfloat16))
    assert lo.dtype == jnp.bfloat16
    np.testing.assert_allclose(lo.astype(jnp.float32), want[0],
                               atol=2e-2 * float(jnp.abs(want[0]).max()))


# -------------------------------------------------------------------------------------------
# 3x3 stride-1 convolution with many input channels, Winograd F(2x2, 3x3) == lax.

WINOGRAD_CASES = [((2, 15, 15, 192), (3, 3, 192, 8), ((1, 1), (1, 1))),  # LPIPS alex conv3, 256
                  ((2, 8, 9, 6), (3, 3, 6, 5), ((1, 1), (1, 1))),        # odd width: a cut tile
                  ((3, 7, 6, 6), (3, 3, 6, 4), ((0, 0), (0, 0))),        # VALID
                  ((2, 9, 8, 6), (3, 3, 6, 4), ((2, 0), (1, 3))),        # asymmetric padding
                  ((2, 9, 10, 6), (3, 3, 6, 4), ((-1, 1), (1, -1)))]     # negative padding


@pytest.mark.parametrize("xs,ws,padding", WINOGRAD_CASES)
def test_winograd_conv_equals_lax(xs, ws, padding, monkeypatch):
    # Cases with few channels take the kernel by lowering its threshold.
    monkeypatch.setattr(cpu_kernels, "WINOGRAD_MIN_CIN", min(xs[3], cpu_kernels.WINOGRAD_MIN_CIN))
    assert min(xs[1:3]) > cpu_kernels.SMALL_MAP and xs[3] > layers.SMALL_CIN
    x, w, want = _assert_conv_matches_lax(xs, ws, (1, 1), padding)
    # The forward pass is the Winograd form on CPU (dots, no convolution); bfloat16 inputs stay
    # on the plain convolution.
    def conv(a, k):
        return layers.conv_general_dilated(a, k, (1, 1), padding, dimension_numbers=NHWC)

    with layers.kernels_for("cpu"):
        jaxpr = str(jax.make_jaxpr(conv)(x, w))
        assert jaxpr.count("dot_general") == 16 and "conv_general_dilated" not in jaxpr
        lo = str(jax.make_jaxpr(conv)(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)))
        assert "dot_general" not in lo and "conv_general_dilated" in lo


# -------------------------------------------------------------------------------------------
# Stride-1 5-wide convolution, kernel rows stacked + Winograd F(m, 5) along the width == lax.

WINOGRAD_ROWS_CASES = [((2, 31, 31, 64), (5, 5, 64, 8), ((2, 2), (2, 2))),  # LPIPS alex conv2, 256
                       ((2, 7, 7, 64), (5, 5, 64, 8), ((2, 2), (2, 2))),    # LPIPS alex conv2, 64
                       ((2, 8, 11, 6), (5, 5, 6, 5), ((2, 2), (2, 2))),     # cut last tile
                       ((3, 9, 10, 6), (3, 5, 6, 4), ((0, 0), (0, 0))),     # VALID, 3 rows
                       ((2, 9, 8, 6), (5, 5, 6, 4), ((3, 0), (1, 4))),      # asymmetric padding
                       ((2, 9, 12, 6), (5, 5, 6, 4), ((-1, 1), (2, -1)))]   # negative padding


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("r", [3, 5])
def test_toom_cook_transforms_are_exact(m, r):
    at, g, bt = cpu_kernels.toom_cook(m, r)
    d = np.random.default_rng(m * r).standard_normal((50, m + r - 1))
    f = np.random.default_rng(r).standard_normal((50, r))
    got = np.einsum("ij,nj->ni", at, (f @ g.T) * (d @ bt.T))
    want = np.stack([np.sum(d[:, i:i + r] * f, axis=1) for i in range(m)], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="m \\+ r - 1"):
        cpu_kernels.toom_cook(m + 9, r)


def _forward_only_conv(a, k, *args, **kwargs):
    """``layers.conv_general_dilated`` inside :func:`cpu_kernels.forward_only` (as the LPIPS
    distance runs its layers)."""
    return cpu_kernels.forward_only(
        lambda a, k: layers.conv_general_dilated(a, k, *args, **kwargs), a, k)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("xs,ws,padding", WINOGRAD_ROWS_CASES)
def test_winograd_rows_conv_equals_lax(xs, ws, padding, m, monkeypatch):
    monkeypatch.setattr(cpu_kernels, "WINOGRAD_ROWS_MIN_CIN", min(xs[3], 32))
    monkeypatch.setattr(cpu_kernels, "WINOGRAD_ROWS_MIN_MAP", 1)
    monkeypatch.setattr(cpu_kernels, "WINOGRAD_ROWS_TILE", m)
    monkeypatch.setattr(cpu_kernels, "WINOGRAD_ROWS_WIDTHS", (5,))
    assert min(xs[1:3]) > cpu_kernels.SMALL_MAP and xs[3] > layers.SMALL_CIN
    x = jax.random.normal(jax.random.key(0), xs)
    w = jax.random.normal(jax.random.key(1), ws)
    ct = jax.random.normal(jax.random.key(2), jax.eval_shape(
        lambda a, k: lax.conv_general_dilated(a, k, (1, 1), padding, dimension_numbers=NHWC),
        x, w).shape)
    want = _conv_all(x, w, ct, conv=lax.conv_general_dilated, strides=(1, 1), padding=padding)
    # The kernel called directly (its own derivative rule) and as the distance runs it.
    for conv in (lambda a, k, strides, pads, **_: cpu_kernels.conv_winograd_rows(a, k, pads, None),
                 _forward_only_conv):
        got = _conv_all(x, w, ct, conv=conv, strides=(1, 1), padding=padding)
        for g, h in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(g, h, atol=1e-5 * float(jnp.abs(h).max()))

    def conv(a, k):
        return layers.conv_general_dilated(a, k, (1, 1), padding, dimension_numbers=NHWC)

    with layers.kernels_for("cpu"):
        # In evaluation: one batched dot over the m + 4 Winograd points (no convolution).
        fwd = str(jax.make_jaxpr(lambda a, k: cpu_kernels.forward_only(conv, a, k))(x, w))
        assert fwd.count("dot_general") == 1 and "conv_general_dilated" not in fwd
        # Differentiated, and outside forward_only: XLA's convolution only.
        for fn in (jax.grad(lambda a, k: jnp.sum(cpu_kernels.forward_only(conv, a, k) * ct)),
                   lambda a, k: jax.jvp(lambda b: cpu_kernels.forward_only(conv, b, k),
                                        (a,), (a,)),
                   conv):
            jaxpr = str(jax.make_jaxpr(fn)(x, w))
            assert "dot_general" not in jaxpr and "conv_general_dilated" in jaxpr
        # bfloat16 inputs, and maps narrower than WINOGRAD_ROWS_MIN_MAP, stay on the plain one.
        lo = str(jax.make_jaxpr(lambda a, k: cpu_kernels.forward_only(conv, a, k))(
            x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)))
        assert "dot_general" not in lo and "conv_general_dilated" in lo
        monkeypatch.setattr(cpu_kernels, "WINOGRAD_ROWS_MIN_MAP", min(xs[1:3]) + 1)
        small = str(jax.make_jaxpr(lambda a, k: cpu_kernels.forward_only(conv, a, k))(x, w))
        assert "dot_general" not in small and "conv_general_dilated" in small


# -------------------------------------------------------------------------------------------
# bfloat16 stride-1 convolutions as row-stacked matmuls (float32 sums) == lax in bf16.

BF16_ROWS_CASES = [((2, 15, 15, 64), (5, 5, 64, 192), ((2, 2), (2, 2))),    # ST alex conv2, 64
                   ((2, 8, 8, 24), (3, 3, 24, 64), ((1, 1), (1, 1))),       # blocks of 2 columns
                   ((2, 9, 11, 8), (3, 3, 8, 64), ((1, 1), (1, 1))),        # odd width: cut block
                   ((3, 9, 10, 8), (3, 5, 8, 72), ((0, 0), (0, 0))),        # VALID, 3 rows
                   ((2, 9, 8, 8), (5, 5, 8, 96), ((3, 0), (1, 4))),         # asymmetric padding
                   ((2, 9, 12, 8), (5, 5, 8, 128), ((-1, 1), (2, -1)))]     # negative padding


def _assert_close_bf16(got, want, rel):
    for g, h in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert g.shape == h.shape and g.dtype == h.dtype
        g, h = np.asarray(g, np.float32), np.asarray(h, np.float32)
        np.testing.assert_allclose(g, h, atol=rel * float(np.abs(h).max()))


@pytest.mark.parametrize("xs,ws,padding", BF16_ROWS_CASES)
def test_bf16_rows_conv_equals_lax(xs, ws, padding, monkeypatch):
    monkeypatch.setattr(cpu_kernels, "BF16_ROWS", True)   # whatever this CPU has
    assert min(xs[1:3]) > cpu_kernels.SMALL_MAP and ws[3] >= cpu_kernels.BF16_ROWS_MIN_COUT
    x = jax.random.normal(jax.random.key(0), xs).astype(jnp.bfloat16)
    w = (jax.random.normal(jax.random.key(1), ws) / np.sqrt(np.prod(ws[:3]))).astype(jnp.bfloat16)
    ct = jax.random.normal(jax.random.key(2), jax.eval_shape(
        lambda a, k: lax.conv_general_dilated(a, k, (1, 1), padding, dimension_numbers=NHWC),
        x, w).shape)
    kw = dict(strides=(1, 1), padding=padding)
    # Value, gradients (x, w, both), jvp and vmap-grad: bf16 inputs and outputs, within bf16
    # rounding of XLA's bf16 convolution and of the float32 one.
    want = _conv_all(x, w, ct, conv=lax.conv_general_dilated, **kw)
    got = _conv_all(x, w, ct, conv=layers.conv_general_dilated, **kw)
    _assert_close_bf16(got, want, 2e-2)
    y32 = lax.conv_general_dilated(x.astype(jnp.float32), w.astype(jnp.float32), (1, 1), padding,
                                   dimension_numbers=NHWC)
    np.testing.assert_allclose(np.asarray(got[0], np.float32), y32,
                               atol=1e-2 * float(jnp.abs(y32).max()))

    def conv(a, k):
        return layers.conv_general_dilated(a, k, (1, 1), padding, dimension_numbers=NHWC)

    with layers.kernels_for("cpu"):
        # The forward pass is matmuls (kh of them), its derivatives XLA's convolution; float32
        # inputs do not take it.
        fwd = str(jax.make_jaxpr(conv)(x, w))
        assert fwd.count("dot_general") == ws[0] and "conv_general_dilated" not in fwd
        grad = str(jax.make_jaxpr(jax.grad(lambda a: jnp.sum(conv(a, w) * ct)))(x))
        assert "conv_general_dilated" in grad
        f32 = str(jax.make_jaxpr(conv)(x.astype(jnp.float32), w.astype(jnp.float32)))
        assert "bitcast_convert_type" not in f32
        monkeypatch.setattr(cpu_kernels, "BF16_ROWS", False)   # a CPU without bf16 dot units
        # (a new function: make_jaxpr reuses the trace of one it has seen)
        assert "dot_general" not in str(jax.make_jaxpr(lambda a, k: conv(a, k))(x, w))
    monkeypatch.setattr(cpu_kernels, "BF16_ROWS", None)
    assert cpu_kernels.bf16_rows_enabled() == cpu_kernels._host_has_bf16_dot()


@pytest.mark.parametrize("xs,ws", [((2, 70, 71, 3), (13, 13, 3, 64)),   # ST alex conv1 at 64
                                   ((1, 27, 30, 3), (13, 13, 3, 8))])
def test_bf16_stride2_conv_equals_lax(xs, ws, monkeypatch):
    monkeypatch.setattr(cpu_kernels, "BF16_ROWS", True)
    # The composed conv1 + BlurPool (stride 2, 3 channels) in bf16: space-to-depth, then the
    # row-stacked matmuls; gradients through the space-to-depth form.
    x = jax.random.normal(jax.random.key(0), xs).astype(jnp.bfloat16)
    w = (jax.random.normal(jax.random.key(1), ws) / 20).astype(jnp.bfloat16)

    def plain(a, k):
        return lax.conv_general_dilated(a, k, (2, 2), ((0, 0), (0, 0)), dimension_numbers=NHWC)

    ct = jax.random.normal(jax.random.key(2), jax.eval_shape(plain, x, w).shape)

    @functools.partial(jax.jit, static_argnames="conv")
    def results(a, k, conv):
        return (conv(a, k), jax.grad(lambda u, v: jnp.sum(conv(u, v) * ct), (0, 1))(a, k),
                jax.jvp(conv, (a, k), (a, k))[1])

    _assert_close_bf16(results(x, w, layers.conv_stride2), results(x, w, plain), 2e-2)
    with layers.kernels_for("cpu"):
        fwd = str(jax.make_jaxpr(layers.conv_stride2)(x, w))
        assert "dot_general" in fwd and "conv_general_dilated" not in fwd
        monkeypatch.setattr(cpu_kernels, "BF16_ROWS", False)   # a CPU without bf16 dot units
        fwd = str(jax.make_jaxpr(lambda a, k: layers.conv_stride2(a, k))(x, w))
        assert "dot_general" not in fwd and "conv_general_dilated" in fwd


def test_distance_derivatives_do_not_see_forward_only_kernels(monkeypatch):
    # LPIPS alex (random weights) with conv2 on the row-stacked Winograd kernel: the forward
    # differs from the plain convolution's by its rounding, the input gradient (and a jvp's
    # primal and tangent) not at all, since no part of a derivative takes it.
    monkeypatch.setattr(cpu_kernels, "WINOGRAD_ROWS_MIN_MAP", 1)
    model = sl.LPIPS(net=sl.make_backbone("alex", "vanilla"))
    x = jax.random.uniform(jax.random.key(0), (2, 64, 64, 3), minval=-1, maxval=1)
    y = jnp.clip(x + 0.1 * jax.random.normal(jax.random.key(1), x.shape), -1, 1)
    variables = model.init(jax.random.key(2), x, y)

    def results():
        d = jax.jit(lambda p, a, b: model.apply(p, a, b))(variables, x, y)
        g = jax.jit(jax.grad(lambda p, a, b: model.apply(p, a, b).sum(), argnums=(0, 1)))(
            variables, x, y)
        t = jax.jit(lambda p, a, b: jax.jvp(lambda c: model.apply(p, c, b), (a,), (y,)))(
            variables, x, y)
        return d, g, t

    with_rows = results()
    monkeypatch.setattr(cpu_kernels, "WINOGRAD_ROWS_MIN_CIN", 1 << 30)
    without = results()
    d1, d0 = with_rows[0], without[0]
    assert 0 < float(jnp.abs(d1 - d0).max()) < 1e-5 * float(jnp.abs(d0).max())
    for a, b in zip(jax.tree.leaves(with_rows[1:]), jax.tree.leaves(without[1:])):
        np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------------------------------------
# Conv straight into BlurPool as one composed strided conv == conv then blur_pool_reference.

CONV_BLUR_CASES = [((2, 64, 64, 3), 11, 1, 2, 3, True, 2),    # ST AlexNet conv1 (direct)
                   ((1, 150, 141, 3), 11, 1, 2, 3, True, 2),  # wide: space-to-depth forward
                   ((2, 33, 34, 3), 11, 2, 2, 3, False, 2),
                   ((2, 20, 21, 3), 5, 1, 0, 3, True, 2),
                   ((2, 16, 17, 6), 3, 1, 1, 5, False, 2),    # Cin > 4: plain lax pieces
                   ((2, 19, 18, 3), 3, 2, 1, 3, True, 3),
                   ((2, 13, 14, 3), 11, 1, 2, 3, True, 2)]


@functools.partial(jax.jit, static_argnames=("conv", "args", "kw"))
def _conv_blur_all(x, w, ct, *, conv, args, kw):
    def f(a, b):
        return conv(a, b, *args, dimension_numbers=NHWC, **dict(kw))

    y = f(x, w)
    grads = jax.grad(lambda a, b: jnp.sum(f(a, b) * ct), (0, 1))(x, w)
    jvp = jax.jvp(f, (x, w), (0.5 * x, 0.3 * w))[1]
    return y, grads, jvp


@pytest.mark.parametrize("xs,k,stride,pad,fs,pad_more,bstride", CONV_BLUR_CASES)
def test_conv_blur_equals_conv_then_blur(xs, k, stride, pad, fs, pad_more, bstride):
    x = jax.random.normal(jax.random.key(0), xs)
    w = jax.random.normal(jax.random.key(1), (k, k, xs[-1], 8))
    kw = (("blur_stride", bstride), ("filter_size", fs), ("pad_more", pad_more))
    args = ((stride, stride), ((pad, pad), (pad, pad)))
    out_shape = jax.eval_shape(lambda a, b: layers.conv_blur_reference(
        a, b, *args, dimension_numbers=NHWC, **dict(kw)), x, w).shape
    ct = jax.random.normal(jax.random.key(2), out_shape)
    y, g_want, j_want = _conv_blur_all(x, w, ct, conv=layers.conv_blur_reference, args=args,
                                       kw=kw)
    got, g_got, j_got = _conv_blur_all(x, w, ct, conv=layers.conv_blur, args=args, kw=kw)
    scale = float(jnp.abs(y).max())
    assert got.shape == y.shape
    np.testing.assert_allclose(got, y, atol=2e-6 * scale)
    for g, h in zip(g_got, g_want):
        np.testing.assert_allclose(g, h, atol=2e-6 * float(jnp.abs(h).max()))
    np.testing.assert_allclose(j_got, j_want, atol=2e-6 * scale)


# -------------------------------------------------------------------------------------------
# The whole metric: the fast layers against the reference layers, through jit/grad/vmap.

@pytest.fixture(scope="module")
def tiny_models():
    """Randomly initialised LPIPS models (speed and agreement do not depend on the values);
    heads made non-negative, as learned heads are."""
    out = {}
    for net, variant, trunk in (("alex", "shift_tolerant", "shift_tolerant"),
                                ("alex", "lpips", "vanilla"),
                                ("vgg", "shift_tolerant", "shift_tolerant")):
        module = sl.LPIPS(net=sl.make_backbone(net, trunk))
        x = jnp.zeros((1, 64, 64, 3), jnp.float32)
        variables = module.init(jax.random.key(0), x, x)
        variables = jax.tree_util.tree_map_with_path(
            lambda path, a: jnp.abs(a) if "lin" in jax.tree_util.keystr(path) else a, variables)
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


def test_cpu_batch_chunks_equal_whole_batch(tiny_models):
    # On CPU a big evaluation batch runs chunk by chunk; each image seen alone (batch 1, never
    # cut) must give the same distances, maps, features and input gradient.
    from shiftlpips_jax._src import lpips
    assert lpips.batch_chunks(1, 64, 64) == [(0, 1)]
    n = 12                                   # 12 images of 64x64: 2 chunks on CPU
    if jax.default_backend() == "cpu":
        assert lpips.batch_chunks(n, 64, 64) == [(0, 6), (6, 12)]
    module, variables = tiny_models[("alex", "shift_tolerant")]
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.uniform(-1, 1, (n, 64, 64, 3)).astype(np.float32))
    y = jnp.asarray(rng.uniform(-1, 1, (n, 64, 64, 3)).astype(np.float32))

    def outputs(x, y):
        apply = lambda *a, **k: module.apply(variables, *a, **k)  # noqa: E731
        return (apply(x, y), apply(x, y, per_layer=True)[1], apply(x, y, spatial=True),
                apply(x, method=sl.LPIPS.features),
                jax.grad(lambda a: apply(a, y).sum())(x))

    whole = jax.jit(outputs)(x, y)
    one_by_one = jax.jit(jax.vmap(lambda a, b: jax.tree.map(
        lambda o: o[0], outputs(a[None], b[None]))))(x, y)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(one_by_one)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # A batch-1 side broadcasts against the chunked side.
    bcast = jax.jit(lambda a, b: module.apply(variables, a, b))(x[:1], y)
    np.testing.assert_allclose(bcast, jax.jit(jax.vmap(
        lambda b: module.apply(variables, x[:1], b[None])[0]))(y), rtol=1e-5, atol=1e-7)


def test_cpu_chunks_follow_first_tap_size(monkeypatch, tiny_models):
    """A trunk that shrinks the image early (LPIPS alex, stride-4 conv1) gets fewer, larger
    chunks; trunks whose first tap is large keep the pixel rule; the cut never changes values."""
    from shiftlpips_jax._src import cpu_kernels, lpips
    assert cpu_kernels.batch_chunks(50, 64, 64, tap_values=15 * 15 * 64) == [(0, 25), (25, 50)]
    assert cpu_kernels.batch_chunks(50, 64, 64, tap_values=30 * 30 * 64) == \
        cpu_kernels.batch_chunks(50, 64, 64)
    assert cpu_kernels.batch_chunks(4, 256, 256, tap_values=256 * 256 * 64) == \
        [(0, 1), (1, 2), (2, 3), (3, 4)]
    # Evaluation (no derivative): the pixel rule (for a small first tap, as LPIPS alex's, chunks
    # of 9 images of 64x64 instead of 10), except that large images are grouped by first-tap
    # values (LPIPS alex at 256x256: one chunk; ST-LPIPS alex's larger tap: one each).
    assert cpu_kernels.batch_chunks(50, 64, 64, tap_values=15 * 15 * 64, evaluation=True) == \
        [(0, 9), (9, 18), (18, 27), (27, 36), (36, 45), (45, 50)]
    assert cpu_kernels.batch_chunks(50, 64, 64, tap_values=32 * 32 * 64, evaluation=True) == \
        cpu_kernels.batch_chunks(50, 64, 64) == [(a, a + 10) for a in range(0, 50, 10)]
    assert cpu_kernels.batch_chunks(4, 256, 256, tap_values=63 * 63 * 64, evaluation=True) == \
        [(0, 4)]
    assert cpu_kernels.batch_chunks(4, 256, 256, tap_values=63 * 63 * 64) == [(0, 2), (2, 4)]
    assert cpu_kernels.batch_chunks(4, 256, 256, tap_values=128 * 128 * 64, evaluation=True) == \
        [(0, 1), (1, 2), (2, 3), (3, 4)]
    module, variables = tiny_models[("alex", "lpips")]
    assert lpips._first_tap_values(module.net, 64, 64) == 15 * 15 * module.net.channels[0]
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.uniform(-1, 1, (6, 64, 64, 3)).astype(np.float32))
    y = jnp.asarray(rng.uniform(-1, 1, (6, 64, 64, 3)).astype(np.float32))

    def run():
        f = lambda a: module.apply(variables, a, y)  # noqa: E731
        return jax.jit(lambda a: (f(a), jax.grad(lambda b: f(b).sum())(a)))(x)

    monkeypatch.setattr(cpu_kernels, "CPU_MAX_CHUNKS", 1)
    whole = run()
    monkeypatch.setattr(cpu_kernels, "CPU_MAX_CHUNKS", 8)
    monkeypatch.setattr(cpu_kernels, "CPU_CHUNK_PIXELS", 1)
    monkeypatch.setattr(cpu_kernels, "CPU_CHUNK_VALUES", 2 * 15 * 15 * module.net.channels[0])
    if jax.default_backend() == "cpu":
        assert len(lpips._eval_chunks(x, 6, module.net)) == 3
    chunked = run()
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_cpu_evaluation_and_gradient_take_their_own_chunk_rules(monkeypatch, tiny_models):
    """The distance's evaluation cuts its batch by the evaluation rule, its derivative (any part
    of it) by the derivative rule; both give the values of the uncut batch."""
    if jax.default_backend() != "cpu":
        pytest.skip("batch chunks are CPU-only")
    from shiftlpips_jax._src import cpu_kernels
    module, variables = tiny_models[("alex", "lpips")]
    seen = []
    real = cpu_kernels.batch_chunks

    def recording(*args, **kwargs):
        cut = real(*args, **kwargs)
        seen.append((bool(kwargs.get("evaluation", False)), len(cut)))
        return cut

    monkeypatch.setattr(cpu_kernels, "batch_chunks", recording)
    # Evaluation in chunks of 2 images (3 chunks), derivatives in chunks of 3 (2 chunks).
    monkeypatch.setattr(cpu_kernels, "CPU_CHUNK_PIXELS", 2 * 64 * 64)
    monkeypatch.setattr(cpu_kernels, "CPU_EVAL_SMALL_TAP_PIXELS", 2 * 64 * 64)
    monkeypatch.setattr(cpu_kernels, "CPU_CHUNK_VALUES", 3 * 15 * 15 * module.net.channels[0])
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.uniform(-1, 1, (6, 64, 64, 3)).astype(np.float32))
    y = jnp.asarray(rng.uniform(-1, 1, (6, 64, 64, 3)).astype(np.float32))
    f = lambda a: module.apply(variables, a, y)  # noqa: E731
    d = jax.jit(f)(x)
    assert seen == [(True, 3)]
    seen.clear()
    g = jax.jit(jax.grad(lambda a: f(a).sum()))(x)
    assert seen and all(s == (False, 2) for s in seen), seen
    monkeypatch.setattr(cpu_kernels, "CPU_MAX_CHUNKS", 1)
    np.testing.assert_allclose(d, jax.jit(f)(x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g, jax.jit(jax.grad(lambda a: f(a).sum()))(x),
                               rtol=1e-5, atol=1e-6 * float(jnp.abs(g).max()))
