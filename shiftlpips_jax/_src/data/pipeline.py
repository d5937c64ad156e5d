"""Grain input pipelines: host-local NumPy batches of BAPPS 2AFC triplets, resumable.

Works from any random-access source whose records hold ``ref``, ``p0``, ``p1`` (uint8 (H, W, 3))
and ``judge``: a folder-backed :class:`BappsSource` from :func:`read_2afc`, or a split of the TFDS
builder's ``as_data_source()``. Records are sharded by process (``jax.process_index()`` unless
given), shuffled per epoch with a seed, decoded on grain's reader threads (and worker processes
with ``worker_count > 0``) and batched. The returned iterator is grain's DataLoader iterator:
``it.get_state()`` / ``it.set_state(state)`` resume exactly (the state is small bytes; store it
in the checkpoint). It knows nothing about devices.

Example::

    it = make_2afc_loader(read_2afc(root, ["train/traditional"]), batch_size=50, seed=0,
                          num_epochs=None)
    batch = next(it)       # {"ref","p0","p1": uint8 (50,64,64,3), "judge": float32 (50,)}
    state = it.get_state()
"""

from __future__ import annotations

from typing import Any

import grain.python as grain
import numpy as np

__all__ = ["make_2afc_loader", "TWOAFC_KEYS"]

TWOAFC_KEYS = ("ref", "p0", "p1", "judge")


class _Select2afc(grain.MapTransform):
    """Keeps the batchable fields with fixed dtypes (drops ``path``/``set`` text)."""

    def map(self, element: Any) -> dict:
        try:
            out = {k: np.asarray(element[k], dtype=np.uint8) for k in ("ref", "p0", "p1")}
            out["judge"] = np.asarray(element["judge"], dtype=np.float32).reshape(())
        except KeyError as err:
            raise ValueError(f"2AFC record lacks field {err}; records need "
                             f"{', '.join(TWOAFC_KEYS)} (got {sorted(element)})") from err
        return out


def _default_shard(shard_index, shard_count) -> tuple[int, int]:
    if shard_index is None or shard_count is None:
        import jax  # only for the process topology
        shard_index = jax.process_index() if shard_index is None else shard_index
        shard_count = jax.process_count() if shard_count is None else shard_count
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index {shard_index} must be in [0, shard_count={shard_count})")
    return int(shard_index), int(shard_count)


def make_2afc_loader(data_source, *, batch_size: int, shuffle: bool = True, seed: int = 0,
                     num_epochs: int | None = 1, shard_index: int | None = None,
                     shard_count: int | None = None, drop_remainder: bool = True,
                     worker_count: int = 0, read_threads: int = 16):
    """A resumable iterator of host-local 2AFC batches.

    Args:
      data_source: random access (``len``, ``[i]``) with ``ref``, ``p0``, ``p1``, ``judge``.
      batch_size: per-host batch size.
      shuffle: reshuffle every epoch (deterministic given ``seed``).
      seed: shuffling seed.
      num_epochs: passes over the data; ``None`` repeats forever.
      shard_index, shard_count: this host's shard; default ``jax.process_index()`` /
        ``jax.process_count()``.
      drop_remainder: drop the last incomplete batch, and trim shards to equal sizes so every
        host yields the same number of batches.
      worker_count: grain worker processes (0 = decode in this process on reader threads).
      read_threads: reader threads per process.

    Returns:
      grain's DataLoader iterator yielding ``{"ref", "p0", "p1": uint8 (B, H, W, 3),
      "judge": float32 (B,)}``; ``get_state()`` / ``set_state()`` resume exactly.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if len(data_source) == 0:
        raise ValueError("data_source holds no records")
    shard_index, shard_count = _default_shard(shard_index, shard_count)
    shard = grain.ShardOptions(shard_index=shard_index, shard_count=shard_count,
                               drop_remainder=drop_remainder)
    sampler = grain.IndexSampler(num_records=len(data_source), shard_options=shard,
                                 shuffle=shuffle, num_epochs=num_epochs, seed=seed)
    loader = grain.DataLoader(
        data_source=data_source, sampler=sampler,
        operations=[_Select2afc(), grain.Batch(batch_size=batch_size,
                                               drop_remainder=drop_remainder)],
        worker_count=worker_count,
        read_options=grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=256))
    return iter(loader)
