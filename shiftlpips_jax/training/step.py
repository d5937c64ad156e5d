"""The pure, data-parallel train and eval steps.

``train_step(state, batch, key) -> (state, metrics)`` is one Adam step of upstream's
``Trainer.optimize_parameters`` on a global batch of 2AFC triplets: ``d0 = d(ref, p0)``,
``d1 = d(ref, p1)`` with head dropout, the rank network's BCE against the judges, the gradient
of its mean over the mesh axis ``"data"`` (``jax.shard_map`` with its default checks, loss
``lax.pmean``'d), Adam, then the 1x1 clamp. Params are replicated, the batch is sharded on
``"data"``.

Randomness is a pure function of ``(key, step, global example index)``: every example draws its
dropout masks from ``fold_in(fold_in(key, step), index)``, so the step gives the same result on 1
device, 4 devices or 2 hosts x 2 devices for the same global batch (up to the reduction order of
the gradient mean), and a resumed run replays exactly.

Upstream runs the trunk on each input separately (so BatchNorm sees per-input batch statistics and
updates its running statistics four times per step: ref, p0, ref, p1); nets without BatchNorm run
ref, p0 and p1 through the trunk as one batch (identical values, one big convolution). Running
statistics are averaged over devices after the step (upstream's DataParallel keeps replica 0's).

A step whose loss or gradient is not finite is not applied: the state keeps its parameters,
``bad_step`` records the first such step, and the host stops the run at its next check.

Example::

    mesh = make_mesh()
    train_step = make_train_step(model, rank, tx, mesh, clamp=clamp_mask(params))
    state, metrics = train_step(state, shard_batch(mesh, numpy_batch), jax.random.key(0))
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from shiftlpips_jax._src.lpips import LPIPS

from shiftlpips_jax._src.training import objective
from shiftlpips_jax._src.training.optim import clamp_params
from shiftlpips_jax._src.training.state import TrainState

__all__ = ["make_mesh", "shard_batch", "replicate", "make_train_step", "make_eval_step", "example_keys",
           "BATCH_KEYS"]

BATCH_KEYS = ("ref", "p0", "p1", "judge")
AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh ``("data",)`` over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (AXIS,))


def shard_batch(mesh: Mesh, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Host-local NumPy batch -> global arrays sharded on ``"data"``.

    Each process passes its own rows; the global batch is the concatenation over processes in
    process order (``jax.make_array_from_process_local_data``).
    """
    sharding = NamedSharding(mesh, P(AXIS))
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(batch[k]))
            for k in BATCH_KEYS if k in batch}


def replicate(mesh: Mesh, tree: Any) -> Any:
    """Places a host tree (same values on every process) replicated over ``mesh``."""
    sharding = NamedSharding(mesh, P())

    def put(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)),
                                            impl=jax.random.key_impl(x))
        x = np.asarray(jax.device_get(x))
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(put, tree)


def example_keys(key: jax.Array, step: jax.Array, index: jax.Array) -> jax.Array:
    """Per-example keys (N,) for global example ``index`` (N,) at ``step``."""
    step_key = jax.random.fold_in(key, step)
    return jax.vmap(lambda i: jax.random.fold_in(step_key, i))(index)


def _has_batch_stats(state_or_stats) -> bool:
    return bool(jax.tree.leaves(state_or_stats))


def _trunk_features(model: LPIPS, params, batch_stats, ref, p0, p1):
    """Normalised tap features of ref, p0, p1 and the new running statistics (train mode)."""
    if not _has_batch_stats(batch_stats):
        n = ref.shape[0]
        feats = model.apply({"params": params}, jnp.concatenate([ref, p0, p1], axis=0),
                            method=LPIPS.features)
        return ([f[:n] for f in feats], [f[n:2 * n] for f in feats],
                [f[2 * n:] for f in feats], batch_stats)
    out = []
    for x in (ref, p0, ref, p1):  # upstream's order: forward(ref, p0), then forward(ref, p1)
        feats, upd = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                 method=LPIPS.features, mutable=["batch_stats"])
        batch_stats = upd["batch_stats"]
        out.append(feats)
    # The two ref passes give identical features (batch statistics of the same batch); XLA
    # merges the duplicate computation, the running statistics see both updates.
    return out[0], out[1], out[3], batch_stats


def _compare(model: LPIPS, params, fa, fb, keys, dropout: bool):
    if not dropout:
        return model.apply({"params": params}, tuple(fa), tuple(fb),
                           method=LPIPS.compare_features)

    def one(a, b, k):
        return model.apply({"params": params}, tuple(x[None] for x in a),
                           tuple(x[None] for x in b), train=True, rngs={"dropout": k},
                           method=LPIPS.compare_features)[0]

    return jax.vmap(one)(tuple(fa), tuple(fb), keys)


def make_train_step(model: LPIPS, rank_model: objective.RankNet,
                    tx: optax.GradientTransformation, mesh: Mesh, *, clamp: Any,
                    trainable: Any | None = None, dropout: bool = True,
                    schedule: Callable | None = None, donate: bool = True,
                    return_grads: bool = False) -> Callable:
    """Builds the jitted ``train_step(state, batch, key) -> (state, metrics)``.

    Args:
      model: the LPIPS module (``use_dropout`` is ignored; ``dropout`` decides).
      rank_model: the rank network.
      tx: the optimiser (see :func:`optim.make_optimizer`).
      mesh: a 1-D ``("data",)`` mesh; the global batch must divide evenly over it.
      clamp: bool tree over ``state.params``: leaves clamped to >= 0 after the update.
      trainable: ``"train"``/``"frozen"`` tree over ``state.params``; frozen leaves are held
        under ``stop_gradient`` (no backward pass through a frozen trunk).
      dropout: head dropout(0.5) during training, as upstream.
      schedule: ``step -> lr``, only to report the learning rate in ``metrics``.
      donate: donate the input state's buffers.
      return_grads: also return the averaged gradients as ``metrics["grads"]`` (for tests and
        debugging; they stay on device like the other metrics).

    Returns:
      The step; ``metrics`` holds replicated scalars ``loss``, ``acc`` (upstream's training
      2AFC agreement), ``lr``, ``grad_norm`` and ``finite``.
    """

    def loss_fn(params, batch_stats, ref, p0, p1, judge, keys0, keys1):
        if trainable is not None:
            params = jax.tree.map(lambda p, t: p if t == "train" else lax.stop_gradient(p),
                                  params, trainable)
        fr, f0, f1, new_stats = _trunk_features(model, params["metric"], batch_stats, ref, p0, p1)
        d0 = _compare(model, params["metric"], fr, f0, keys0, dropout)
        d1 = _compare(model, params["metric"], fr, f1, keys1, dropout)
        logits = rank_model.apply({"params": params["rank"]}, d0, d1)
        loss = objective.bce_ranking_loss(logits, judge)
        return loss, (d0, d1, new_stats)

    def per_device(state: TrainState, batch, key):
        n = batch["judge"].shape[0]
        index = lax.axis_index(AXIS) * n + jnp.arange(n)
        ex_keys = example_keys(key, state.step, index)
        keys0 = jax.vmap(lambda k: jax.random.fold_in(k, 0))(ex_keys)
        keys1 = jax.vmap(lambda k: jax.random.fold_in(k, 1))(ex_keys)
        ref, p0, p1 = (objective.images_to_unit_range(batch[k]) for k in ("ref", "p0", "p1"))
        judge = batch["judge"].astype(jnp.float32)

        def global_loss(params):
            # The mean over the mesh of the per-device losses: its gradient with respect to the
            # replicated params is the mean of the per-device gradients (shard_map's
            # varying-axes typing inserts the reduction when it transposes the broadcast).
            loss, aux = loss_fn(params, state.batch_stats, ref, p0, p1, judge, keys0, keys1)
            return lax.pmean(loss, AXIS), aux

        (loss, (d0, d1, new_stats)), grads = jax.value_and_grad(global_loss, has_aux=True)(
            state.params)
        acc = lax.pmean(jnp.mean(objective.two_afc_agreement(d0, d1, judge)), AXIS)
        new_stats = lax.pmean(new_stats, AXIS)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = clamp_params(optax.apply_updates(state.params, updates), clamp)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

        def pick(new, old):
            return jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)

        new_state = TrainState(
            step=state.step + 1,
            params=pick(params, state.params),
            batch_stats=pick(new_stats, state.batch_stats),
            opt_state=pick(opt_state, state.opt_state),
            bad_step=jnp.where((state.bad_step < 0) & ~finite, state.step, state.bad_step))
        lr = schedule(state.step) if schedule is not None else jnp.float32(jnp.nan)
        metrics = {"loss": loss, "acc": acc, "lr": jnp.asarray(lr, jnp.float32),
                   "grad_norm": grad_norm, "finite": finite}
        if return_grads:
            metrics["grads"] = grads
        return new_state, metrics

    # shard_map's default checks: the outputs are typed replicated (everything is pmean'd).
    sharded = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS), P()),
                            out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=(0,) if donate else ())


def make_eval_step(model: LPIPS, mesh: Mesh) -> Callable:
    """Jitted ``eval_step(variables, batch) -> {"score_sum", "count", "d0", "d1"}``.

    Distances in eval mode (no dropout, BatchNorm running statistics); ``batch`` may carry a
    ``mask`` (1 for real rows, 0 for padding) so a ragged last batch keeps a fixed shape.
    ``score_sum``/``count`` are summed over the mesh (2AFC = score_sum / count).
    """

    def per_device(variables, batch):
        ref, p0, p1 = (objective.images_to_unit_range(batch[k]) for k in ("ref", "p0", "p1"))
        n = ref.shape[0]
        feats = model.apply(variables, jnp.concatenate([ref, p0, p1], axis=0),
                            method=LPIPS.features)
        fr = tuple(f[:n] for f in feats)
        d0 = model.apply(variables, fr, tuple(f[n:2 * n] for f in feats),
                         method=LPIPS.compare_features)
        d1 = model.apply(variables, fr, tuple(f[2 * n:] for f in feats),
                         method=LPIPS.compare_features)
        mask = batch["mask"].astype(jnp.float32)
        scores = objective.two_afc_score(d0, d1, batch["judge"].astype(jnp.float32))
        return {"score_sum": lax.psum(jnp.sum(scores * mask), AXIS),
                "count": lax.psum(jnp.sum(mask), AXIS), "d0": d0, "d1": d1}

    sharded = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS)),
                            out_specs={"score_sum": P(), "count": P(), "d0": P(AXIS),
                                       "d1": P(AXIS)})
    return jax.jit(sharded)
