"""Orbax checkpoints of a training run: state, data position, rng; resume by default.

A checkpoint ``WORKDIR/checkpoints/<step>/`` holds three items written together:

* ``state``: the :class:`TrainState` as a tree of arrays (step, params, batch statistics, optimiser
  state) plus ``rng``, the run's base key data (``jax.random.key_data``);
* ``data``: the position of every host's grain iterator (one JSON file per process, grain's
  Orbax handler);
* ``meta``: JSON with the step, examples seen and the settings a resume must agree with.

Orbax writes each checkpoint under a temporary name and renames it into place once every item is
complete, so a crash or failed save (exception, ``kill -9``, full disk) never leaves a partial
checkpoint that looks valid, and never touches earlier ones; leftover temporary directories are
ignored and cleaned. Saves are asynchronous (the arrays are copied to host first, the files are
written in the background); :meth:`Checkpointer.close` waits for the last one.

Example::

    ckpt = Checkpointer(workdir, keep=3)
    if ckpt.latest_step() is not None:
        state, key, meta = ckpt.restore(template_state, data_iterator)
    ckpt.save(step, state, key, data_iterator, meta={"examples_seen": ...})
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from . import state as state_lib
from shiftlpips_jax._src.errors import CheckpointError

__all__ = ["Checkpointer", "CheckpointError"]


class _IteratorSnapshot:
    """The data position captured at save time (the live iterator moves on while Orbax writes
    in the background)."""

    def __init__(self, state: bytes):
        self._state = state

    def get_state(self) -> bytes:
        return self._state


class Checkpointer:
    """Periodic, atomic, resumable checkpoints under ``WORKDIR/checkpoints``.

    Args:
      workdir: the run directory.
      keep: how many recent checkpoints to keep.
      async_save: write in the background (the step loop continues).
    """

    def __init__(self, workdir: str, *, keep: int = 3, async_save: bool = True):
        import orbax.checkpoint as ocp

        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True)
        self._ocp = ocp
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=("state", "data", "meta"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: state_lib.TrainState, key: jax.Array, data_iterator,
             *, meta: dict) -> None:
        """Saves ``state``, the base ``key`` and ``data_iterator``'s position as ``step``.

        Raises:
          CheckpointError: the save failed; earlier checkpoints are untouched.
        """
        import grain

        ocp = self._ocp
        tree = {"state": state_lib.to_checkpoint(state),
                "rng": np.asarray(jax.random.key_data(key))}
        data_state = data_iterator.get_state() if data_iterator is not None else b"{}"
        try:
            self._manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree),
                data=grain.checkpoint.CheckpointSave(_IteratorSnapshot(data_state)),
                meta=ocp.args.JsonSave({**meta, "step": int(step)})))
        except Exception as err:  # noqa: BLE001 - any failure: report with what is still safe
            self._discard_partial(step)
            raise CheckpointError(self._failure(step, err)) from err

    def _discard_partial(self, step: int) -> None:
        """After a failed save: let the writes already started end. Their temporary directory
        never becomes a checkpoint; the next manager start (``cleanup_tmp_directories``) or a
        later save of the same step removes it."""
        try:
            self._manager.wait_until_finished()
        except Exception:  # noqa: BLE001 - the failure is already being reported
            pass

    def wait(self) -> None:
        """Blocks until the pending background save has been committed (or raises)."""
        try:
            self._manager.wait_until_finished()
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(self._failure(None, err)) from err

    def _failure(self, step, err) -> str:
        try:
            good = self._manager.latest_step()
        except Exception:  # noqa: BLE001
            good = None
        where = f"step {step}" if step is not None else "the last checkpoint"
        kept = (f"the previous checkpoint (step {good}) in {self.directory} is intact"
                if good is not None else "no earlier checkpoint exists")
        return f"saving {where} failed ({type(err).__name__}: {err}); {kept}"

    def restore(self, template: state_lib.TrainState, data_iterator, *,
                step: int | None = None) -> tuple[state_lib.TrainState, jax.Array, dict]:
        """Restores ``(state, key, meta)`` and moves ``data_iterator`` to the saved position.

        ``template`` gives the structure, shapes and shardings (e.g. a freshly initialised,
        replicated state).
        """
        import grain

        ocp = self._ocp
        step = self._manager.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        target = {"state": state_lib.to_checkpoint(template),
                  "rng": np.zeros((2,), np.uint32)}
        abstract = jax.tree.map(_abstract, target)
        args = {"state": ocp.args.StandardRestore(abstract), "meta": ocp.args.JsonRestore()}
        if data_iterator is not None:
            args["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**args))
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(
                f"cannot restore checkpoint step {step} from {self.directory}: "
                f"{type(err).__name__}: {err}. If the model or optimiser settings changed since "
                "it was written, use a new --workdir.") from err
        tree = restored["state"]
        state = state_lib.from_checkpoint(template, tree["state"])
        key = jax.random.wrap_key_data(np.asarray(tree["rng"], np.uint32))
        return state, key, dict(restored["meta"])

    def close(self) -> None:
        self.wait()
        self._manager.close()


def _abstract(x):
    sharding = getattr(x, "sharding", None)
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
    x = np.asarray(x)
    return jax.ShapeDtypeStruct(x.shape, x.dtype)
