"""The public entry point: :func:`load` returns a jitted, validating :class:`Metric`.

A :class:`Metric` wraps a pure linen module (:class:`LPIPS`, or DISTS) and its variables. Calling it checks
shapes and dtypes on the host, runs one jitted program per input shape (distance plus a fused
min/max of the inputs) and raises on out-of-range values. It also works inside your own
``jax.jit``, ``jax.grad`` and ``jax.vmap`` (shape and dtype checks still apply; the value-range
check is skipped for traced values). The pure function ``metric.module.apply(metric.variables, x,
y)`` (inputs in [-1, 1], no checks) is what to pass params to explicitly, e.g. inside
``shard_map``.

Example::

    import shiftlpips_jax as sl
    metric = sl.load("alex")                  # ST-LPIPS AlexNet (Ghildyal & Liu, ECCV 2022)
    d = metric(x, y)                          # (N, H, W, 3) in [-1, 1] -> (N,)
    g = jax.grad(lambda x, t: metric(x, t).mean())(x, target)
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from . import backbones, validation
from .errors import InputError
from .weights import checkpoint as checkpoint_lib
from .weights import registry
from .dists import load_dists
from .lpips import LPIPS

__all__ = ["Metric", "load", "available_models", "REDUCTIONS"]

REDUCTIONS = ("none", "mean", "sum")  # what ``Metric.__call__(..., reduction=)`` accepts

# DISTS (Ding et al., TPAMI 2020) has one set of weights: DISTS-pytorch 0.1's.
DISTS_MODEL = ("dists", "official")


def available_models() -> list[tuple[str, str]]:
    """The ``(net, variant)`` pairs :func:`load` has pretrained weights for."""
    return sorted([*registry.PRETRAINED, DISTS_MODEL])


def _traits(module) -> tuple[int, int, bool]:
    """``(min_size, feature maps per image, has a spatial map)`` of a wrapped module.

    Every wrapped module has ``__call__(x, y, *, per_layer)``, ``features(x)`` and
    ``compare_features(fx, fy, *, per_layer)``. :class:`LPIPS` derives the rest from its
    backbone; other modules (DISTS, MS-SSIM) declare ``min_size`` and ``num_features`` and have
    no spatial map.
    """
    if isinstance(module, LPIPS):
        return backbones.min_input_size(module.net), len(module.net.channels), True
    return int(module.min_size), int(module.num_features), False


class Metric:
    """A perceptual distance with loaded weights.

    Attributes:
      module: the pure linen module (:class:`LPIPS`, DISTS or MS-SSIM).
      variables: its variables (``{"params": ..., ["batch_stats": ...]}``) for ``module.apply``.
      params: deprecated alias of ``variables`` (it always held all variables, not only
        ``"params"``); warns with a DeprecationWarning.
      net, variant: what was loaded.
      min_size: smallest H and W the backbone accepts.
    """

    def __init__(self, module: LPIPS, variables: Any, *, net: str, variant: str,
                 precision: str = "highest"):
        self.module = module
        # Convolutions at full float32 by default: GPUs otherwise use TF32 (~1e-3 relative error).
        self.precision = precision
        self.variables = jax.tree.map(jnp.asarray, variables)
        self.net = net
        self.variant = variant
        self.min_size, self._num_features, self.has_spatial_map = _traits(module)
        self._distance = jax.jit(self._distance_impl,
                                 static_argnames=("normalize", "spatial", "per_layer"))
        self._features = jax.jit(self._features_impl, static_argnames=("normalize",))
        self._compare = jax.jit(self._compare_impl, static_argnames=("per_layer",))

    def __repr__(self) -> str:
        return f"Metric(net={self.net!r}, variant={self.variant!r}, min_size={self.min_size})"

    @property
    def params(self) -> Any:
        """Deprecated alias of :attr:`variables`."""
        warnings.warn("Metric.params is deprecated; use Metric.variables (the same dict of all "
                      "variables)", DeprecationWarning, stacklevel=2)
        return self.variables

    @property
    def name(self) -> str:
        return f"{self.net}/{self.variant}"

    # -- jitted bodies (traced once per input shape and option set) ---------------------------
    def _distance_impl(self, variables, x, y, *, normalize, spatial, per_layer):
        stats = validation.range_stats(x, y)
        x = validation.to_unit_range(x, normalize)
        y = validation.to_unit_range(y, normalize)
        with jax.default_matmul_precision(self.precision):
            extra = {"spatial": True} if spatial else {}   # only LPIPS has the option
            out = self.module.apply(variables, x, y, per_layer=per_layer, **extra)
        return out, stats

    def _features_impl(self, variables, x, *, normalize):
        stats = validation.range_stats(x)
        x = validation.to_unit_range(x, normalize)
        with jax.default_matmul_precision(self.precision):
            return self.module.apply(variables, x, method="features"), stats

    def _compare_impl(self, variables, fx, fy, *, per_layer):
        with jax.default_matmul_precision(self.precision):
            return self.module.apply(variables, fx, fy, per_layer=per_layer,
                                     method="compare_features")

    # -- public API ---------------------------------------------------------------------------
    def __call__(self, x: jax.Array, y: jax.Array, *, normalize: bool = False,
                 spatial: bool = False, per_layer: bool = False, reduction: str = "none"):
        """Perceptual distance between ``x`` and ``y``.

        Args:
          x, y: (N, H, W, 3) images, channels last, floats in [-1, 1] (or [0, 1] with
            ``normalize=True``) or uint8 in [0, 255]. A single (H, W, 3) image pair gives a scalar.
          normalize: the float inputs are in [0, 1].
          spatial: return a (N, H, W, 1) distance map (per-tap maps upsampled bilinearly).
          per_layer: also return each tap's contribution.
          reduction: ``"none"`` (default: one result per pair), ``"mean"`` or ``"sum"`` over the
            pairs (the batch axis) of every output, e.g. a scalar distance. A NaN pair makes
            the mean and sum NaN.

        Returns:
          (N,) float32 distances (or maps); with ``per_layer`` a tuple ``(d, layers)``; reduced
          over N (a scalar, or an (H, W, 1) map) with ``reduction="mean"`` / ``"sum"``.

        Raises:
          InputError (a ValueError) / InputTypeError (a TypeError) naming the problem: shapes,
          channels, sizes below ``min_size``, dtypes, or values outside the range (concrete
          inputs only: under ``jax.jit``/``jax.grad``/``jax.vmap`` of this call the range is not
          checked); ``InputError`` for an unknown ``reduction``.
        """
        if reduction not in REDUCTIONS:
            raise InputError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; "
                             f"got {reduction!r}")
        if spatial and not self.has_spatial_map:
            raise InputError(f"{self.name} has no spatial distance map (it compares whole-image "
                             "statistics); call it without spatial=True")
        x, y, single = validation.prepare_pair(x, y, min_size=self.min_size, normalize=normalize,
                                               model=self.name)
        out, stats = self._distance(self.variables, x, y, normalize=normalize, spatial=spatial,
                                    per_layer=per_layer)
        validation.check_range(stats, normalize, "x and y")
        if reduction != "none":
            reduce = jnp.mean if reduction == "mean" else jnp.sum
            return jax.tree.map(lambda a: reduce(a, axis=0), out)
        if single:
            out = jax.tree.map(lambda a: a[0], out)
        return out

    def features(self, x: jax.Array, *, normalize: bool = False) -> tuple[jax.Array, ...]:
        """Unit-normalised tap features of ``x`` (cache them for fixed targets).

        ``metric.distance_from_features(metric.features(x), metric.features(y))`` equals
        ``metric(x, y)``; computing a fixed target's features once saves half the backbone work
        of a training loss. Inside your own jit use
        ``metric.module.apply(metric.variables, x, method=sl.LPIPS.features)``.
        """
        x, _ = validation.prepare_image(x, "x", min_size=self.min_size, normalize=normalize,
                                        model=self.name)
        feats, stats = self._features(self.variables, x, normalize=normalize)
        validation.check_range(stats, normalize, "x")
        return feats

    def distance_from_features(self, fx: Sequence[jax.Array], fy: Sequence[jax.Array], *,
                               per_layer: bool = False):
        """Distance (N,) from two results of :meth:`features` (batch sizes may broadcast)."""
        fx, fy = tuple(fx), tuple(fy)
        taps = self._num_features
        if len(fx) != taps or len(fy) != taps:
            raise InputError(f"expected {taps} feature maps per input (one per tap of "
                             f"{self.name}); got {len(fx)} and {len(fy)}")
        for k, (a, b) in enumerate(zip(fx, fy)):
            if a.shape[1:] != b.shape[1:] or (a.shape[0] != b.shape[0] and 1 not in
                                              (a.shape[0], b.shape[0])):
                raise InputError(f"tap {k}: feature shapes {tuple(a.shape)} and {tuple(b.shape)} "
                                 "do not match (images of different sizes?)")
        return self._compare(self.variables, fx, fy, per_layer=per_layer)


def load(net: str = "alex", variant: str | None = None, *, checkpoint: str | None = None,
         weights: str | None = None, dtype: Any = jnp.float32, precision: str = "highest",
         cache: bool = True) -> Metric:
    """Loads a pretrained perceptual metric (no network access).

    Args:
      net: ``"alex"`` or ``"vgg"`` (aliases ``alexnet``, ``vgg16``), or ``"dists"`` (DISTS,
        Ding et al. TPAMI 2020, the official weights; no spatial map).
      variant: ``"shift_tolerant"`` (ST-LPIPS, default) or ``"lpips"`` (LPIPS v0.1); for
        ``dists`` only ``"official"`` (the default there).
      checkpoint: a metric directory written by ``convert/`` or by training; overrides
        ``net``/``variant``.
      weights: a local copy of the source weight file (checksum verified; for ``dists`` the
        ``DISTS_pytorch/weights.pt`` of alpha and beta).
      dtype: backbone computation dtype (e.g. ``jnp.bfloat16``); heads run in float32.
      precision: convolution precision of the wrapper's jitted calls (``jax.
        default_matmul_precision``): ``"highest"`` (true float32, default) or ``"default"`` (lets
        GPUs/TPUs use TF32/bf16 passes: faster, not float32-exact). ``module.apply`` inside your
        own jit follows your own precision setting.
      cache: reuse converted weights from the cache directory.

    Raises:
      InputError (a ValueError): unknown net or variant (the message lists the known ones).
      WeightsError: missing, corrupt or checksum-mismatched weight file (names file and fix).
    """
    if checkpoint is not None:
        module, variables, meta = checkpoint_lib.load_metric(checkpoint, dtype=dtype)
        return Metric(module, variables, net=meta["net"], variant=meta["variant"],
                      precision=precision)
    if net.lower() == DISTS_MODEL[0]:
        if variant not in (None, DISTS_MODEL[1]):
            raise InputError(f"unknown variant {variant!r} for net 'dists'; pretrained variants: "
                             f"['{DISTS_MODEL[1]}']")
        variables, module = load_dists(weights=weights, dtype=dtype)
        return Metric(module, variables, net=DISTS_MODEL[0], variant=DISTS_MODEL[1],
                      precision=precision)
    variant = "shift_tolerant" if variant is None else variant
    canonical = backbones.NET_ALIASES.get(net, net)
    known = available_models()
    if canonical not in {n for n, _ in known}:
        raise InputError(f"unknown net {net!r}; pretrained nets: {sorted({n for n, _ in known})} "
                         f"(models: {known})")
    if (canonical, variant) not in registry.PRETRAINED:
        variants = sorted(v for n, v in known if n == canonical)
        raise InputError(f"unknown variant {variant!r} for net {canonical!r}; pretrained variants: "
                         f"{variants}. Untrained ablation backbones are built with "
                         "sl.make_backbone(...) and sl.LPIPS(net=...).")
    variables, module = registry.load_pretrained(canonical, variant, weights=weights, cache=cache,
                                                 dtype=dtype)
    return Metric(module, variables, net=canonical, variant=variant, precision=precision)

