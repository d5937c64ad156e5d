"""Optimiser, learning-rate schedule and weight clamping of upstream's ``Trainer``.

* Adam (lr 1e-4, betas (0.5, 0.999), eps 1e-8) over the metric (trunk and heads) and the rank
  network; with ``train_trunk=False`` (LPIPS "lin") the trunk is frozen: it gets no gradient and
  no optimiser state.
* Learning rate: constant for ``nepoch`` epochs, then linear decay. Upstream's ``train.py`` lowers
  it by ``lr / nepoch_decay`` at the *end* of every epoch ``e > nepoch`` (1-based), so with 5 + 5
  epochs the per-epoch factors are 1,1,1,1,1,1,0.8,0.6,0.4,0.2; :func:`upstream_lr` reproduces
  exactly that as a function of the step (epoch = examples seen // training-set size).
* After every step, 1x1 conv kernels are clamped to >= 0. Upstream's ``clamp_weights`` clamps
  every module of the metric net with ``kernel_size == (1, 1)``: the LPIPS heads, and for
  SqueezeNet also the fire modules' squeeze/expand1x1 convs and for ResNet-18 the 1x1 shortcut
  convs (``clamp="upstream"``, the default). Upstream's loop actually raises ``AttributeError`` on
  ResNet's BatchNorm (it has ``weight`` but no ``kernel_size``); we apply the evident intent.
  ``clamp="heads"`` clamps the heads only. The rank network is never clamped (it is not part of
  the metric net upstream either).

Example::

    tx = make_optimizer(params, train_trunk=True, schedule=schedule)
    params = clamp_params(optax.apply_updates(params, updates), clamp_mask(params, "upstream"))
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

__all__ = ["upstream_lr", "make_schedule", "trainable_labels", "make_optimizer", "clamp_mask",
           "clamp_params", "CLAMP_RULES"]

CLAMP_RULES = ("upstream", "heads", "none")


def upstream_lr(step, *, base_lr: float, global_batch: int, num_train: int, nepoch: int,
                nepoch_decay: int):
    """Learning rate at ``step`` (0-based) under upstream's per-epoch linear decay.

    Args:
      step: the step (a scalar, traced or not).
      base_lr: the learning rate of the constant phase.
      global_batch: triplets per step.
      num_train: training triplets per epoch.
      nepoch, nepoch_decay: epochs at ``base_lr``, then of linear decay.

    Returns:
      The learning rate (float32).
    """
    epoch = (jnp.asarray(step, jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)
             * global_batch) // num_train
    decayed = jnp.clip(epoch - nepoch, 0, max(nepoch_decay, 1))
    return base_lr * (1.0 - decayed.astype(jnp.float32) / max(nepoch_decay, 1))


def make_schedule(*, base_lr: float, global_batch: int, num_train: int, nepoch: int,
                  nepoch_decay: int) -> Callable:
    if num_train <= 0:
        raise ValueError(f"num_train must be positive, got {num_train}")

    def schedule(step):
        return upstream_lr(step, base_lr=base_lr, global_batch=global_batch,
                           num_train=num_train, nepoch=nepoch, nepoch_decay=nepoch_decay)

    return schedule


def trainable_labels(params: dict, *, train_trunk: bool) -> dict:
    """``"train"`` / ``"frozen"`` per leaf of ``{"metric": ..., "rank": ...}``."""
    flat = traverse_util.flatten_dict(params)
    labels = {p: ("frozen" if (p[0] == "metric" and p[1] == "net" and not train_trunk)
                  else "train") for p in flat}
    return traverse_util.unflatten_dict(labels)


def make_optimizer(params: dict, *, train_trunk: bool, schedule, b1: float = 0.5,
                   b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    """Adam over trainable leaves; frozen leaves get zero updates and no state.

    Args:
      params: ``{"metric": ..., "rank": ...}``.
      train_trunk: train the backbone too (else it is frozen).
      schedule: ``step -> learning rate``.
      b1, b2, eps: Adam's.

    Returns:
      The optax transformation.
    """
    adam = optax.adam(learning_rate=schedule, b1=b1, b2=b2, eps=eps)
    labels = trainable_labels(params, train_trunk=train_trunk)
    if all(v == "train" for v in traverse_util.flatten_dict(labels).values()):
        return adam
    return optax.multi_transform({"train": adam, "frozen": optax.set_to_zero()}, labels)


def clamp_mask(params: dict, rule: str = "upstream") -> dict:
    """True on the leaves clamped to >= 0 after each step (see module docstring)."""
    if rule not in CLAMP_RULES:
        raise ValueError(f"unknown clamp rule {rule!r}; expected one of {CLAMP_RULES}")
    flat = traverse_util.flatten_dict(params)
    mask = {}
    for path, value in flat.items():
        is_1x1 = (path[0] == "metric" and path[-1] == "kernel" and jnp.ndim(value) == 4
                  and tuple(value.shape[:2]) == (1, 1))
        is_head = len(path) > 1 and path[1].startswith("lin")
        mask[path] = bool(is_1x1 and (rule == "upstream" or (rule == "heads" and is_head)))
    return traverse_util.unflatten_dict(mask)


def clamp_params(params: dict, mask: dict) -> dict:
    return jax.tree.map(lambda p, m: jnp.maximum(p, 0.0) if m else p, params, mask)
