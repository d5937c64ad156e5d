"""Orbax checkpoints of a training run: state, data position, rng; verified; resume by default.

A checkpoint ``WORKDIR/checkpoints/<step>/`` holds four items written together:

* ``state``: the :class:`TrainState` as a tree of arrays (step, params, batch statistics, optimiser
  state) plus ``rng``, the run's base key data (``jax.random.key_data``);
* ``data``: the position of every host's grain iterator (one JSON file per process, grain's
  Orbax handler);
* ``meta``: JSON with the step, examples seen and the settings a resume must agree with;
* ``digest``: JSON with the sha256 of every array of ``state`` (dtype, shape and bytes), of each
  process's data position and of ``meta``, computed from what was handed to Orbax.

Orbax writes each checkpoint under a temporary name and renames it into place once every item is
complete, so a crash or failed save (exception, ``kill -9``, full disk) never leaves a partial
checkpoint that looks valid, and never touches earlier ones; leftover temporary directories are
ignored and cleaned. Saves are asynchronous (the arrays are copied to host first, the files are
written in the background); a background failure is reported, naming its step, by the next
:meth:`Checkpointer.save`, :meth:`Checkpointer.wait` or :meth:`Checkpointer.close`.

:meth:`Checkpointer.restore` recomputes the digests and refuses a checkpoint whose arrays, data
position or metadata differ from those recorded (a flipped bit, an edit, a truncated file), with
a message naming it and the newest earlier checkpoint that does verify, and how to resume from
that one. Checkpoints written before digests were recorded restore with a warning, unverified.

Example::

    ckpt = Checkpointer(workdir, keep=3)
    if ckpt.latest_step() is not None:
        state, key, meta = ckpt.restore(template_state, data_iterator)
    ckpt.save(step, state, key, data_iterator, meta={"examples_seen": ...})
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any

import jax
import numpy as np

from . import state as state_lib
from shiftlpips_jax._src.weights import digests
from shiftlpips_jax._src.errors import CheckpointError

__all__ = ["Checkpointer", "CheckpointError"]


DIGEST_FORMAT = 1


class _IteratorSnapshot:
    """The data position captured at save time (the live iterator moves on while Orbax writes
    in the background)."""

    def __init__(self, state: bytes):
        self._state = state

    def get_state(self) -> bytes:
        return self._state


class _PositionCapture:
    """Receives a restored data position, so it can be verified before the live iterator moves."""

    def __init__(self):
        self.state: bytes | None = None

    def set_state(self, state: bytes) -> None:
        self.state = state

    def start_prefetch(self) -> None:
        pass


class _Unusable(Exception):
    """Why a checkpoint step cannot be restored (the text goes into the CheckpointError)."""

    def __init__(self, reason: str, *, unreadable: bool = False):
        super().__init__(reason)
        self.unreadable = unreadable


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _data_digests(data_state: bytes) -> list[str]:
    """The sha256 of every process's data position (gathered onto each process)."""
    mine = _sha256(data_state)
    if jax.process_count() == 1:
        return [mine]
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(np.frombuffer(bytes.fromhex(mine), np.uint8))
    return [bytes(np.asarray(row, np.uint8)).hex() for row in np.asarray(gathered)]


class Checkpointer:
    """Periodic, atomic, verified, resumable checkpoints under ``WORKDIR/checkpoints``.

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
                                              item_names=("state", "data", "meta", "digest"))
        self._pending: int | None = None  # the step whose background write is in flight
        self._verified: set[int] = set()  # committed by this process, or restored and verified

    def latest_step(self) -> int | None:
        """The newest checkpoint (including one whose background write is still in flight)."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def good_step(self) -> int | None:
        """The newest checkpoint known good here: written by this process and committed, or
        restored by it and verified. ``None`` if there is none (never an unverified one)."""
        try:
            self._finish_pending()
        except CheckpointError:
            pass
        steps = set(self.all_steps())
        good = [s for s in self._verified if s in steps]
        return max(good) if good else None

    def step_path(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def save(self, step: int, state: state_lib.TrainState, key: jax.Array, data_iterator,
             *, meta: dict) -> None:
        """Saves ``state``, the base ``key`` and ``data_iterator``'s position as ``step``.

        Raises:
          CheckpointError: this save, or the previous one still being written in the background,
            failed (the message names which step); earlier checkpoints are untouched.
        """
        import grain

        ocp = self._ocp
        self._finish_pending()
        tree = {"state": state_lib.to_checkpoint(state),
                "rng": np.asarray(jax.random.key_data(key))}
        data_state = data_iterator.get_state() if data_iterator is not None else b"{}"
        meta = {**meta, "step": int(step)}
        try:
            record = {"format": DIGEST_FORMAT, "step": int(step),
                      "state": digests.leaf_digests(digests.flatten(tree)),
                      "data": _data_digests(data_state), "meta": digests.json_digest(meta)}
            self._manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree),
                data=grain.checkpoint.CheckpointSave(_IteratorSnapshot(data_state)),
                meta=ocp.args.JsonSave(meta),
                digest=ocp.args.JsonSave(record)))
        except Exception as err:  # noqa: BLE001 - any failure: report with what is still safe
            self._discard_partial(step)
            raise CheckpointError(self._failure(step, err)) from err
        self._pending = int(step)

    def _finish_pending(self) -> None:
        """Waits for the background write of the previous save; a failure names its step."""
        if self._pending is None:
            return
        step, self._pending = self._pending, None
        try:
            self._manager.wait_until_finished()
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(self._failure(step, err)) from err
        if step in self._manager.all_steps():
            self._verified.add(step)

    def _discard_partial(self, step: int) -> None:
        """After a failed save: let the writes already started end. Their temporary directory
        never becomes a checkpoint; the next manager start (``cleanup_tmp_directories``) or a
        later save of the same step removes it."""
        try:
            self._manager.wait_until_finished()
        except Exception:  # noqa: BLE001 - the failure is already being reported
            pass

    def wait(self) -> None:
        """Blocks until the pending background save has been committed (or raises, naming it)."""
        self._finish_pending()

    def _failure(self, step: int, err: BaseException) -> str:
        try:
            steps = [s for s in self._manager.all_steps() if s != step]
        except Exception:  # noqa: BLE001
            steps = []
        good = [s for s in self._verified if s in steps]
        if good:
            kept = (f"the previous checkpoint (step {max(good)}) in {self.directory} is intact "
                    "(written or verified by this run)")
        elif steps:
            kept = (f"the latest earlier checkpoint is step {max(steps)} in {self.directory} "
                    "(not verified by this run)")
        else:
            kept = "no earlier checkpoint exists"
        return f"saving step {step} failed ({type(err).__name__}: {err}); {kept}"

    def _read(self, step: int, template: state_lib.TrainState) -> tuple[dict, bytes, dict, bool]:
        """Restores step ``step`` and checks it against its digests.

        Returns ``(tree, data position, meta, verified)``; ``verified`` is False only for a
        checkpoint written before digests were recorded. Raises :class:`_Unusable`.
        """
        import grain

        ocp = self._ocp
        has_digest = os.path.isdir(os.path.join(self.step_path(step), "digest"))
        target = {"state": state_lib.to_checkpoint(template),
                  "rng": np.zeros((2,), np.uint32)}
        capture = _PositionCapture()
        args = {"state": ocp.args.StandardRestore(jax.tree.map(_abstract, target)),
                "meta": ocp.args.JsonRestore(),
                "data": grain.checkpoint.CheckpointRestore(capture)}
        if has_digest:
            args["digest"] = ocp.args.JsonRestore()
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**args))
        except Exception as err:  # noqa: BLE001 - Orbax raises many types; report them uniformly
            raise _Unusable(f"it cannot be read ({type(err).__name__}: {str(err)[:300]})",
                            unreadable=True) from None
        tree, meta, position = restored["state"], dict(restored["meta"]), capture.state
        if position is None:
            raise _Unusable("its data position is missing")
        if not has_digest:
            return tree, position, meta, False
        record = restored["digest"]
        if not isinstance(record, dict) or record.get("format") != DIGEST_FORMAT:
            raise _Unusable(f"its digest record is not format {DIGEST_FORMAT}")
        if record.get("step") != step or meta.get("step") != step:
            raise _Unusable(f"it records step {record.get('step')!r} / {meta.get('step')!r} "
                            f"in a directory named {step}")
        actual = digests.leaf_digests(digests.flatten(tree))
        recorded = record.get("state")
        if not isinstance(recorded, dict) or actual != recorded:
            recorded = recorded if isinstance(recorded, dict) else {}
            bad = sorted(k for k in set(actual) | set(recorded)
                         if actual.get(k) != recorded.get(k))
            raise _Unusable(f"its state arrays differ from the digests recorded when it was "
                            f"saved ({', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''})")
        data = record.get("data")
        index = jax.process_index()
        if (not isinstance(data, list) or len(data) != jax.process_count()
                or data[index] != _sha256(position)):
            raise _Unusable("its data position (data/process_*.json) differs from the one "
                            "recorded when it was saved")
        if record.get("meta") != digests.json_digest(meta):
            raise _Unusable("its metadata (meta/) differs from the one recorded when it was "
                            "saved")
        return tree, position, meta, True

    def restore(self, template: state_lib.TrainState, data_iterator, *,
                step: int | None = None) -> tuple[state_lib.TrainState, jax.Array, dict]:
        """Restores ``(state, key, meta)`` and moves ``data_iterator`` to the saved position.

        ``template`` gives the structure, shapes and shardings (e.g. a freshly initialised,
        replicated state). ``meta["verified"]`` says whether the digests were checked.

        Raises:
          CheckpointError: no checkpoint, or ``step`` is unreadable or fails verification (the
            message names the newest earlier checkpoint that verifies and how to resume from it).
        """
        step = self._manager.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        try:
            tree, position, meta, verified = self._read(step, template)
        except _Unusable as why:
            raise CheckpointError(self._refusal(step, why, template)) from None
        if verified:
            self._verified.add(step)
        else:
            warnings.warn(f"checkpoint step {step} in {self.directory} has no recorded digests "
                          "(written by an earlier version): restored without verification",
                          stacklevel=2)
        if data_iterator is not None:
            data_iterator.set_state(position)
            if hasattr(data_iterator, "start_prefetch"):
                data_iterator.start_prefetch()
        state = state_lib.from_checkpoint(template, tree["state"])
        key = jax.random.wrap_key_data(np.asarray(tree["rng"], np.uint32))
        return state, key, {**meta, "verified": verified}

    def _refusal(self, step: int, why: _Unusable, template) -> str:
        bad = self.step_path(step)
        msg = f"checkpoint step {step} ({bad}) cannot be used: {why}. "
        good = None
        for earlier in sorted((s for s in self.all_steps() if s < step), reverse=True):
            try:
                if self._read(earlier, template)[3]:
                    good = earlier
                    break
            except _Unusable:
                continue
        if good is not None:
            aside = os.path.join(os.path.dirname(self.directory), "bad-checkpoints")
            moves = " ".join(self.step_path(s) for s in sorted(self.all_steps()) if s > good)
            msg += (f"The previous good checkpoint is step {good} (verified now). To resume from "
                    f"it, move the steps after it out of the checkpoint directory (`mkdir -p "
                    f"{aside} && mv {moves} {aside}/`) and run the same command again.")
        else:
            msg += ("No earlier checkpoint in that directory verifies; start again in a new "
                    "--workdir.")
        if why.unreadable:
            msg += (" If the model or optimiser settings changed since it was written, use a new "
                    "--workdir.")
        return msg

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._manager.close()


def _abstract(x):
    sharding = getattr(x, "sharding", None)
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
    x = np.asarray(x)
    return jax.ShapeDtypeStruct(x.shape, x.dtype)
