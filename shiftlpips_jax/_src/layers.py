"""Anti-aliasing building blocks (NHWC): binomial BlurPool, max pooling, size arithmetic.

BlurPool (Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019) low-pass
filters with a normalised binomial kernel before subsampling; ST-LPIPS uses it with reflection
padding of ``(k-1)//2`` (or ``k-1`` with ``pad_more``) and stride 2. The filter is a constant, not
a parameter, so it never enters a parameter tree (converters check that a checkpoint's ``filt``
buffer equals :func:`binomial_filter2d`).

Example::

    y = blur_pool(x, filter_size=3, stride=2, pad_more=True)   # (N, H, W, C) -> (N, ~H/2, ~W/2, C)
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "binomial_filter",
    "binomial_filter2d",
    "blur_pad",
    "blur_pool",
    "blur_pool_reference",
    "max_pool",
    "max_pool_reference",
    "conv_blur",
    "conv_blur_reference",
    "conv_general_dilated",
    "conv_out",
    "pool_out",
    "blur_out",
]


def binomial_filter(size: int) -> np.ndarray:
    """The normalised 1-D binomial filter of ``size`` taps (size 3 -> [1, 2, 1] / 4)."""
    if not 1 <= size <= 7:
        raise ValueError(f"blur filter size must be in 1..7, got {size}")
    taps = np.array([math.comb(size - 1, k) for k in range(size)], dtype=np.float64)
    return taps / taps.sum()


def binomial_filter2d(size: int) -> np.ndarray:
    """The normalised 2-D binomial filter (outer product), shape (size, size), float32."""
    a = np.array([math.comb(size - 1, k) for k in range(size)], dtype=np.float64)
    f = a[:, None] * a[None, :]
    return (f / f.sum()).astype(np.float32)


def blur_pad(filter_size: int, pad_more: bool) -> tuple[int, int]:
    """(before, after) reflection padding of a BlurPool layer, as upstream ``Downsample``."""
    if pad_more:
        return filter_size - 1, filter_size - 1
    return (filter_size - 1) // 2, math.ceil((filter_size - 1) / 2)


def _reflect_index(r: int, n: int) -> int:
    """Index ``r`` of a length-``n`` axis after reflection padding (NumPy ``reflect``)."""
    if n == 1:
        return 0
    while r < 0 or r > n - 1:
        r = -r if r < 0 else 2 * (n - 1) - r
    return r


def _filter_axis(x: jax.Array, taps: tuple[float, ...], stride: int, pad: tuple[int, int],
                 axis: int) -> jax.Array:
    """1-D FIR filter along ``axis`` of the reflection-padded ``x``, subsampled by ``stride``.

    The padded array is never built: outputs whose taps all fall inside ``x`` are strided-slice
    adds of ``x``; the few border outputs read their reflected rows with unit slices and are
    concatenated on. XLA fuses this into one loop.
    """
    n, size = x.shape[axis], len(taps)
    lo, hi = pad
    out = (n + lo + hi - size) // stride + 1
    first = -(-lo // stride)                                  # first output with r >= 0
    last = min(out - 1, (n - 1 - (size - 1) + lo) // stride)  # last output with r <= n - 1
    pieces = []

    def border(o):
        acc = None
        for k in range(size):
            r = _reflect_index(o * stride + k - lo, n)
            term = lax.slice_in_dim(x, r, r + 1, 1, axis) * taps[k]
            acc = term if acc is None else acc + term
        return acc

    pieces += [border(o) for o in range(0, min(first, out))]
    if last >= first:
        count = last - first + 1

        def tap(k):
            start = first * stride + k - lo
            return lax.slice_in_dim(x, start, start + (count - 1) * stride + 1, stride, axis)

        acc = None
        for k in range((size + 1) // 2):  # symmetric taps: one multiply per pair
            term = tap(k) if k == size - 1 - k else tap(k) + tap(size - 1 - k)
            term = term * taps[k]
            acc = term if acc is None else acc + term
        pieces.append(acc)
    pieces += [border(o) for o in range(max(last + 1, first, 0), out)]
    return pieces[0] if len(pieces) == 1 else lax.concatenate(pieces, axis)


def _filter_axis_transpose(g: jax.Array, taps: tuple[float, ...], stride: int,
                           pad: tuple[int, int], axis: int, n: int) -> jax.Array:
    """The transpose of :func:`_filter_axis` (cotangent of the output -> of the input, length n).

    Written by hand because JAX's automatic transpose of the forward (full-size interior pads,
    one per tap and border row) is 5-10x slower on XLA:CPU. Each stride phase of the padded
    input is a sum of unit-stride shifted slices of ``g``; the phases interleave by a reshape and
    the reflected border rows fold back onto the rows they were copied from.
    """
    lo, hi = pad
    size, out = len(taps), g.shape[axis]
    span = max((out - 1) * stride + size, n + lo + hi)
    rows = -(-span // stride)                       # padded positions per phase
    reach = -(-size // stride)
    zero = jnp.zeros((), g.dtype)
    config = [(0, 0, 0)] * g.ndim
    config[axis] = (reach, rows, 0)
    gz = lax.pad(g, zero, config)
    phases = []
    for p in range(stride):
        # padded position rows*? : q = m * stride + p receives taps k = p + j * stride from
        # output m - j.
        acc = None
        for k in range(p, size, stride):
            j = (k - p) // stride
            term = lax.slice_in_dim(gz, reach - j, reach - j + rows, 1, axis) * taps[k]
            acc = term if acc is None else acc + term
        if acc is None:
            acc = jnp.zeros(g.shape[:axis] + (rows,) + g.shape[axis + 1:], g.dtype)
        phases.append(acc)
    y = phases[0] if stride == 1 else jnp.stack(phases, axis + 1).reshape(
        g.shape[:axis] + (rows * stride,) + g.shape[axis + 1:])
    res = lax.slice_in_dim(y, lo, lo + n, 1, axis)
    for q in list(range(lo)) + list(range(lo + n, lo + n + hi)):
        r = _reflect_index(q - lo, n)
        config = [(0, 0, 0)] * g.ndim
        config[axis] = (r, n - 1 - r, 0)
        res = res + lax.pad(lax.slice_in_dim(y, q, q + 1, 1, axis), zero, config)
    return res


def _blur_forward(x, taps, stride, pad):
    dtype = x.dtype
    y = _filter_axis(x.astype(jnp.promote_types(dtype, jnp.float32)), taps, stride, pad, 1)
    return _filter_axis(y, taps, stride, pad, 2).astype(dtype)


def _blur_transpose(g, taps, stride, pad, in_hw):
    dtype = g.dtype
    y = _filter_axis_transpose(g.astype(jnp.promote_types(dtype, jnp.float32)), taps, stride, pad,
                               2, in_hw[1])
    return _filter_axis_transpose(y, taps, stride, pad, 1, in_hw[0]).astype(dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def _blur(x, taps, stride, pad):
    return _blur_forward(x, taps, stride, pad)


@_blur.defjvp
def _blur_jvp(taps, stride, pad, primals, tangents):
    """Blur is linear; its tangent map is written as the transpose of the hand-written transpose.

    Reverse mode transposes the tangent map again, so ``jax.grad`` runs
    :func:`_blur_transpose` itself (~5x faster than the automatic transpose), while the
    primal keeps the fast fused forward and forward mode stays available.
    """
    (x,), (t,) = primals, tangents
    y = _blur_forward(x, taps, stride, pad)
    transpose = jax.linear_transpose(
        lambda g: _blur_transpose(g, taps, stride, pad, x.shape[1:3]),
        jax.ShapeDtypeStruct(y.shape, t.dtype))
    return y, transpose(t)[0]


def blur_pool(x: jax.Array, *, filter_size: int = 3, stride: int = 2,
              pad_more: bool = False) -> jax.Array:
    """Reflection-pads, blurs each channel with the binomial filter, subsamples by ``stride``.

    The 2-D binomial filter is separable, so this runs as two 1-D passes (rows, then columns)
    of strided-slice adds that read the reflected border in place, with a hand-written transpose
    for gradients; it equals :func:`blur_pool_reference` (the depthwise convolution upstream
    runs) up to float rounding. A depthwise ``conv_general_dilated`` (``feature_group_count=C``)
    is ~10x slower forward and backward on XLA:CPU. Low-precision inputs are filtered in float32
    and cast back.

    Args:
      x: (N, H, W, C) features.
      filter_size: binomial filter taps (3 = [1, 2, 1]).
      stride: subsampling factor.
      pad_more: pad ``filter_size - 1`` on each side instead of ``(filter_size - 1) // 2``.

    Returns:
      (N, H', W', C) with H' = (H + pad_total - filter_size) // stride + 1.
    """
    taps = tuple(float(t) for t in binomial_filter(filter_size))
    return _blur(x, taps, stride, blur_pad(filter_size, pad_more))


def blur_pool_reference(x: jax.Array, *, filter_size: int = 3, stride: int = 2,
                        pad_more: bool = False) -> jax.Array:
    """:func:`blur_pool` as upstream computes it: a depthwise conv with the 2-D filter (tests)."""
    lo, hi = blur_pad(filter_size, pad_more)
    x = jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode="reflect")
    if filter_size == 1:
        return x[:, ::stride, ::stride, :]
    channels = x.shape[-1]
    kernel = jnp.asarray(binomial_filter2d(filter_size), dtype=x.dtype)
    kernel = jnp.broadcast_to(kernel[:, :, None, None], (filter_size, filter_size, 1, channels))
    return lax.conv_general_dilated(
        x, kernel, window_strides=(stride, stride), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)


def _pool_pads(h: int, w: int, window: int, stride: int, padding: int,
               ceil_mode: bool) -> tuple[tuple[int, int], tuple[int, int]]:
    pads = []
    for size in (h, w):
        out = pool_out(size, window, stride, padding, ceil_mode)
        extra = (out - 1) * stride + window - (size + 2 * padding)
        pads.append((padding, padding + max(extra, 0)))
    return pads[0], pads[1]


def _reduce_window_max(x, window, stride, pads):
    # A Python-scalar -inf init makes this lax.reduce_window_max (differentiable by JAX).
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1),
                             ((0, 0), pads[0], pads[1], (0, 0)))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def _max_pool(x, window, stride, pads):
    return _reduce_window_max(x, window, stride, pads)


@_max_pool.defjvp
def _max_pool_jvp(window, stride, pads, primals, tangents):
    """Tangent = the input tangent at each window's first maximum (row-major), as PyTorch.

    JAX's own rule for reduce_window_max transposes to ``select_and_scatter_add``, a scalar loop
    on XLA:CPU (~10x the forward pool). Here the argmax is one int8 map computed with the forward,
    and the tangent a sum of masked strided slices, whose transpose (the gradient) is a sum of
    masked interior-padded adds that XLA fuses into one loop.
    """
    (x,), (t,) = primals, tangents
    y = _reduce_window_max(x, window, stride, pads)
    full = ((0, 0), pads[0], pads[1], (0, 0))
    xp = jnp.pad(x, full, constant_values=-jnp.inf)
    tp = jnp.pad(t, full)
    ho, wo = y.shape[1], y.shape[2]

    def window_slice(a, i, j):
        return lax.slice(a, (0, i, j, 0),
                         (a.shape[0], i + (ho - 1) * stride + 1, j + (wo - 1) * stride + 1,
                          a.shape[3]), (1, stride, stride, 1))

    offsets = [(i, j) for i in range(window) for j in range(window)]
    # First offset (in row-major window order) holding the maximum: PyTorch's and XLA's choice.
    first = jnp.full(y.shape, len(offsets), jnp.int8)
    for k in reversed(range(len(offsets))):
        first = jnp.where(window_slice(xp, *offsets[k]) == y, jnp.int8(k), first)
    t_out = None
    for k, (i, j) in enumerate(offsets):
        term = jnp.where(first == k, window_slice(tp, i, j), jnp.zeros((), t.dtype))
        t_out = term if t_out is None else t_out + term
    return y, t_out


def max_pool(x: jax.Array, *, window: int, stride: int, padding: int = 0,
             ceil_mode: bool = False) -> jax.Array:
    """PyTorch ``MaxPool2d`` semantics on NHWC input (implicit -inf padding, optional ceil mode).

    Differentiable (forward and reverse mode); the gradient goes to each window's first maximum,
    as PyTorch's and ``jax.grad`` of :func:`max_pool_reference`, computed without
    ``select_and_scatter`` (see ``_max_pool_jvp``).
    """
    pads = _pool_pads(x.shape[1], x.shape[2], window, stride, padding, ceil_mode)
    if window == 1:
        return _reduce_window_max(x, window, stride, pads)
    return _max_pool(x, window, stride, pads)


def max_pool_reference(x: jax.Array, *, window: int, stride: int, padding: int = 0,
                       ceil_mode: bool = False) -> jax.Array:
    """:func:`max_pool` with JAX's built-in reduce_window_max derivative (for tests)."""
    pads = _pool_pads(x.shape[1], x.shape[2], window, stride, padding, ceil_mode)
    return _reduce_window_max(x, window, stride, pads)


# Convolution with a fast input gradient for few input channels (the image-facing conv).

_NHWC = ("NHWC", "HWIO", "NHWC")
SMALL_CIN = 4  # input channels up to which conv_general_dilated takes the custom input gradient


def _conv_direct(x, w, strides, padding, precision):
    return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_NHWC,
                                    precision=precision)


def _conv_input_transpose(g, w, strides, padding, precision, in_hw):
    """d/dx <g, conv(x, w)> for NHWC/HWIO ``x``, ``w``: a (1, kw) transposed convolution over W
    giving kh*Cin channels, then a fold of the kh row offsets (strided adds over H).

    XLA's own input gradient is one convolution with Cin (= 3) output channels, whose
    im2col-style contraction reads every (kh, kw, Cout) patch for just 3 outputs: 5-6x slower
    than the forward on XLA:CPU for AlexNet's 11x11 conv1. Here the contraction has kh*Cin (33)
    outputs and the fold is cheap elementwise work.
    """
    kh, kw, cin, cout = w.shape
    sh, sw = strides
    (pt, pb), (pl, pr) = padding
    n, ho, wo, _ = g.shape
    hp, wp = in_hw[0] + pt + pb, in_hw[1] + pl + pr
    # (1, kw, Cout, kh*Cin): spatially flipped along W, the kh offsets become output channels.
    wt = jnp.transpose(w[:, ::-1], (1, 3, 0, 2)).reshape(1, kw, cout, kh * cin)
    right = wp - ((wo - 1) * sw + kw)  # input columns no output window reaches
    t = lax.conv_general_dilated(g, wt, (1, 1), ((0, 0), (kw - 1, kw - 1 + right)),
                                 lhs_dilation=(1, sw), dimension_numbers=_NHWC,
                                 precision=precision)
    t = t.reshape(n, ho, wp, kh, cin)
    zero = jnp.zeros((), g.dtype)
    acc = None
    for a in range(kh):
        rows = (a, hp - a - ((ho - 1) * sh + 1), sh - 1)
        term = lax.pad(t[:, :, :, a, :], zero, ((0, 0, 0), rows, (0, 0, 0), (0, 0, 0)))
        acc = term if acc is None else acc + term
    return acc[:, pt:pt + in_hw[0], pl:pl + in_hw[1], :]


def _bilinear_tangent(y, tangents, input_tangent, kernel_tangent):
    """Tangent of a convolution-like ``y = f(x, k)``, linear in each argument: the sum of the
    terms whose tangent is not a symbolic zero (``symbolic_zeros=True`` rules), so a kernel
    tangent is only computed when the kernel is differentiated, and likewise the input."""
    tx, tk = tangents
    terms = [fn(t) for fn, t in ((input_tangent, tx), (kernel_tangent, tk))
             if not isinstance(t, jax.custom_derivatives.SymbolicZero)]
    if not terms:
        return jnp.zeros(y.shape, y.dtype)
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def _conv_small_cin(x, w, strides, padding, precision):
    return _conv_direct(x, w, strides, padding, precision)


def _conv_small_cin_jvp(strides, padding, precision, primals, tangents):
    """Input tangent = transpose of :func:`_conv_input_transpose`, so that ``jax.grad``, which
    transposes it back, runs the fast input gradient; the kernel tangent is the usual conv.
    (Symbolic zeros: a kernel tangent is only computed when the kernel is differentiated.)"""
    x, w = primals
    y = _conv_direct(x, w, strides, padding, precision)

    def input_tangent(tx):
        transpose = jax.linear_transpose(
            lambda g: _conv_input_transpose(g, w, strides, padding, precision, x.shape[1:3]),
            jax.ShapeDtypeStruct(y.shape, tx.dtype))
        # Only XLA:CPU needs the rewrite; GPUs/TPUs keep their own convolution gradients.
        return lax.platform_dependent(
            tx, cpu=lambda a: transpose(a)[0],
            default=lambda a: _conv_direct(a, w, strides, padding, precision))

    return y, _bilinear_tangent(y, tangents, input_tangent,
                                lambda tw: _conv_direct(x, tw, strides, padding, precision))


_conv_small_cin.defjvp(_conv_small_cin_jvp, symbolic_zeros=True)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
    """``lax.conv_general_dilated`` with a fast input gradient on CPU for NHWC convs with <= 4
    input channels (see :func:`_conv_input_transpose`; other platforms lower the usual one).

    A drop-in for ``nn.Conv(conv_general_dilated=...)``; anything other than a plain NHWC/HWIO
    convolution with explicit padding and few input channels goes to ``lax`` unchanged.
    """
    plain = (
        lhs.ndim == 4 and rhs.ndim == 4 and rhs.shape[2] == lhs.shape[3] <= SMALL_CIN
        and not isinstance(padding, str) and feature_group_count == 1 and batch_group_count == 1
        and all(d == 1 for d in (lhs_dilation or (1, 1)))
        and all(d == 1 for d in (rhs_dilation or (1, 1)))
        and preferred_element_type is None
        and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
        == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))
    if not plain:
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count, batch_group_count=batch_group_count,
            precision=precision, preferred_element_type=preferred_element_type)
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _conv_small_cin(lhs, rhs, tuple(int(s) for s in window_strides), padding, precision)


# Convolution followed by BlurPool, as one strided convolution (ST-LPIPS AlexNet's conv1).

def _blur_groups(n: int, taps: tuple[float, ...], stride: int, pad: tuple[int, int]):
    """How each BlurPool output along one axis combines the rows of its (length n) input.

    Returns a list of ``(first_output, count, first_row, coefficients)``: the ``count`` outputs
    from ``first_output`` on are ``sum_j coefficients[j] * row[first_row + o * stride + j]``
    (o = 0 .. count-1). Interior outputs form one strided group with the filter taps; each
    output whose window crosses the reflected border is its own group.
    """
    size, (lo, hi) = len(taps), pad
    out = (n + lo + hi - size) // stride + 1
    first = min(-(-lo // stride), out)
    last = min(out - 1, (n - 1 - (size - 1) + lo) // stride)
    groups = []

    def border(o):
        rows = [_reflect_index(o * stride + k - lo, n) for k in range(size)]
        start = min(rows)
        coef = [0.0] * (max(rows) - start + 1)
        for k, r in enumerate(rows):
            coef[r - start] += taps[k]
        groups.append((o, 1, start, tuple(coef)))

    for o in range(0, first):
        border(o)
    if last >= first:
        groups.append((first, last - first + 1, first * stride - lo, tuple(taps)))
    for o in range(max(last + 1, first), out):
        border(o)
    return groups


def _compose_kernel(w: jax.Array, ch: tuple[float, ...], cw: tuple[float, ...],
                    dilation: tuple[int, int]) -> jax.Array:
    """HWIO kernel of ``blur(conv(x, w))`` for one output group: sum_ab ch[a] cw[b] w shifted by
    (a, b) * conv stride."""
    kh, kw = w.shape[:2]
    dh, dw = dilation
    out_h, out_w = (len(ch) - 1) * dh + kh, (len(cw) - 1) * dw + kw
    acc = None
    for a, ca in enumerate(ch):
        for b, cb in enumerate(cw):
            c = ca * cb
            if c == 0.0:
                continue
            term = jnp.pad(w * c, ((a * dh, out_h - kh - a * dh), (b * dw, out_w - kw - b * dw),
                                   (0, 0), (0, 0)))
            acc = term if acc is None else acc + term
    return acc


def _s2d_stack_conv(x: jax.Array, k: jax.Array, precision) -> jax.Array:
    """VALID stride-2 NHWC/HWIO convolution as space-to-depth (2x2 -> 4 Cin) then the kernel
    rows stacked into channels: one (1, ceil(kw/2)) convolution over 4*ceil(kh/2)*Cin channels.

    For few input channels this is ~4x faster to differentiate on XLA:CPU than the strided
    convolution (whose input gradient has Cin outputs), and faster forward on large images.
    Kernel taps padded to even sizes meet only zero-padded input rows, so it is exact.
    """
    n, h, w, c = x.shape
    kh, kw, _, o = k.shape
    ho, wo = (h - kh) // 2 + 1, (w - kw) // 2 + 1
    qh, qw = -(-kh // 2), -(-kw // 2)
    kp = jnp.pad(k, ((0, 2 * qh - kh), (0, 2 * qw - kw), (0, 0), (0, 0)))
    kp = kp.reshape(qh, 2, qw, 2, c, o).transpose(0, 2, 1, 3, 4, 5).reshape(qh, qw, 4 * c, o)
    hn, wn = 2 * (ho + qh - 1), 2 * (wo + qw - 1)
    xp = jnp.pad(x, ((0, 0), (0, max(0, hn - h)), (0, max(0, wn - w)), (0, 0)))[:, :hn, :wn]
    xs = xp.reshape(n, hn // 2, 2, wn // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    xs = xs.reshape(n, hn // 2, wn // 2, 4 * c)
    u = jnp.concatenate([xs[:, a:a + ho] for a in range(qh)], axis=-1)
    k2 = kp.transpose(1, 0, 2, 3).reshape(1, qw, qh * 4 * c, o)
    return lax.conv_general_dilated(u, k2, (1, 1), ((0, 0), (0, 0)), dimension_numbers=_NHWC,
                                    precision=precision)


S2D_FORWARD_MIN_WIDTH = 64  # output width from which the space-to-depth forward is faster


def _conv_stride2_primal(x, k, precision):
    def direct(a):
        return lax.conv_general_dilated(a, k, (2, 2), ((0, 0), (0, 0)), dimension_numbers=_NHWC,
                                        precision=precision)

    if x.shape[2] // 2 >= S2D_FORWARD_MIN_WIDTH:  # measured on XLA:CPU only
        return lax.platform_dependent(x, cpu=lambda a: _s2d_stack_conv(a, k, precision),
                                      default=direct)
    return direct(x)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _conv_stride2_small_cin(x, k, precision):
    return _conv_stride2_primal(x, k, precision)


def _conv_stride2_small_cin_jvp(precision, primals, tangents):
    """Forward: the faster formulation for the size; input tangent: the space-to-depth form,
    whose transpose (the input gradient under jax.grad) is the fast one on every size."""
    x, k = primals
    y = _conv_stride2_primal(x, k, precision)

    def direct(a, b):
        return lax.conv_general_dilated(a, b, (2, 2), ((0, 0), (0, 0)), dimension_numbers=_NHWC,
                                        precision=precision)

    return y, _bilinear_tangent(
        y, tangents,
        lambda tx: lax.platform_dependent(tx, cpu=lambda a: _s2d_stack_conv(a, k, precision),
                                          default=lambda a: direct(a, k)),
        lambda tk: direct(x, tk))


_conv_stride2_small_cin.defjvp(_conv_stride2_small_cin_jvp, symbolic_zeros=True)


def conv_blur(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
              dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
              preferred_element_type=None, *, filter_size: int = 3, blur_stride: int = 2,
              pad_more: bool = False):
    """``blur_pool(conv(lhs, rhs))`` computed as strided convolutions of ``lhs`` (NHWC/HWIO).

    Blur and convolution are both linear, so away from the borders the pair is one convolution
    with the composed kernel (11x11 conv + 3x3 binomial -> 13x13) at the product stride: for
    ST-LPIPS AlexNet's conv1 (stride 1, then BlurPool stride 2) that is 37% of the multiply-adds,
    and no full-resolution intermediate. Outputs whose blur window crosses the reflected border
    get their own small convolutions with the exact reflected combination of rows, so the result
    equals ``blur_pool(lax.conv_general_dilated(...))`` up to float rounding. A bias added after
    the convolution commutes with the blur (its taps sum to one), so ``nn.Conv`` can take this as
    its ``conv_general_dilated``.
    """
    if (isinstance(padding, str) or feature_group_count != 1 or batch_group_count != 1
            or any(d != 1 for d in (lhs_dilation or (1, 1)))
            or any(d != 1 for d in (rhs_dilation or (1, 1)))):
        raise ValueError("conv_blur supports plain convolutions with explicit padding only")
    if (lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
            != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)):
        raise ValueError("conv_blur expects NHWC inputs and HWIO kernels")
    (pt, pb), (pl, pr) = padding
    sh, sw = window_strides
    kh, kw = rhs.shape[:2]
    n_h = (lhs.shape[1] + pt + pb - kh) // sh + 1
    n_w = (lhs.shape[2] + pl + pr - kw) // sw + 1
    taps = tuple(float(t) for t in binomial_filter(filter_size))
    pad = blur_pad(filter_size, pad_more)
    xp = jnp.pad(lhs, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    w32 = rhs.astype(jnp.promote_types(rhs.dtype, jnp.float32))
    rows = []
    for _, cnt_h, start_h, ch in _blur_groups(n_h, taps, blur_stride, pad):
        cols = []
        for _, cnt_w, start_w, cw in _blur_groups(n_w, taps, blur_stride, pad):
            k = _compose_kernel(w32, ch, cw, (sh, sw)).astype(rhs.dtype)
            step_h, step_w = blur_stride * sh, blur_stride * sw
            r0, c0 = start_h * sh, start_w * sw
            span_h, span_w = (cnt_h - 1) * step_h + k.shape[0], (cnt_w - 1) * step_w + k.shape[1]
            piece = xp[:, r0:r0 + span_h, c0:c0 + span_w, :]
            if (step_h, step_w) == (2, 2) and cnt_h > 1 and cnt_w > 1 and \
                    lhs.shape[3] <= SMALL_CIN:
                cols.append(_conv_stride2_small_cin(piece, k, precision))
            else:
                cols.append(conv_general_dilated(piece, k, (step_h, step_w), ((0, 0), (0, 0)),
                                                 dimension_numbers=_NHWC, precision=precision))
        rows.append(cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=2))
    return rows[0] if len(rows) == 1 else jnp.concatenate(rows, axis=1)


def conv_blur_reference(lhs, rhs, window_strides, padding, lhs_dilation=None,
                        rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                        batch_group_count=1, precision=None, preferred_element_type=None, *,
                        filter_size: int = 3, blur_stride: int = 2, pad_more: bool = False):
    """:func:`conv_blur` as two steps, the convolution then :func:`blur_pool_reference` (tests)."""
    y = lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                 rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                 feature_group_count=feature_group_count,
                                 batch_group_count=batch_group_count, precision=precision,
                                 preferred_element_type=preferred_element_type)
    return blur_pool_reference(y, filter_size=filter_size, stride=blur_stride, pad_more=pad_more)


# Size arithmetic (one spatial dimension), used to check inputs against a network's minimum size.

def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def pool_out(size: int, window: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> int:
    span = size + 2 * padding - window
    if span < 0:
        return 0
    if ceil_mode:
        out = -(-span // stride) + 1
        # PyTorch drops a last window that would start inside the right padding.
        if (out - 1) * stride >= size + padding:
            out -= 1
        return out
    return span // stride + 1


def blur_out(size: int, filter_size: int = 3, stride: int = 2, pad_more: bool = False) -> int:
    """Output size of :func:`blur_pool`, or 0 when reflection padding is impossible (pad >= size)."""
    lo, hi = blur_pad(filter_size, pad_more)
    if max(lo, hi) >= size:
        return 0
    return (size + lo + hi - filter_size) // stride + 1
