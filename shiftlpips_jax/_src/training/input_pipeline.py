"""Training and validation inputs: BAPPS sources -> host-local NumPy batches (no devices here).

Thin layer over :mod:`shiftlpips_jax.data`: opens the configured 2AFC sets (an extracted BAPPS
folder via ``read_2afc``, or the TFDS ArrayRecord build via ``bapps_2afc_builder``), makes the
resumable grain loader sharded by ``jax.process_index()``, and for validation yields
fixed-shape batches with a ``mask`` (padding rows 0) and the same number of batches on every host,
so the collective eval step never waits on a host that ran out.

:class:`ArraySource` is an in-memory source with the records' shape (tests, benchmarks, synthetic
runs); :class:`ConcatSource` joins several sources (e.g. TFDS splits) into one.

Example::

    source = open_2afc(config.data, config.data.train_sets)
    it = train_iterator(source, per_host_batch=25, seed=0)
    batch = next(it)            # {"ref","p0","p1": uint8 (25,64,64,3), "judge": float32 (25,)}
    for batch in val_batches(open_2afc(config.data, ["val/cnn"]), per_host_batch=50): ...
"""

from __future__ import annotations

import bisect
import math
import zlib
from typing import Iterator, Sequence

import numpy as np

from shiftlpips_jax._src.errors import DataError

__all__ = ["ArraySource", "ConcatSource", "open_2afc", "synthetic_2afc", "train_iterator", "val_batches",
           "check_batch", "DataError"]


class ArraySource:
    """Random-access 2AFC records from arrays: ``ref``, ``p0``, ``p1`` uint8 (N, H, W, 3),
    ``judge`` (N,) in [0, 1]; ``names`` (optional) label records in error messages."""

    def __init__(self, ref, p0, p1, judge, names: Sequence[str] | None = None):
        self.ref, self.p0, self.p1 = (np.asarray(a, np.uint8) for a in (ref, p0, p1))
        self.judge = np.asarray(judge, np.float32).reshape(-1)
        n = len(self.judge)
        if not all(len(a) == n for a in (self.ref, self.p0, self.p1)):
            raise ValueError("ref, p0, p1 and judge must have the same length")
        self.names = list(names) if names is not None else [f"record {i}" for i in range(n)]

    def __len__(self) -> int:
        return len(self.judge)

    def __repr__(self) -> str:
        # Grain checks a resumed iterator's source by repr: make it content-based.
        digest = zlib.crc32(self.judge.tobytes())
        for a in (self.ref, self.p0, self.p1):
            digest = zlib.crc32(a.tobytes(), digest)
        digest = zlib.crc32("|".join(self.names).encode(), digest)
        return f"ArraySource(n={len(self)}, shape={self.ref.shape[1:]}, crc32={digest:08x})"

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        return {"ref": self.ref[i], "p0": self.p0[i], "p1": self.p1[i],
                "judge": self.judge[i], "path": self.names[i]}

    def subset(self, indices) -> "ArraySource":
        idx = np.asarray(indices)
        return ArraySource(self.ref[idx], self.p0[idx], self.p1[idx], self.judge[idx],
                           [self.names[i] for i in idx])


class ConcatSource:
    """Several random-access sources as one (records in order)."""

    def __init__(self, sources: Sequence):
        self.sources = list(sources)
        self._ends = list(np.cumsum([len(s) for s in self.sources]))

    def __len__(self) -> int:
        return int(self._ends[-1]) if self._ends else 0

    def __repr__(self) -> str:
        return f"ConcatSource([{', '.join(repr(s) for s in self.sources)}])"

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        k = bisect.bisect_right(self._ends, i)
        start = self._ends[k - 1] if k else 0
        return self.sources[k][i - start]


def synthetic_2afc(n: int, *, size: int = 64, seed: int = 0) -> ArraySource:
    """``n`` synthetic triplets for smoke runs: smooth random images, two noisy copies, judge =
    1 when p1 is the less noisy one (a rule any trained metric learns quickly)."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, (n, size // 8, size // 8, 3))
    ref = np.repeat(np.repeat(low, 8, axis=1), 8, axis=2)
    ref = ref + rng.normal(0, 8, ref.shape)
    sig = rng.uniform(2, 40, (n, 2))
    p0 = ref + rng.normal(0, 1, ref.shape) * sig[:, 0, None, None, None]
    p1 = ref + rng.normal(0, 1, ref.shape) * sig[:, 1, None, None, None]
    u8 = [np.clip(np.round(a), 0, 255).astype(np.uint8) for a in (ref, p0, p1)]
    judge = (sig[:, 1] < sig[:, 0]).astype(np.float32)
    return ArraySource(*u8, judge, names=[f"synthetic/{seed}/{i}" for i in range(n)])


def open_2afc(data_config, sets: Sequence[str]):
    """The 2AFC records of ``sets`` (e.g. ``["train/traditional", "train/cnn"]``).

    ``data_config.tfds_dir`` (a built ``bapps_2afc`` TFDS dataset) wins over ``data_config.root``
    (the extracted ``dataset/2afc`` folder).
    """
    from shiftlpips_jax import data

    sets = list(sets)
    if getattr(data_config, "synthetic", 0):
        n = data_config.synthetic if sets and sets[0].startswith("train") else (
            data_config.get("synthetic_val", 0) or data_config.synthetic)
        seed = 0 if sets and sets[0].startswith("train") else 1 + zlib.crc32(
            "|".join(sets).encode()) % 1000
        return synthetic_2afc(n, size=data_config.load_size, seed=seed)
    if getattr(data_config, "tfds_dir", ""):
        builder = data.bapps_2afc_builder(data_config.tfds_dir, data_config.load_size, sets)
        splits = builder.as_data_source()
        return ConcatSource([splits[data.split_name(s)] for s in sets])
    if not getattr(data_config, "root", ""):
        raise ValueError("no training data configured: set --config.data.root=<BAPPS "
                         "dataset/2afc folder> or --config.data.tfds_dir=<built TFDS dir>")
    return data.read_2afc(data_config.root, sets, load_size=data_config.load_size)


def train_iterator(source, *, per_host_batch: int, seed: int, shard_by_process: bool = True,
                   shuffle: bool = True, worker_count: int = 0, read_threads: int = 16):
    """Endless, reshuffled-every-epoch, resumable iterator of host-local training batches.

    With ``shard_by_process`` each host reads its own shard of ``source``; otherwise ``source``
    is already this host's part (tests that give each process chosen records).
    """
    from shiftlpips_jax import data

    shard = {} if shard_by_process else {"shard_index": 0, "shard_count": 1}
    return data.make_2afc_loader(source, batch_size=per_host_batch, shuffle=shuffle, seed=seed,
                                 num_epochs=None, drop_remainder=True, worker_count=worker_count,
                                 read_threads=read_threads, **shard)


def check_batch(batch: dict, *, per_host_batch: int, step: int) -> dict:
    """Host-side sanity of a training batch (cheap; the data module checks each file)."""
    missing = [k for k in ("ref", "p0", "p1", "judge") if k not in batch]
    if missing:
        raise DataError(f"training batch for step {step} lacks {missing}")
    shape = batch["ref"].shape
    for k in ("ref", "p0", "p1"):
        a = batch[k]
        if a.dtype != np.uint8 or a.ndim != 4 or a.shape != shape or a.shape[0] != per_host_batch:
            raise DataError(f"training batch for step {step}: '{k}' is {a.dtype}{a.shape}, "
                            f"expected uint8 ({per_host_batch}, H, W, 3) like 'ref' {shape}")
    judge = np.asarray(batch["judge"])
    bad = ~np.isfinite(judge) | (judge < 0) | (judge > 1)
    if judge.shape != (per_host_batch,) or bad.any():
        raise DataError(f"training batch for step {step}: judges must be (B,) in [0, 1]; got "
                        f"shape {judge.shape}, bad values {judge[bad][:5]}")
    return batch


def val_batches(source, *, per_host_batch: int, shard_by_process: bool = True,
                read_threads: int = 16) -> Iterator[dict]:
    """One pass over ``source`` in fixed-shape host-local batches with a ``mask``.

    Every host yields ``ceil(ceil(N / hosts) / per_host_batch)`` batches (padding rows and, if
    its shard is shorter, whole padding batches have mask 0), so all hosts run the same number
    of collective eval steps.
    """
    import jax

    from shiftlpips_jax import data

    hosts = jax.process_count() if shard_by_process else 1
    index = jax.process_index() if shard_by_process else 0
    n_batches = math.ceil(math.ceil(len(source) / hosts) / per_host_batch)
    it = data.make_2afc_loader(source, batch_size=per_host_batch, shuffle=False, num_epochs=1,
                               drop_remainder=False, shard_index=index, shard_count=hosts,
                               read_threads=read_threads)
    template = None
    for _ in range(n_batches):
        batch = next(it, None)
        if batch is None:
            batch = {k: v[:0] for k, v in template.items()}
        template = batch
        n = len(batch["judge"])
        pad = per_host_batch - n
        out = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
               for k, v in batch.items()}
        out["mask"] = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
        yield out
