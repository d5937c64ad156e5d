"""MS-SSIM (Wang, Simoncelli & Bovik, Asilomar 2003) in JAX, as ``pytorch_msssim.ms_ssim``.

Five scales with the standard weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). At each scale a
separable 11-tap Gaussian window (sigma 1.5) slides over the valid positions; the contrast-
structure term ``cs`` (scales 1-4) and the full SSIM (scale 5) are averaged per channel and
clipped at 0 (ReLU), raised to the scale weights and multiplied; the result is the mean over
channels. Between scales each image is 2x2 average-pooled, an odd side first zero-padded by one
on both sides (the padding counts in the average, as PyTorch's ``avg_pool2d``). K1 = 0.01,
K2 = 0.03; ``data_range`` is 255 for 8-bit RGB values, 100 for Lab (as our SSIM baseline).

Small images. Five scales of an 11-tap window need a shorter side above (11 - 1) * 2**4 = 160;
pytorch-msssim asserts that, and the other common implementations (IQA_pytorch and pyiqa's
``ms_ssim``, which the ST-LPIPS authors used in their later studies, TensorFlow, piq,
torchmetrics) fail on BAPPS' 64x64 patches too. The ST-LPIPS paper's table nevertheless
reports MS-SSIM on them, and its published evaluation code only reads MS-SSIM scores computed
elsewhere (as a similarity), so the exact small-image rule it used cannot be recovered. Here
``small_images="error"`` (the default) raises :class:`InputError` below the minimum, and
``small_images="shrink"`` shrinks the window where a scale is too small: the window at each scale
is the largest odd size <= min(win_size, shorter side of that scale), sigma unchanged (the
"recompute the window to fit" rule of the widely copied PyTorch MS-SSIM code). Above the minimum
both modes give identical values; ``shrink`` needs a shorter side >= 33 (a 3-tap window at the
5th scale). The evaluation distance (``msssim_distance``) uses ``shrink`` so that BAPPS runs.

All float32, jit/vmap/grad-able with finite gradients (the ReLU'd terms are raised to their
weights through a masked ``exp(w log v)``, so a zero term has gradient 0, not NaN).

Example::

    s = ms_ssim(x255, y255, data_range=255.0)                        # (N,), needs side > 160
    s = ms_ssim(x255, y255, data_range=255.0, small_images="shrink")   # any side >= 33
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from shiftlpips_jax._src.errors import InputError

__all__ = ["ms_ssim", "msssim_min_size", "gaussian_window", "MS_SSIM_WEIGHTS", "SMALL_IMAGES"]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SMALL_IMAGES = ("error", "shrink")


def gaussian_window(size: int, sigma: float) -> np.ndarray:
    """The normalised 1-D Gaussian of ``size`` taps centred on tap ``size // 2`` (float32)."""
    coords = np.arange(size, dtype=np.float32) - size // 2
    g = np.exp(-(coords ** 2) / np.float32(2.0 * sigma * sigma)).astype(np.float32)
    return g / g.sum()


def _scale_sizes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    sizes = [(h, w)]
    for _ in range(levels - 1):
        h, w = (h + 1) // 2, (w + 1) // 2   # avg_pool2d(2, padding=side % 2) gives ceil(side/2)
        sizes.append((h, w))
    return sizes


def msssim_min_size(*, win_size: int = 11, levels: int = 5, small_images: str = "error") -> int:
    """Smallest shorter side :func:`ms_ssim` accepts with these settings."""
    if small_images == "shrink":
        return 2 ** (levels - 1) * 2 + 1   # ceil(s / 2**(levels-1)) >= 3
    return (win_size - 1) * 2 ** (levels - 1) + 1


def _filter_valid(x: jax.Array, taps: np.ndarray, axis: int) -> jax.Array:
    """Valid 1-D correlation along ``axis`` as a sum of shifted slices (XLA fuses them into one
    loop; a depthwise convolution is several times slower on CPU)."""
    out = x.shape[axis] - len(taps) + 1
    acc = None
    for i, t in enumerate(taps):
        term = float(t) * jax.lax.slice_in_dim(x, i, i + out, axis=axis)
        acc = term if acc is None else acc + term
    return acc


def _blur(x: jax.Array, taps: np.ndarray) -> jax.Array:
    """Valid separable Gaussian of (N, H, W, C), channel by channel."""
    return _filter_valid(_filter_valid(x, taps, 1), taps, 2)


def _avg_pool2(x: jax.Array) -> jax.Array:
    """2x2 mean, stride 2, an odd side zero-padded by one each side (padding counted)."""
    for axis in (1, 2):
        n = x.shape[axis]
        p = n % 2
        out = (n + 2 * p - 2) // 2 + 1
        if p:
            pad = [(0, 0)] * x.ndim
            pad[axis] = (1, 1)
            x = jnp.pad(x, pad)
        a = jax.lax.slice_in_dim(x, 0, 2 * out - 1, stride=2, axis=axis)
        b = jax.lax.slice_in_dim(x, 1, 2 * out, stride=2, axis=axis)
        x = 0.5 * (a + b)
    return x


def _ssim_terms(x, y, taps, c1, c2):
    """Per-channel mean SSIM and mean cs, (N, C) each."""
    c = x.shape[-1]
    # The five local moments in one filtering pass.
    m = _blur(jnp.concatenate([x, y, x * x, y * y, x * y], axis=-1), taps)
    mx, my, exx, eyy, exy = (m[..., i * c:(i + 1) * c] for i in range(5))
    vx = exx - mx * mx
    vy = eyy - my * my
    vxy = exy - mx * my
    cs = (2.0 * vxy + c2) / (vx + vy + c2)
    s = (2.0 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    return jnp.mean(s, axis=(1, 2)), jnp.mean(cs, axis=(1, 2))


def _pow(v: jax.Array, w: float) -> jax.Array:
    """``v ** w`` for v >= 0 with a finite gradient at 0 (value 0 there, gradient 0)."""
    pos = v > 0
    return jnp.where(pos, jnp.exp(w * jnp.log(jnp.where(pos, v, 1.0))), 0.0)


def ms_ssim(x: jax.Array, y: jax.Array, *, data_range: float, win_size: int = 11,
            win_sigma: float = 1.5, weights: Sequence[float] = MS_SSIM_WEIGHTS,
            k1: float = 0.01, k2: float = 0.03, small_images: str = "error") -> jax.Array:
    """MS-SSIM of (N, H, W, C) images, as ``pytorch_msssim.ms_ssim(size_average=False)``.

    Args:
      x, y: float images of one shape (8-bit values for RGB, or Lab).
      data_range: the value range (255 for 8-bit values, 100 for Lab).
      win_size: odd Gaussian window size (11).
      win_sigma: the window's standard deviation (1.5).
      weights: one exponent per scale (the standard five).
      k1, k2: the SSIM stabilising constants.
      small_images: ``"error"``: raise if the shorter side is <= (win_size - 1) * 2**(scales-1)
        (160 by default); ``"shrink"``: shrink the window to fit each scale (see module notes).

    Returns:
      (N,) float32 MS-SSIM in [0, 1] (1 for identical images).
    """
    if small_images not in SMALL_IMAGES:
        raise InputError(f"small_images must be one of {SMALL_IMAGES}, got {small_images!r}")
    if win_size < 1 or win_size % 2 != 1:
        raise InputError(f"ms_ssim win_size must be a positive odd integer, got {win_size}")
    if len(weights) < 1:
        raise InputError("ms_ssim needs at least one scale weight")
    if x.ndim != 4 or x.shape != y.shape:
        raise InputError(f"ms_ssim needs two (N, H, W, C) arrays of one shape; got "
                         f"{tuple(x.shape)}, {tuple(y.shape)}")
    levels = len(weights)
    h, w = x.shape[1], x.shape[2]
    need = msssim_min_size(win_size=win_size, levels=levels, small_images=small_images)
    if min(h, w) < need:
        hint = (" or pass small_images='shrink' (smaller windows at the coarse scales; shorter "
                f"side >= {msssim_min_size(levels=levels, small_images='shrink')})"
                if small_images == "error" else "")
        raise InputError(f"ms_ssim with {levels} scales and an {win_size}-tap window needs a "
                         f"shorter side of at least {need} pixels; got {h}x{w}. Resize the "
                         f"images{hint}.")
    return _ms_ssim(x, y, data_range=float(data_range), win_size=int(win_size),
                    win_sigma=float(win_sigma), weights=tuple(float(v) for v in weights),
                    k1=float(k1), k2=float(k2), small_images=small_images)


# Jitted with the options static: dozens of small slice ops run as one program even when the
# caller does not jit (eagerly they would dispatch one by one).
@functools.partial(jax.jit, static_argnames=("data_range", "win_size", "win_sigma", "weights",
                                             "k1", "k2", "small_images"))
def _ms_ssim(x, y, *, data_range, win_size, win_sigma, weights, k1, k2, small_images):
    levels = len(weights)
    h, w = x.shape[1], x.shape[2]
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    total = None
    for i, (sh, sw) in enumerate(_scale_sizes(h, w, levels)):
        size = win_size
        if small_images == "shrink":
            fit = min(sh, sw)
            size = min(win_size, fit if fit % 2 else fit - 1)
        s, cs = _ssim_terms(x, y, gaussian_window(size, win_sigma), c1, c2)
        last = i == levels - 1
        term = _pow(jax.nn.relu(s if last else cs), weights[i])
        total = term if total is None else total * term
        if not last:
            x, y = _avg_pool2(x), _avg_pool2(y)
    return jnp.mean(total, axis=-1)
