"""The LPIPS head (Zhang et al., CVPR 2018) over any backbone, as used by ST-LPIPS.

d(x, y) = sum over taps l of mean_{h,w} w_l . (f_l(x) - f_l(y))^2, where f_l are the backbone's
tap features unit-normalised over channels and w_l >= 0 are learned 1x1 "linear" heads. Inputs are
NHWC in [-1, 1] and first pass through LPIPS v0.1's scaling layer. With ``spatial=True`` each tap's
map is bilinearly upsampled (PyTorch ``align_corners=False``) to the input size instead of averaged.

The module is a pure linen module: ``LPIPS(net=backbone).apply(variables, x, y)`` does no value
checks, so it composes with ``jax.jit``, ``jax.grad``, ``jax.vmap`` and ``shard_map``.

A loss against fixed targets (image optimisation, a generator pulled toward fixed images)
should cache the targets' features: each step then runs the trunk forward and backward on ``x``
only (benchmarks/loss_cache.py: on 2 CPU cores the loss value is ~2x and its gradient ~1.5x
faster than recomputing the targets' features every step).

Example::

    model = LPIPS(net=make_backbone("alex", "shift_tolerant"))
    d = model.apply(variables, x, y)                       # (N,)
    ft = model.apply(variables, t, method=LPIPS.features)  # once, for fixed targets t

    def loss(x):                                           # per training step
        fx = model.apply(variables, x, method=LPIPS.features)
        return model.apply(variables, fx, ft, method=LPIPS.compare_features).mean()
    g = jax.jit(jax.grad(loss))(x)
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from . import cpu_kernels, layers
from .cpu_kernels import batch_chunks  # noqa: F401 - re-exported (benchmarks use it)

__all__ = ["LPIPS", "normalize_features", "upsample_bilinear", "batch_chunks", "SHIFT", "SCALE",
           "EPS"]

# LPIPS v0.1 ScalingLayer constants (ImageNet statistics mapped to [-1, 1] inputs).
SHIFT = np.array([-0.030, -0.088, -0.188], dtype=np.float32)
SCALE = np.array([0.458, 0.448, 0.450], dtype=np.float32)
EPS = 1e-10


def normalize_features(f: jax.Array, eps: float = EPS) -> jax.Array:
    """``f / (||f||_channels + eps)`` with a finite gradient where the channel vector is zero.

    Upstream computes ``sqrt(sum f^2)``, whose derivative is infinite at 0, so a dead location
    (all channels zero after ReLU) gives NaN gradients. Here the square root only sees positive
    sums; at zero the value is exactly upstream's (0) and the gradient is finite.
    """
    f = f.astype(jnp.float32)
    sq = jnp.sum(f * f, axis=-1, keepdims=True)
    positive = sq > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
    return f / (norm + eps)


def _batch_sharded(x: jax.Array) -> bool:
    """Whether the batch axis of ``x`` is sharded over an Explicit mesh axis."""
    spec = jax.typeof(x).sharding.spec
    return len(spec) > 0 and spec[0] is not None


def _eval_chunks(x: jax.Array, n, net=None) -> list[tuple[int, int]]:
    """How :class:`LPIPS` cuts an evaluation batch of ``n`` images like ``x`` when lowered for
    CPU (:func:`cpu_kernels.batch_chunks`). A batch sharded over Explicit mesh axes is not cut:
    each device already holds a part of it, and slices across shards have no sharding."""
    if _batch_sharded(x):
        return [(0, n)]
    return cpu_kernels.batch_chunks(n, x.shape[1], x.shape[2], tap_values=_first_tap_values(
        net, x.shape[1], x.shape[2]), evaluation=cpu_kernels.forward_only_enabled())


def _first_tap_values(net, h: int, w: int) -> int | None:
    """Values per image in the backbone's first tap at input size ``h`` x ``w`` (None when the
    backbone does not say its tap sizes)."""
    if net is None or not hasattr(net, "tap_sizes") or not hasattr(net, "channels"):
        return None
    sh, sw = net.tap_sizes(h)[0], net.tap_sizes(w)[0]
    return sh * sw * tuple(net.channels)[0] or None


def _interp_matrix(out_size: int, in_size: int) -> np.ndarray:
    """Row i holds PyTorch's bilinear (align_corners=False) weights of output i over the input."""
    m = np.zeros((out_size, in_size), dtype=np.float32)
    scale = in_size / out_size
    for i in range(out_size):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(np.floor(src)), in_size - 1)
        i1 = min(i0 + 1, in_size - 1)
        lam = src - i0
        m[i, i0] += 1.0 - lam
        m[i, i1] += lam
    return m


def upsample_bilinear(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """(N, h, w, C) -> (N, H, W, C), PyTorch ``Upsample(mode='bilinear', align_corners=False)``."""
    mh = jnp.asarray(_interp_matrix(size[0], x.shape[1]))
    mw = jnp.asarray(_interp_matrix(size[1], x.shape[2]))
    return jnp.einsum("Hh,nhwc,Ww->nHWc", mh, x, mw, precision=jax.lax.Precision.HIGHEST)


class _Head(nn.Module):
    """LPIPS's linear head: a bias-free 1x1 convolution to one channel, with ``nn.Conv``'s
    parameter (``kernel`` of shape (1, 1, C, 1), LeCun-normal init), computed as a matmul over
    the channels (XLA:CPU's 1x1 convolution to a single channel is slower: 1.5 against 1.25 ms
    for one 256x256 CPU chunk of LPIPS alex's taps)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (1, 1, x.shape[-1], 1))
        kernel = kernel[0, 0].astype(x.dtype)
        return jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))


class LPIPS(nn.Module):
    """Learned perceptual distance: backbone taps -> unit-normalise -> squared diff -> heads.

    Attributes:
      net: the backbone (see :func:`make_backbone`); its taps feed one head each.
      use_dropout: dropout(0.5) before each head when ``train=True`` (as upstream training).
      lpips: ``False`` gives the "baseline" distance (channel sum instead of learned heads).

    Parameter tree: ``{"net": {...backbone...}, "lin0": {"kernel": (1,1,C0,1)}, ...}``; a ResNet
    backbone adds ``batch_stats``.
    """

    net: nn.Module
    use_dropout: bool = True
    lpips: bool = True

    def setup(self):
        if self.lpips:
            for k in range(len(self.net.channels)):
                setattr(self, f"lin{k}", _Head())
        self.dropout = nn.Dropout(0.5)

    def features(self, x: jax.Array, *, train: bool = False) -> tuple[jax.Array, ...]:
        """Unit-normalised tap features of images ``x`` (N, H, W, 3) in [-1, 1] (float32)."""
        if train or self.is_initializing():
            return self._features(x, train=train)
        bounds = _eval_chunks(x, x.shape[0], self.net)

        def whole(x):
            return self._features(x, train=False)

        def chunked(x):
            parts = [self._features(x[a:b], train=False) for a, b in bounds]
            return tuple(jnp.concatenate(tap, axis=0) for tap in zip(*parts))

        return layers.per_platform(whole, x, cpu=chunked if len(bounds) > 1 else whole)

    def _features(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, ...]:
        x = (x - jnp.asarray(SHIFT)) / jnp.asarray(SCALE)
        taps = self.net(x, train=train)
        return tuple(normalize_features(t) for t in taps.values())

    def compare_features(self, fx: Sequence[jax.Array], fy: Sequence[jax.Array], *,
                         spatial_size: tuple[int, int] | None = None, per_layer: bool = False,
                         train: bool = False):
        """Distance from normalised features (see :meth:`features`).

        Args:
          fx, fy: tuples of normalised tap features; batch sizes must broadcast.
          spatial_size: (H, W) to return an upsampled (N, H, W, 1) map instead of (N,).
          per_layer: also return each tap's contribution.
          train: apply head dropout (needs a ``dropout`` rng).
        """
        res = []
        for k, (a, b) in enumerate(zip(fx, fy)):
            diff = (a - b) ** 2
            if self.lpips:
                if self.use_dropout:
                    diff = self.dropout(diff, deterministic=not train)
                val = getattr(self, f"lin{k}")(diff)
            else:
                val = jnp.sum(diff, axis=-1, keepdims=True)
            if spatial_size is None:
                val = jnp.mean(val, axis=(1, 2, 3))
            else:
                val = upsample_bilinear(val, spatial_size)
            res.append(val)
        total = res[0]
        for r in res[1:]:
            total = total + r
        if per_layer:
            return total, tuple(res)
        return total

    def __call__(self, x: jax.Array, y: jax.Array, *, spatial: bool = False,
                 per_layer: bool = False, train: bool = False):
        """Distance between image batches ``x`` and ``y``, (N, H, W, 3) in [-1, 1].

        Returns:
          (N,) distances; (N, H, W, 1) maps with ``spatial=True``; with ``per_layer=True`` a tuple
          ``(total, per_tap)`` where ``per_tap`` holds one (N,) (or map) per tap.
        """
        # Two backbone calls, not one on concat([x, y]): under jax.grad with respect to x only,
        # the y branch then stays forward-only (a concatenated batch backpropagates through
        # both halves: ~1.7x slower input gradients), and the forward is no slower on CPU. In
        # training, batch statistics (ResNet) are per input batch, as upstream.
        size = (x.shape[1], x.shape[2]) if spatial else None
        if train or self.is_initializing():
            # Mutable batch statistics: no platform switch around them.
            return self._whole(x, y, size=size, per_layer=per_layer, train=train)
        # Evaluation may take the forward-only CPU kernels (cpu_kernels.forward_only) on both
        # branches; any derivative of it runs without them on both.
        module, variables = self.unbind()

        def evaluate(variables, x, y):
            return module.apply(variables, x, y, size=size, per_layer=per_layer,
                                method=LPIPS._evaluate)

        return cpu_kernels.forward_only(evaluate, variables, x, y)

    def _whole(self, x: jax.Array, y: jax.Array, *, size, per_layer: bool, train: bool):
        """The distance of the whole batches, in one backbone call per side."""
        fx, fy = self._features(x, train=train), self._features(y, train=train)
        return self.compare_features(fx, fy, spatial_size=size, per_layer=per_layer, train=train)

    def _evaluate(self, x: jax.Array, y: jax.Array, *, size, per_layer: bool):
        """The inference distance: on CPU cut into batch chunks, elsewhere :meth:`_whole`."""
        whole = functools.partial(self._whole, size=size, per_layer=per_layer, train=False)
        n = y.shape[0] if x.shape[0] == 1 else x.shape[0]   # no max(): n may be symbolic
        bounds = _eval_chunks(x if x.shape[0] != 1 else y, n, self.net)

        def chunked(x, y):
            # Chunk by chunk (see cpu_kernels.batch_chunks); a batch-1 side is computed once.
            fx_all = self._features(x, train=False) if x.shape[0] == 1 else None
            fy_all = self._features(y, train=False) if y.shape[0] == 1 else None
            outs = []
            for a, b in bounds:
                fx = fx_all if fx_all is not None else self._features(x[a:b], train=False)
                fy = fy_all if fy_all is not None else self._features(y[a:b], train=False)
                outs.append(self.compare_features(fx, fy, spatial_size=size,
                                                  per_layer=per_layer))
            return jax.tree.map(lambda *o: jnp.concatenate(o, axis=0), *outs)

        # One platform switch for the whole distance; only the CPU branch cuts the batch.
        return layers.per_platform(whole, x, y, cpu=chunked if len(bounds) > 1 else whole)
