"""The BAPPS 2AFC training objective of LPIPS / ST-LPIPS, as upstream's ``BCERankingLoss``.

Given distances ``d0 = d(ref, p0)`` and ``d1 = d(ref, p1)`` a small "rank" network maps the
five features ``(d0, d1, d0 - d1, d0 / (d1 + 0.1), d1 / (d0 + 0.1))`` through 1x1 convolutions
5 -> 32 -> 32 -> 1 with LeakyReLU(0.2) to the probability that humans preferred ``p1`` (Zhang et al.,
CVPR 2018, Sec. 3.3; Ghildyal & Liu, ECCV 2022 trains ST-LPIPS with the same loss). The loss is
PyTorch's ``BCELoss`` (mean, log clamped at -100) against the judge fraction in [0, 1].

A 1x1 convolution on a (N, 5, 1, 1) tensor is a dense layer on (N, 5); the layers are named after
upstream's ``Dist2LogitLayer.model`` indices (``model_0``, ``model_2``, ``model_4``) so that
converted PyTorch weights map one-to-one (``kernel = weight[:, :, 0, 0].T``).

Example::

    rank = RankNet()
    rank_params = rank.init(jax.random.key(0), d0, d1)["params"]
    loss = bce_ranking_loss(rank.apply({"params": rank_params}, d0, d1), judge)
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from shiftlpips_jax._src.evaluation.scores import twoafc_per_sample
from shiftlpips_jax._src.pixels import to_unit_range

__all__ = ["RankNet", "rank_features", "rank_params_from_torch", "bce_ranking_loss",
           "two_afc_agreement", "torch_default_dense_init"]

# The train/eval steps score and convert with the package's one 2AFC scorer and image converter.
two_afc_score = twoafc_per_sample
images_to_unit_range = to_unit_range

RANK_EPS = 0.1  # upstream Dist2LogitLayer.forward(eps=0.1)
LOG_CLAMP = -100.0  # torch.nn.BCELoss clamps log(p) and log(1 - p) at -100


def torch_default_dense_init(fan_in: int):
    """PyTorch's default ``Conv2d``/``Linear`` init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def rank_features(d0: jax.Array, d1: jax.Array, eps: float = RANK_EPS) -> jax.Array:
    """(N,), (N,) -> (N, 5): upstream's ``cat((d0, d1, d0-d1, d0/(d1+eps), d1/(d0+eps)))``."""
    return jnp.stack([d0, d1, d0 - d1, d0 / (d1 + eps), d1 / (d0 + eps)], axis=-1)


class RankNet(nn.Module):
    """Upstream's ``Dist2LogitLayer``: distances -> logit of P(humans preferred p1).

    Returns logits (N,); the probability is ``sigmoid(logits)``. Initialised like PyTorch's
    default 1x1 conv (uniform in +-1/sqrt(fan_in) for weights and biases).
    """

    chn_mid: int = 32

    @nn.compact
    def __call__(self, d0: jax.Array, d1: jax.Array) -> jax.Array:
        x = rank_features(d0.astype(jnp.float32), d1.astype(jnp.float32))
        for name, fan_in, width in (("model_0", 5, self.chn_mid),
                                    ("model_2", self.chn_mid, self.chn_mid),
                                    ("model_4", self.chn_mid, 1)):
            x = nn.Dense(width, kernel_init=torch_default_dense_init(fan_in),
                         bias_init=torch_default_dense_init(fan_in), name=name)(x)
            if name != "model_4":
                x = nn.leaky_relu(x, negative_slope=0.2)
        return x[..., 0]


def rank_params_from_torch(state, *, prefix: str = "") -> dict:
    """Upstream ``Dist2LogitLayer`` tensors (``{prefix}model.{0,2,4}.{weight,bias}``) -> params.

    Reads e.g. the ``*_net_rank.pth`` files upstream's ``Trainer.save`` writes. Strict: every
    tensor must be present with the 1x1-conv shape.
    """
    import numpy as np

    params = {}
    for idx in (0, 2, 4):
        w = np.asarray(state[f"{prefix}model.{idx}.weight"], np.float32)
        b = np.asarray(state[f"{prefix}model.{idx}.bias"], np.float32)
        if w.ndim != 4 or w.shape[2:] != (1, 1) or b.shape != (w.shape[0],):
            raise ValueError(f"{prefix}model.{idx}: weight {w.shape} / bias {b.shape} are not a "
                             "1x1 conv")
        params[f"model_{idx}"] = {"kernel": w[:, :, 0, 0].T.copy(), "bias": b}
    return params


def bce_ranking_loss(logits: jax.Array, judge: jax.Array) -> jax.Array:
    """Mean binary cross-entropy of ``sigmoid(logits)`` against ``judge`` in [0, 1].

    Matches ``torch.nn.BCELoss()(sigmoid(logits), judge)`` including its clamp of each log term
    at -100; ``log_sigmoid`` keeps the value and gradient finite for large logits.

    Args:
      logits: (N,) rank-network logits of P(people preferred p1).
      judge: (N,) fraction of people who preferred p1.

    Returns:
      The scalar mean loss.
    """
    judge = judge.astype(jnp.float32)
    log_p = jnp.maximum(jax.nn.log_sigmoid(logits), LOG_CLAMP)
    log_q = jnp.maximum(jax.nn.log_sigmoid(-logits), LOG_CLAMP)
    return -jnp.mean(judge * log_p + (1.0 - judge) * log_q)


def two_afc_agreement(d0: jax.Array, d1: jax.Array, judge: jax.Array) -> jax.Array:
    """Per-example training accuracy as upstream ``Trainer.compute_accuracy``.

    ``judge`` if the metric prefers p1 (``d1 < d0``), else ``1 - judge`` (ties count for p0).
    """
    d1_lt_d0 = (d1 < d0).astype(jnp.float32)
    return d1_lt_d0 * judge + (1.0 - d1_lt_d0) * (1.0 - judge)
