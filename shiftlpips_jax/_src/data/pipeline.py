"""The one input path: grain loaders of host-local NumPy batches of BAPPS records, resumable.

Training, validation and the evaluation runner all read through :func:`make_loader`. It works
from any random-access source whose records hold uint8 (H, W, 3) images and a float label: a
folder-backed :class:`~shiftlpips_jax._src.data.folder.BappsSource` from ``read_2afc`` /
``read_jnd``, a split of the TFDS builder's ``as_data_source()``, or an in-memory
:class:`~shiftlpips_jax._src.data.sources.ArraySource`. Records are sharded by process
(``jax.process_index()`` unless given), optionally restricted to chosen ``indices``, shuffled per
epoch with a seed (or kept in order), decoded on grain's reader threads (and worker processes
with ``worker_count > 0``) and batched. Two ways to end an epoch: ``drop_remainder`` (training:
full batches only, equal-sized shards) or ``pad_remainder`` (evaluation: every record once, the
last batch padded with zero images to the batch size and marked by a ``mask`` of 0, and every
shard yielding the same number of batches, so collective steps never wait on a host that ran
out and each image shape compiles once). The iterator's ``get_state()`` / ``set_state(state)``
resume exactly (the state is small bytes; store it in the checkpoint). It knows nothing about
devices.

Example::

    it = make_loader(read_2afc(root, ["train/traditional"]), batch_size=50, seed=0,
                     num_epochs=None)
    batch = next(it)       # {"ref","p0","p1": uint8 (50,64,64,3), "judge": float32 (50,)}
    state = it.get_state()
    for batch in make_loader(read_jnd(root, ["val/cnn"]), batch_size=50, shuffle=False,
                             pad_remainder=True): ...   # + "mask": float32 (50,)
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Sequence

import grain.python as grain
import numpy as np

from shiftlpips_jax._src.errors import DataError, InputError

__all__ = ["make_loader", "record_fields", "Subset", "TWOAFC_KEYS", "JND_KEYS"]

TWOAFC_KEYS = ("ref", "p0", "p1", "judge")
JND_KEYS = ("p0", "p1", "same")


def record_fields(data_source) -> tuple[tuple[str, ...], str]:
    """``(image keys, label key)`` of a source's records: its own ``image_keys`` and
    ``label_key`` when it declares them (folder sources), else the 2AFC fields."""
    image_keys = getattr(data_source, "image_keys", None)
    label_key = getattr(data_source, "label_key", None)
    if image_keys and label_key:
        return tuple(image_keys), str(label_key)
    return TWOAFC_KEYS[:3], TWOAFC_KEYS[3]


class _Select(grain.MapTransform):
    """Keeps the batchable fields with fixed dtypes (drops ``path``/``set`` text)."""

    def __init__(self, image_keys: tuple[str, ...], label_key: str):
        self.image_keys, self.label_key = image_keys, label_key

    def map(self, element: Any) -> dict:
        try:
            out = {k: np.asarray(element[k], dtype=np.uint8) for k in self.image_keys}
            out[self.label_key] = np.asarray(element[self.label_key], np.float32).reshape(())
        except KeyError as err:
            wanted = ", ".join(self.image_keys + (self.label_key,))
            raise DataError(f"record lacks field {err}; records need {wanted} (got "
                            f"{sorted(element)})") from err
        return out


class Subset:
    """Records ``indices`` of ``source``, in that order (random access, picklable)."""

    def __init__(self, source, indices: Sequence[int]):
        self.source = source
        self.indices = np.asarray(indices, np.int64).reshape(-1)
        n = len(source)
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= n):
            raise InputError(f"indices must be in [0, {n}); got values from "
                             f"{self.indices.min()} to {self.indices.max()}")
        for name in ("image_keys", "label_key"):
            if hasattr(source, name):
                setattr(self, name, getattr(source, name))

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int) -> Any:
        return self.source[int(self.indices[int(i)])]

    def __repr__(self) -> str:
        # Grain checks a resumed iterator's source by repr: make it content-based.
        return f"Subset({self.source!r}, n={len(self)}, crc32={zlib.crc32(self.indices.tobytes()):08x})"


def _default_shard(shard_index, shard_count) -> tuple[int, int]:
    if shard_index is None or shard_count is None:
        import jax  # only for the process topology
        shard_index = jax.process_index() if shard_index is None else shard_index
        shard_count = jax.process_count() if shard_count is None else shard_count
    if not 0 <= shard_index < shard_count:
        raise InputError(f"shard_index {shard_index} must be in [0, shard_count={shard_count})")
    return int(shard_index), int(shard_count)


def _absl_flags_ready() -> None:
    """Grain's worker processes read absl flags; outside an absl app (a library call, a test)
    nothing parsed them, so take their defaults instead of failing in the worker."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


class _BatchedIterator:
    """Stacks consecutive records of a record iterator into batches (resumable like it)."""

    def __init__(self, it, *, batch_size: int, drop_remainder: bool):
        self._it, self._batch_size, self._drop = it, batch_size, drop_remainder

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        records = []
        for record in self._it:
            records.append(record)
            if len(records) == self._batch_size:
                break
        if not records or (self._drop and len(records) < self._batch_size):
            raise StopIteration
        return {k: np.stack([r[k] for r in records]) for k in records[0]}

    def get_state(self) -> bytes:
        return self._it.get_state()

    def set_state(self, state: bytes) -> None:
        self._it.set_state(state)


class _PaddedIterator:
    """Exactly ``n_batches`` batches of ``batch_size`` rows, each with a ``mask``: the loader's
    (the last one padded with zeros), then whole padding batches if this shard ran out early."""

    def __init__(self, it, *, batch_size: int, n_batches: int, template):
        self._it, self._batch_size, self._n_batches = it, batch_size, n_batches
        self._template, self._done = template, 0

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._done >= self._n_batches:
            raise StopIteration
        batch = next(self._it, None)
        if batch is None:
            batch = {k: v[:0] for k, v in self._template().items()}
        self._done += 1
        n = len(next(iter(batch.values())))
        pad = self._batch_size - n
        out = {k: v if not pad else np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
               for k, v in batch.items()}
        out["mask"] = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
        return out

    def get_state(self) -> bytes:
        return self._it.get_state()

    def set_state(self, state: bytes) -> None:
        self._it.set_state(state)


def make_loader(data_source, *, batch_size: int, shuffle: bool = True, seed: int = 0,
                num_epochs: int | None = 1, shard_index: int | None = None,
                shard_count: int | None = None, drop_remainder: bool = True,
                pad_remainder: bool = False, indices: Sequence[int] | None = None,
                worker_count: int = 0, read_threads: int = 16):
    """A resumable iterator of host-local batches of BAPPS records.

    Args:
      data_source: random access (``len``, ``[i]``) with uint8 (H, W, 3) images and a float
        label per record: ``ref``, ``p0``, ``p1``, ``judge`` (2AFC) or, for a source declaring
        ``image_keys = ("p0", "p1")`` and ``label_key = "same"``, JND pairs.
      batch_size: per-host batch size.
      shuffle: reshuffle every epoch (deterministic given ``seed``); ``False`` keeps the order.
      seed: shuffling seed.
      num_epochs: passes over the data; ``None`` repeats forever.
      shard_index, shard_count: this host's shard; default ``jax.process_index()`` /
        ``jax.process_count()``.
      drop_remainder: drop the last incomplete batch, and trim shards to equal sizes so every
        host yields the same number of batches.
      pad_remainder: keep every record: the last batch is padded with zero images to
        ``batch_size``, every batch carries ``mask`` (float32, 1 for records, 0 for padding),
        and every shard (contiguous; sizes differ by at most one, so every record is read
        exactly once over all shards) yields ``ceil(ceil(N / shard_count) / batch_size)``
        batches (needs ``num_epochs=1``; overrides ``drop_remainder``).
      indices: read only these records of ``data_source``, in this order (before sharding).
      worker_count: grain worker processes (0 = decode in this process on reader threads).
      read_threads: reader threads per process.

    Returns:
      grain's DataLoader iterator yielding ``{image key: uint8 (B, H, W, 3), label key:
      float32 (B,)}`` (plus ``mask`` with ``pad_remainder``); ``get_state()`` /
      ``set_state()`` resume exactly.

    Raises:
      InputError: a bad batch size, shard, index or option; DataError: records without the
        fields.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1; got {batch_size}")
    if pad_remainder and num_epochs != 1:
        raise InputError(f"pad_remainder needs num_epochs=1; got {num_epochs}")
    image_keys, label_key = record_fields(data_source)
    if indices is not None:
        data_source = Subset(data_source, indices)
    if len(data_source) == 0:
        raise InputError("data_source holds no records")
    shard_index, shard_count = _default_shard(shard_index, shard_count)
    drop = drop_remainder and not pad_remainder
    total = len(data_source)
    if pad_remainder and shard_count > 1:
        # Every record exactly once: contiguous shards whose sizes differ by at most one (grain's
        # own sharding without drop_remainder does not guarantee that), then no further sharding.
        bounds = np.linspace(0, total, shard_count + 1).round().astype(int)
        mine = np.arange(bounds[shard_index], bounds[shard_index + 1])
        template_source = data_source
        data_source = Subset(data_source, mine)
        shard_index, shard_count_for_grain = 0, 1
    else:
        template_source = data_source
        shard_count_for_grain = shard_count
    shard = grain.ShardOptions(shard_index=shard_index, shard_count=shard_count_for_grain,
                               drop_remainder=drop)
    sampler = grain.IndexSampler(num_records=len(data_source), shard_options=shard,
                                 shuffle=shuffle, num_epochs=num_epochs, seed=seed)
    select = _Select(image_keys, label_key)
    if worker_count > 0:
        _absl_flags_ready()
    # Grain's workers each batch their own share of the records, which would reorder them; with
    # workers, records come back one by one (in sampler order) and are batched here.
    operations = [select]
    if worker_count == 0:
        operations.append(grain.Batch(batch_size=batch_size, drop_remainder=drop))
    loader = grain.DataLoader(
        data_source=data_source, sampler=sampler, operations=operations,
        worker_count=worker_count,
        read_options=grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=256))
    it = iter(loader)
    if worker_count > 0:
        it = _BatchedIterator(it, batch_size=batch_size, drop_remainder=drop)
    if not pad_remainder:
        return it
    n_batches = math.ceil(math.ceil(total / shard_count) / batch_size)

    def template():  # the field shapes, for a shard that holds no record at all
        return {k: v[None] for k, v in select.map(template_source[0]).items()}

    return _PaddedIterator(it, batch_size=batch_size, n_batches=n_batches, template=template)
