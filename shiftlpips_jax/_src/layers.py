"""The backbones' layers (NHWC): BlurPool, max pooling, convolutions, and their size arithmetic.

BlurPool (Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019) low-pass
filters with a normalised binomial kernel before subsampling; ST-LPIPS uses it with reflection
padding of ``(k-1)//2`` (or ``k-1`` with ``pad_more``) and stride 2. The filter is a constant, not
a parameter, so it never enters a parameter tree (converters check that a checkpoint's ``filt``
buffer equals :func:`binomial_filter2d`).

This module holds the plain layers, written with ``lax`` primitives and differentiated by JAX
itself, and the public layer functions the backbones call. Those dispatch on the platform the
program is lowered for (``lax.platform_dependent``, so ``jax.export`` for several platforms and
cross-lowering pick per platform, not by the process's default backend): on CPU they run the
kernels of :mod:`cpu_kernels` (custom derivative rules and formulations that XLA:CPU runs
faster, measured there), elsewhere the plain layers. The ``*_reference`` functions compute each
layer as upstream does (depthwise convolution, ``reduce_window`` with JAX's derivative); the tests
check both paths against them.

Example::

    y = blur_pool(x, filter_size=3, stride=2, pad_more=True)   # (N, H, W, C) -> (N, ~H/2, ~W/2, C)
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# cpu_kernels builds on the plain layers below and is only looked up when a layer is traced, so
# the two modules may import each other.
from . import cpu_kernels

__all__ = [
    "binomial_filter",
    "binomial_filter2d",
    "blur_pad",
    "kernels_for",
    "per_platform",
    "blur_pool",
    "blur_pool_reference",
    "separable_blur",
    "max_pool",
    "max_pool_reference",
    "conv_general_dilated",
    "conv_stride2",
    "conv_blur",
    "conv_blur_reference",
    "conv_out",
    "pool_out",
    "blur_out",
]

NHWC = ("NHWC", "HWIO", "NHWC")
SMALL_CIN = 4  # input channels up to which convolutions take the CPU input-gradient kernels


# --------------------------------------------------------------------------------------------
# Platform dispatch.

# The platform whose kernels the layers are traced with: "cpu", "default", or None (each layer
# then dispatches on the platform it is lowered for).
_PLATFORM = contextvars.ContextVar("shiftlpips_platform", default=None)


@contextlib.contextmanager
def kernels_for(platform: str | None):
    """Traces the layers inside with the kernels of ``platform``: ``"cpu"`` (the CPU kernels),
    ``"default"`` (the plain layers), or ``None`` (decide by the platform lowered for), whatever
    the program is lowered for. For tests and benchmarks that compare the two on one machine;
    it acts at trace time, so use it around ``jax.jit(...).lower`` or a first call.
    """
    if platform not in ("cpu", "default", None):
        raise ValueError(f"platform must be 'cpu', 'default' or None, got {platform!r}")
    token = _PLATFORM.set(platform)
    try:
        yield
    finally:
        _PLATFORM.reset(token)


def _dispatch(cpu, default, *args):
    """``cpu(*args)`` when lowered for CPU, else ``default(*args)``."""
    platform = _PLATFORM.get()
    if platform is not None:
        return (cpu if platform == "cpu" else default)(*args)
    return lax.platform_dependent(*args, cpu=cpu, default=default)


def per_platform(fn, *args, cpu=None):
    """``fn(*args)`` with one platform switch for everything inside it: ``cpu`` (default
    ``fn``) traced with the CPU kernels for CPU, ``fn`` with the plain layers for other
    platforms. One switch for a whole network instead of one per layer keeps programs small
    (under ``jax.grad`` each switch carries the residuals of both of its branches).
    """
    cpu = fn if cpu is None else cpu
    if _PLATFORM.get() is not None:
        return (cpu if _PLATFORM.get() == "cpu" else fn)(*args)

    def traced_for(platform, f):
        def run(*a):
            with kernels_for(platform):
                return f(*a)
        return run

    return lax.platform_dependent(*args, cpu=traced_for("cpu", cpu),
                                  default=traced_for("default", fn))


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


def reflect_index(r: int, n: int) -> int:
    """Index ``r`` of a length-``n`` axis after reflection padding (NumPy ``reflect``)."""
    if n == 1:
        return 0
    while r < 0 or r > n - 1:
        r = -r if r < 0 else 2 * (n - 1) - r
    return r


# --------------------------------------------------------------------------------------------
# BlurPool.

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
            r = reflect_index(o * stride + k - lo, n)
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


def separable_blur(x: jax.Array, taps: tuple[float, ...], stride: int,
                   pad: tuple[int, int]) -> jax.Array:
    """BlurPool as two 1-D passes (rows, then columns) of strided-slice adds that read the
    reflected border in place; the 2-D binomial filter is separable, so this is the depthwise
    convolution of :func:`blur_pool_reference` with 2k instead of k^2 taps per output (and on
    XLA:CPU ~10x faster than its ``feature_group_count=C`` convolution). Low-precision inputs are
    filtered in float32 and cast back. Differentiated by JAX."""
    dtype = x.dtype
    y = _filter_axis(x.astype(jnp.promote_types(dtype, jnp.float32)), taps, stride, pad, 1)
    return _filter_axis(y, taps, stride, pad, 2).astype(dtype)


def blur_pool(x: jax.Array, *, filter_size: int = 3, stride: int = 2,
              pad_more: bool = False) -> jax.Array:
    """Reflection-pads, blurs each channel with the binomial filter, subsamples by ``stride``.

    Computed separably (:func:`separable_blur`); on CPU with a hand-written transpose for
    gradients (:func:`cpu_kernels.blur_pool`). Equals :func:`blur_pool_reference` (the depthwise
    convolution upstream runs) up to float rounding.

    Args:
      x: (N, H, W, C) features.
      filter_size: binomial filter taps (3 = [1, 2, 1]).
      stride: subsampling factor.
      pad_more: pad ``filter_size - 1`` on each side instead of ``(filter_size - 1) // 2``.

    Returns:
      (N, H', W', C) with H' = (H + pad_total - filter_size) // stride + 1.
    """
    taps = tuple(float(t) for t in binomial_filter(filter_size))
    pad = blur_pad(filter_size, pad_more)
    return _dispatch(lambda a: cpu_kernels.blur_pool(a, taps, stride, pad),
                     lambda a: separable_blur(a, taps, stride, pad), x)


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
        dimension_numbers=NHWC, feature_group_count=channels)


# --------------------------------------------------------------------------------------------
# Max pooling.

def _pool_pads(h: int, w: int, window: int, stride: int, padding: int,
               ceil_mode: bool) -> tuple[tuple[int, int], tuple[int, int]]:
    pads = []
    for size in (h, w):
        out = pool_out(size, window, stride, padding, ceil_mode)
        extra = (out - 1) * stride + window - (size + 2 * padding)
        pads.append((padding, padding + max(extra, 0)))
    return pads[0], pads[1]


def reduce_window_max(x: jax.Array, window: int, stride: int,
                      pads: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    """Max over ``window`` x ``window`` windows of the -inf padded ``x`` (JAX's derivative)."""
    # A Python-scalar -inf init makes this lax.reduce_window_max (differentiable by JAX).
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1),
                             ((0, 0), pads[0], pads[1], (0, 0)))


def max_pool(x: jax.Array, *, window: int, stride: int, padding: int = 0,
             ceil_mode: bool = False) -> jax.Array:
    """PyTorch ``MaxPool2d`` semantics on NHWC input (implicit -inf padding, optional ceil mode).

    Differentiable (forward and reverse mode); the gradient goes to each window's first maximum,
    as PyTorch's and ``jax.grad`` of :func:`max_pool_reference`. On CPU the derivative is
    :func:`cpu_kernels.max_pool` (no ``select_and_scatter``).
    """
    pads = _pool_pads(x.shape[1], x.shape[2], window, stride, padding, ceil_mode)
    if window == 1:
        return reduce_window_max(x, window, stride, pads)
    return _dispatch(lambda a: cpu_kernels.max_pool(a, window, stride, pads),
                     lambda a: reduce_window_max(a, window, stride, pads), x)


def max_pool_reference(x: jax.Array, *, window: int, stride: int, padding: int = 0,
                       ceil_mode: bool = False) -> jax.Array:
    """:func:`max_pool` with JAX's built-in reduce_window_max derivative (for tests)."""
    pads = _pool_pads(x.shape[1], x.shape[2], window, stride, padding, ceil_mode)
    return reduce_window_max(x, window, stride, pads)


# --------------------------------------------------------------------------------------------
# Convolutions.

def _is_plain_nhwc(lhs, rhs, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                   feature_group_count, batch_group_count, preferred_element_type) -> bool:
    return (lhs.ndim == 4 and rhs.ndim == 4 and not isinstance(padding, str)
            and feature_group_count == 1 and batch_group_count == 1
            and all(d == 1 for d in (lhs_dilation or (1, 1)))
            and all(d == 1 for d in (rhs_dilation or (1, 1)))
            and preferred_element_type is None
            and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
            == lax.conv_dimension_numbers(lhs.shape, rhs.shape, NHWC))


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
    """``lax.conv_general_dilated``; on CPU, NHWC convolutions with <= :data:`SMALL_CIN` input
    channels (the image-facing conv) take :func:`cpu_kernels.conv_small_cin`'s input gradient,
    and stride-1 convolutions over maps of at most :data:`cpu_kernels.SMALL_MAP` pixels a side
    run as :func:`cpu_kernels.conv_small_map` (no multiply-adds on padding), and larger float32
    3x3 ones with at least :data:`cpu_kernels.WINOGRAD_MIN_CIN` input channels as
    :func:`cpu_kernels.conv_winograd` (2.25x fewer multiply-adds), and, in evaluation only
    (inside :func:`cpu_kernels.forward_only`), float32 5-wide ones with at least
    :data:`cpu_kernels.WINOGRAD_ROWS_MIN_CIN` input channels on maps at least
    :data:`cpu_kernels.WINOGRAD_ROWS_MIN_MAP` pixels a side as
    :func:`cpu_kernels.conv_winograd_rows` (2.5x fewer); bfloat16 stride-1 ones with at least
    :data:`cpu_kernels.BF16_ROWS_MIN_COUT` outputs, on CPUs with bf16 dot units, as
    :func:`cpu_kernels.conv_bf16_rows` (matmuls on the bf16 matrix units).

    A drop-in for ``nn.Conv(conv_general_dilated=...)``; anything else (not a plain NHWC/HWIO
    convolution with explicit padding, or neither case above) goes to ``lax`` unchanged.
    """
    if (_is_plain_nhwc(lhs, rhs, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                       feature_group_count, batch_group_count, preferred_element_type)
            and rhs.shape[2] == lhs.shape[3]):
        strides = tuple(int(s) for s in window_strides)
        pads = tuple((int(lo), int(hi)) for lo, hi in padding)
        cpu = None
        if rhs.shape[2] <= SMALL_CIN:
            cpu = lambda a, k: cpu_kernels.conv_small_cin(a, k, strides, pads, precision)  # noqa: E731
        elif (strides == (1, 1) and rhs.shape[0] * rhs.shape[1] > 1
              and max(lhs.shape[1], lhs.shape[2]) <= cpu_kernels.SMALL_MAP):
            cpu = lambda a, k: cpu_kernels.conv_small_map(a, k, pads, precision)  # noqa: E731
        elif (strides == (1, 1) and lhs.dtype == rhs.dtype == jnp.bfloat16
              and rhs.shape[0] * rhs.shape[1] > 1
              and rhs.shape[3] >= cpu_kernels.BF16_ROWS_MIN_COUT
              and cpu_kernels.bf16_rows_enabled()):
            cpu = lambda a, k: cpu_kernels.conv_bf16_rows(a, k, pads, precision)  # noqa: E731
        elif (strides == (1, 1) and rhs.shape[:2] == (3, 3)
              and rhs.shape[2] >= cpu_kernels.WINOGRAD_MIN_CIN
              and lhs.dtype == rhs.dtype == jnp.float32):
            cpu = lambda a, k: cpu_kernels.conv_winograd(a, k, pads, precision)  # noqa: E731
        elif (strides == (1, 1) and rhs.shape[1] in cpu_kernels.WINOGRAD_ROWS_WIDTHS
              and rhs.shape[2] >= cpu_kernels.WINOGRAD_ROWS_MIN_CIN
              and min(lhs.shape[1], lhs.shape[2]) >= cpu_kernels.WINOGRAD_ROWS_MIN_MAP
              and lhs.dtype == rhs.dtype == jnp.float32
              and cpu_kernels.forward_only_enabled()):
            cpu = lambda a, k: cpu_kernels.conv_winograd_rows(a, k, pads, precision)  # noqa: E731
        if cpu is not None:
            return _dispatch(
                cpu,
                lambda a, k: lax.conv_general_dilated(a, k, strides, pads, dimension_numbers=NHWC,
                                                      precision=precision),
                lhs, rhs)
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, batch_group_count=batch_group_count,
        precision=precision, preferred_element_type=preferred_element_type)


def conv_stride2(x: jax.Array, k: jax.Array, precision=None) -> jax.Array:
    """VALID stride-2 NHWC/HWIO convolution; on CPU with few input channels it runs as
    :func:`cpu_kernels.conv_stride2_small_cin` (space-to-depth: faster to differentiate; in
    bf16 its forward runs as :func:`cpu_kernels.conv_bf16_rows`' matmuls)."""
    def plain(a, b):
        return lax.conv_general_dilated(a, b, (2, 2), ((0, 0), (0, 0)), dimension_numbers=NHWC,
                                        precision=precision)

    if x.shape[3] > SMALL_CIN:
        return plain(x, k)
    return _dispatch(lambda a, b: cpu_kernels.conv_stride2_small_cin(a, b, precision), plain,
                     x, k)


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
        rows = [reflect_index(o * stride + k - lo, n) for k in range(size)]
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
    its ``conv_general_dilated``. Plain ``lax`` convolutions differentiated by JAX, except the
    pieces that :func:`conv_stride2` and :func:`conv_general_dilated` hand to the CPU kernels.
    """
    if (isinstance(padding, str) or feature_group_count != 1 or batch_group_count != 1
            or any(d != 1 for d in (lhs_dilation or (1, 1)))
            or any(d != 1 for d in (rhs_dilation or (1, 1)))):
        raise ValueError("conv_blur supports plain convolutions with explicit padding only")
    if (lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
            != lax.conv_dimension_numbers(lhs.shape, rhs.shape, NHWC)):
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
            if (step_h, step_w) == (2, 2) and cnt_h > 1 and cnt_w > 1:
                cols.append(conv_stride2(piece, k, precision))
            else:
                cols.append(conv_general_dilated(piece, k, (step_h, step_w), ((0, 0), (0, 0)),
                                                 dimension_numbers=NHWC, precision=precision))
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


# --------------------------------------------------------------------------------------------
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
