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
    "max_pool",
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


def blur_pool(x: jax.Array, *, filter_size: int = 3, stride: int = 2,
              pad_more: bool = False) -> jax.Array:
    """Reflection-pads, blurs each channel with the binomial filter, subsamples by ``stride``.

    Args:
      x: (N, H, W, C) features.
      filter_size: binomial filter taps (3 = [1, 2, 1]).
      stride: subsampling factor.
      pad_more: pad ``filter_size - 1`` on each side instead of ``(filter_size - 1) // 2``.

    Returns:
      (N, H', W', C) with H' = (H + pad_total - filter_size) // stride + 1.
    """
    lo, hi = blur_pad(filter_size, pad_more)
    if filter_size == 1:
        if lo == hi == 0:
            return x[:, ::stride, ::stride, :]
        x = jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode="reflect")
        return x[:, ::stride, ::stride, :]
    x = jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode="reflect")
    channels = x.shape[-1]
    kernel = jnp.asarray(binomial_filter2d(filter_size), dtype=x.dtype)
    kernel = jnp.broadcast_to(kernel[:, :, None, None], (filter_size, filter_size, 1, channels))
    return lax.conv_general_dilated(
        x, kernel, window_strides=(stride, stride), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)


def max_pool(x: jax.Array, *, window: int, stride: int, padding: int = 0,
             ceil_mode: bool = False) -> jax.Array:
    """PyTorch ``MaxPool2d`` semantics on NHWC input (implicit -inf padding, optional ceil mode)."""
    h, w = x.shape[1], x.shape[2]
    pads = []
    for size in (h, w):
        out = pool_out(size, window, stride, padding, ceil_mode)
        extra = (out - 1) * stride + window - (size + 2 * padding)
        pads.append((padding, padding + max(extra, 0)))
    # A Python-scalar -inf init makes this lax.reduce_window_max, which JAX can differentiate.
    return lax.reduce_window(
        x, -jnp.inf, lax.max, (1, window, window, 1),
        (1, stride, stride, 1), ((0, 0), pads[0], pads[1], (0, 0)))


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
