"""The training state: one pytree holding everything a step reads and writes.

``TrainState`` is replicated over the device mesh. Its ``params`` are
``{"metric": <LPIPS params: net, lin0..>, "rank": <RankNet params>}``; ``batch_stats`` holds the
trunk's BatchNorm running statistics (``{}`` for nets without BatchNorm); ``bad_step`` is -1 until
a step sees a non-finite loss or gradient, then the first such step (that step's update is not
applied, so the parameters stay the last good ones).

:func:`to_checkpoint` / :func:`from_checkpoint` convert to and from a tree of plain dicts and
arrays (the form Orbax writes), so checkpoints do not depend on optax's state classes.

Example::

    state = TrainState.create(params=params, batch_stats={}, tx=tx)
    tree = to_checkpoint(state); state = from_checkpoint(state, tree)
"""

from __future__ import annotations

from typing import Any

import flax.serialization
import flax.struct
import jax
import jax.numpy as jnp
import optax

__all__ = ["TrainState", "to_checkpoint", "from_checkpoint", "metric_variables"]


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    bad_step: jax.Array

    @classmethod
    def create(cls, *, params, batch_stats, tx: optax.GradientTransformation) -> "TrainState":
        params = jax.tree.map(jnp.asarray, params)
        return cls(step=jnp.zeros((), jnp.int32), params=params,
                   batch_stats=jax.tree.map(jnp.asarray, batch_stats or {}),
                   opt_state=tx.init(params), bad_step=jnp.full((), -1, jnp.int32))


def metric_variables(state: TrainState) -> dict:
    """The LPIPS variables (``{"params": ..., ["batch_stats": ...]}``) of ``state``."""
    out = {"params": state.params["metric"]}
    if state.batch_stats:
        out["batch_stats"] = state.batch_stats
    return out


def to_checkpoint(state: TrainState) -> dict:
    return flax.serialization.to_state_dict(state)


def from_checkpoint(template: TrainState, tree: dict) -> TrainState:
    return flax.serialization.from_state_dict(template, tree)
