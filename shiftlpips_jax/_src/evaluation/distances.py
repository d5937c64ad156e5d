"""Distances the evaluation runs, split into "features of one image" and "compare two".

The split lets the runner compute a reference's features once per triplet and reuse them for p0,
p1 and every crop-shift. A learned metric's features are its unit-normalised taps; a baseline's
are the image in its colour space. Both halves are pure JAX functions of ``(params, ...)`` on
(N, H, W, 3) float32 images in [-1, 1], so the runner jits whole batches.

Example::

    dist = get_distance("alex")                       # ST-LPIPS alex
    dist = get_distance("ssim", colorspace="RGB")     # DSSIM baseline
    dist = get_distance("msssim")                     # (1 - MS-SSIM) / 2, RGB
    dist = get_distance("dists")                      # DISTS (Ding et al. 2020)
    f = dist.features(dist.params, x); d = dist.compare(dist.params, f, dist.features(dist.params, y))
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax

from shiftlpips_jax._src.dists import DISTS, load_dists
from shiftlpips_jax._src.evaluation import baselines as bl
from shiftlpips_jax._src.evaluation import msssim as _msssim
from shiftlpips_jax._src.lpips import LPIPS
from shiftlpips_jax._src.metric import Metric, load

__all__ = ["Distance", "get_distance", "learned_distance", "l2_distance", "ssim_distance",
           "msssim_distance", "dists_distance", "COLORSPACES"]

COLORSPACES = ("Lab", "RGB")


@dataclasses.dataclass(frozen=True, eq=False)
class Distance:
    """A distance as two pure functions plus their parameters.

    Attributes:
      name: human-readable ("ST-LPIPS alex", "L2 (Lab)").
      key: short id for files ("alex/shift_tolerant", "l2/Lab").
      features: ``features(params, x) -> pytree`` for x (N, H, W, 3) in [-1, 1].
      compare: ``compare(params, fx, fy) -> (N,)`` for feature pytrees of equal batch size.
      params: passed to both (the metric's variables; ``None`` for baselines).
      min_size: smallest H, W accepted.
    """
    name: str
    key: str
    features: Callable[[Any, jax.Array], Any]
    compare: Callable[[Any, Any, Any], jax.Array]
    params: Any = None
    min_size: int = 1

    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """Distance (N,) between [-1, 1] image batches (unjitted convenience)."""
        return self.compare(self.params, self.features(self.params, x),
                            self.features(self.params, y))


def learned_distance(metric: Metric) -> Distance:
    """Wraps a loaded :class:`Metric` (ST-LPIPS / LPIPS / a trained checkpoint).

    Args:
      metric: from :func:`shiftlpips_jax.load`.

    Returns:
      The :class:`Distance` (features: unit-normalised taps; compare: the heads).
    """
    module = metric.module

    def features(params, x):
        return module.apply(params, x, method=LPIPS.features)

    def compare(params, fx, fy):
        return module.apply(params, fx, fy, method=LPIPS.compare_features)

    label = {"shift_tolerant": "ST-LPIPS", "lpips": "LPIPS v0.1"}.get(metric.variant,
                                                                       metric.variant)
    return Distance(name=f"{label} {metric.net}", key=f"{metric.net}/{metric.variant}",
                    features=features, compare=compare, params=metric.params,
                    min_size=metric.min_size)


def _check_colorspace(colorspace: str) -> str:
    for c in COLORSPACES:
        if colorspace.lower() == c.lower():
            return c
    raise ValueError(f"unknown colorspace {colorspace!r}; expected one of {COLORSPACES}")


def l2_distance(colorspace: str = "Lab") -> Distance:
    """Upstream's L2 baseline (Lab by default, as upstream ``test_dataset_model.py``).

    Args:
      colorspace: ``Lab`` or ``RGB``.

    Returns:
      The :class:`Distance`.
    """
    return _l2(_check_colorspace(colorspace))


# Distances are cached so repeated evaluations in one process reuse their compiled programs.
@functools.lru_cache(maxsize=None)
def _l2(cs: str) -> Distance:
    if cs == "RGB":
        return Distance(name="L2 (RGB)", key="l2/RGB", features=lambda p, x: x,
                        compare=lambda p, a, b: bl.l2_rgb(a, b))
    return Distance(name="L2 (Lab)", key="l2/Lab",
                    features=lambda p, x: bl.rgb_to_lab(bl.to_uint8_values(x) / 255.0),
                    compare=lambda p, a, b: bl.l2_lab(a, b))


def ssim_distance(colorspace: str = "Lab") -> Distance:
    """Upstream's DSSIM baseline ``(1 - SSIM) / 2`` (Lab by default).

    Args:
      colorspace: ``Lab`` or ``RGB``.

    Returns:
      The :class:`Distance`.
    """
    return _ssim(_check_colorspace(colorspace))


@functools.lru_cache(maxsize=None)
def _ssim(cs: str) -> Distance:
    if cs == "RGB":
        return Distance(name="DSSIM (RGB)", key="ssim/RGB", min_size=7,
                        features=lambda p, x: bl.to_uint8_values(x),
                        compare=lambda p, a, b: bl.dssim(a, b, data_range=255.0))
    return Distance(name="DSSIM (Lab)", key="ssim/Lab", min_size=7,
                    features=lambda p, x: bl.rgb_to_lab(bl.to_uint8_values(x) / 255.0),
                    compare=lambda p, a, b: bl.dssim(a, b, data_range=100.0))


def msssim_distance(colorspace: str = "RGB", *, small_images: str = "shrink") -> Distance:
    """``(1 - MS-SSIM) / 2`` (as the ST-LPIPS authors' later evaluation code scores MS-SSIM).

    Args:
      colorspace: ``RGB`` (default: the MS-SSIM implementations the ST-LPIPS authors used work
        on RGB) on 8-bit values with data range 255, or ``Lab`` with data range 100.
      small_images: ``shrink`` (default, so that 64x64 BAPPS patches work: the window shrinks to
        fit the coarse scales) or ``error`` (pytorch-msssim's minimum, a side > 160); see
        :func:`~shiftlpips_jax._src.evaluation.msssim.ms_ssim`.

    Returns:
      The :class:`Distance` (cached: one per colour space and rule).
    """
    if small_images not in _msssim.SMALL_IMAGES:
        raise ValueError(f"small_images must be one of {_msssim.SMALL_IMAGES}, got "
                         f"{small_images!r}")
    return _msssim_cached(_check_colorspace(colorspace), small_images)


@functools.lru_cache(maxsize=None)
def _msssim_cached(cs: str, small: str) -> Distance:
    tag = "" if small == "shrink" else ", strict size"
    min_size = _msssim.msssim_min_size(small_images=small)
    if cs == "RGB":
        return Distance(
            name=f"MS-SSIM (RGB{tag})", key=f"msssim/RGB/{small}", min_size=min_size,
            features=lambda p, x: bl.to_uint8_values(x),
            compare=lambda p, a, b: (1.0 - _msssim.ms_ssim(a, b, data_range=255.0,
                                                           small_images=small)) / 2.0)
    return Distance(
        name=f"MS-SSIM (Lab{tag})", key=f"msssim/Lab/{small}", min_size=min_size,
        features=lambda p, x: bl.rgb_to_lab(bl.to_uint8_values(x) / 255.0),
        compare=lambda p, a, b: (1.0 - _msssim.ms_ssim(a, b, data_range=100.0,
                                                       small_images=small)) / 2.0)


@functools.lru_cache(maxsize=None)
def dists_distance() -> Distance:
    """DISTS (Ding et al., TPAMI 2020) with the official weights, at the images' own size.

    Returns:
      The :class:`Distance` (loaded once per process).
    """
    variables, module = load_dists()

    def features(params, x):
        return module.apply(params, x, method=DISTS.features)

    def compare(params, fx, fy):
        return module.apply(params, fx, fy, method=DISTS.compare_features)

    return Distance(name="DISTS", key="dists", features=features, compare=compare,
                    params=variables, min_size=1)


_MSSSIM_NAMES = ("msssim", "ms-ssim", "ms_ssim")


def get_distance(net: str = "alex", variant: str = "shift_tolerant", *,
                 colorspace: str | None = None, checkpoint: str | None = None) -> Distance:
    """``alex`` / ``vgg`` (pretrained ``variant``), ``dists``, the ``l2`` / ``ssim`` / ``msssim``
    baselines, or a checkpoint. ``colorspace=None`` is each baseline's default: Lab for l2 and
    ssim (as upstream), RGB for msssim.

    Args:
      net: ``alex`` or ``vgg`` (pretrained), ``dists``, or a baseline: ``l2``, ``ssim``,
        ``msssim``.
      variant: the pretrained variant (``shift_tolerant`` or ``lpips``) of a learned net.
      colorspace: the baselines' colour space (``Lab`` or ``RGB``; ``None``: their default).
      checkpoint: a metric directory; overrides ``net`` and ``variant``.

    Returns:
      The :class:`Distance` (pretrained and baseline ones are cached per process).
    """
    if checkpoint is not None:
        return learned_distance(load(checkpoint=checkpoint))
    name = net.lower()
    if name == "l2":
        return l2_distance(colorspace or "Lab")
    if name in ("ssim", "dssim"):
        return ssim_distance(colorspace or "Lab")
    if name in _MSSSIM_NAMES:
        return msssim_distance(colorspace or "RGB")
    if name == "dists":
        return dists_distance()
    return _pretrained(net, variant)


@functools.lru_cache(maxsize=8)
def _pretrained(net: str, variant: str) -> Distance:
    return learned_distance(load(net, variant))
