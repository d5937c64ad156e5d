"""Classic baselines in JAX: L2 and SSIM/DSSIM, in RGB or CIE Lab, as the BAPPS papers use them.

Definitions follow upstream ``lpips.L2`` / ``lpips.DSSIM`` (richzhang/PerceptualSimilarity),
whose default colour space is Lab:

* L2, RGB: ``mean((x - y)**2)`` over C, H, W with images in [-1, 1].
* L2, Lab: ``0.5 * mean((lab_x / 100 - lab_y / 100)**2)``.
* DSSIM: ``(1 - SSIM) / 2`` with SSIM as ``skimage.metrics.structural_similarity`` defaults
  (7x7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03, the 3-pixel border dropped,
  mean over channels); ``data_range`` 255 on RGB values in [0, 255], 100 on Lab.

Lab is ``skimage.color.rgb2lab`` (sRGB, D65, 2 degree observer). Upstream first maps [-1, 1]
tensors back to uint8 by truncation, an artefact that moves some values down a level; here
images are rounded back to their exact 8-bit values. Everything is float32 and jit-able; the
tests check ``rgb_to_lab`` and ``ssim`` against scikit-image.

Example::

    d = l2_distance("Lab")            # a Distance (see _distances.py)
    s = ssim(x255, y255, data_range=255.0)   # (N,) mean SSIM of (N, H, W, C) images
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["rgb_to_lab", "ssim", "l2_rgb", "l2_lab", "dssim", "to_uint8_values"]

# skimage.color.colorconv: sRGB -> XYZ matrix and the D65 / 2 degree white point.
_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]], np.float64)
_D65 = np.array([0.95047, 1.0, 1.08883], np.float64)


def to_uint8_values(x: jax.Array) -> jax.Array:
    """[-1, 1] floats -> the 8-bit values they came from, as float32 in [0, 255]."""
    return jnp.clip(jnp.round((x + 1.0) * 127.5), 0.0, 255.0)


def rgb_to_lab(rgb: jax.Array) -> jax.Array:
    """sRGB in [0, 1], (..., 3) -> CIE Lab (L in [0, 100]), as ``skimage.color.rgb2lab``.

    Args:
      rgb: sRGB values in [0, 1], channels last.

    Returns:
      float32 Lab of the same shape.
    """
    rgb = jnp.asarray(rgb, jnp.float32)
    lin = jnp.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = jnp.einsum("...c,kc->...k", lin, jnp.asarray(_XYZ_FROM_RGB / _D65[:, None], jnp.float32),
                     precision=jax.lax.Precision.HIGHEST)
    f = jnp.where(xyz > 0.008856, jnp.cbrt(jnp.maximum(xyz, 0.0)), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def _box_mean(x: jax.Array, win: int) -> jax.Array:
    """Mean over every valid ``win`` x ``win`` window of (N, H, W, C)."""
    s = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, win, win, 1), (1, 1, 1, 1), "VALID")
    return s / float(win * win)


def ssim(x: jax.Array, y: jax.Array, *, data_range: float, win_size: int = 7, k1: float = 0.01,
         k2: float = 0.03) -> jax.Array:
    """Mean SSIM of (N, H, W, C) images, as ``skimage.metrics.structural_similarity`` defaults.

    Args:
      x, y: float images, same shape, H and W >= ``win_size``.
      data_range: the value range (255 for 8-bit values, 100 for Lab).
      win_size: odd uniform window size (skimage default 7).
      k1, k2: the stabilising constants (skimage defaults 0.01, 0.03).

    Returns:
      (N,) float32: per image, the mean SSIM over the valid window positions and channels.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim needs two (N, H, W, C) arrays of one shape; got {x.shape}, "
                         f"{y.shape}")
    if min(x.shape[1], x.shape[2]) < win_size:
        raise ValueError(f"ssim needs images of at least {win_size}x{win_size}; got "
                         f"{x.shape[1]}x{x.shape[2]}")
    # Work in units of data_range, with each image's channel means removed from the second
    # moments: covariances are shift-invariant, and smaller magnitudes keep float32 accurate.
    x = jnp.asarray(x, jnp.float32) / data_range
    y = jnp.asarray(y, jnp.float32) / data_range
    gx = jnp.mean(x, axis=(1, 2), keepdims=True)
    gy = jnp.mean(y, axis=(1, 2), keepdims=True)
    xc, yc = x - gx, y - gy
    mx, my = _box_mean(xc, win_size), _box_mean(yc, win_size)
    cov_norm = win_size * win_size / (win_size * win_size - 1.0)
    vx = cov_norm * (_box_mean(xc * xc, win_size) - mx * mx)
    vy = cov_norm * (_box_mean(yc * yc, win_size) - my * my)
    vxy = cov_norm * (_box_mean(xc * yc, win_size) - mx * my)
    ux, uy = mx + gx, my + gy
    c1, c2 = k1 * k1, k2 * k2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return jnp.mean(s, axis=(1, 2, 3))


def l2_rgb(x: jax.Array, y: jax.Array) -> jax.Array:
    """Upstream RGB L2: mean squared difference of [-1, 1] images, (N,)."""
    return jnp.mean((x - y) ** 2, axis=(1, 2, 3))


def l2_lab(lab_x: jax.Array, lab_y: jax.Array) -> jax.Array:
    """Upstream Lab L2: ``0.5 * mean((a/100 - b/100)**2)``, (N,)."""
    return 0.5 * jnp.mean((lab_x / 100.0 - lab_y / 100.0) ** 2, axis=(1, 2, 3))


def dssim(x: jax.Array, y: jax.Array, *, data_range: float) -> jax.Array:
    """``(1 - SSIM) / 2``, (N,).

    Args:
      x, y: (N, H, W, C) images.
      data_range: the value range (255 for 8-bit values, 100 for Lab).

    Returns:
      (N,) float32 distances.
    """
    return (1.0 - ssim(x, y, data_range=data_range)) / 2.0
