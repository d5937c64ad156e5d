"""Training and validation inputs: configured BAPPS sources -> host-local NumPy batches.

Thin layer over :mod:`shiftlpips_jax.data` (no devices here): opens the configured 2AFC sets (an
extracted BAPPS folder via ``read_2afc``, the TFDS ArrayRecord build via ``bapps_2afc_builder``,
or synthetic triplets), and makes the endless, resumable training loader sharded by
``jax.process_index()``. Validation reads the same sources through the same loader
(:func:`shiftlpips_jax.data.make_loader` with ``pad_remainder=True``: fixed-shape batches with a
``mask`` and the same number of batches on every host).

Example::

    source = open_2afc(config.data, config.data.train_sets)
    it = train_iterator(source, per_host_batch=25, seed=0)
    batch = next(it)            # {"ref","p0","p1": uint8 (25,64,64,3), "judge": float32 (25,)}
"""

from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

from shiftlpips_jax._src.data import folder, sources
from shiftlpips_jax._src.data.pipeline import make_loader
from shiftlpips_jax._src.errors import DataError, InputError

__all__ = ["open_2afc", "train_iterator", "check_batch"]


def open_2afc(data_config, sets: Sequence[str]):
    """The 2AFC records of ``sets`` (e.g. ``["train/traditional", "train/cnn"]``).

    ``data_config.tfds_dir`` (a built ``bapps_2afc`` TFDS dataset) wins over ``data_config.root``
    (the extracted ``dataset/2afc`` folder).
    """
    sets = list(sets)
    if getattr(data_config, "synthetic", 0):
        n = data_config.synthetic if sets and sets[0].startswith("train") else (
            data_config.get("synthetic_val", 0) or data_config.synthetic)
        seed = 0 if sets and sets[0].startswith("train") else 1 + zlib.crc32(
            "|".join(sets).encode()) % 1000
        return sources.synthetic_2afc(n, size=data_config.load_size, seed=seed)
    if getattr(data_config, "tfds_dir", ""):
        from shiftlpips_jax._src.data import tfds  # TFDS only when configured

        builder = tfds.bapps_2afc_builder(data_config.tfds_dir, data_config.load_size, sets)
        splits = builder.as_data_source()
        return sources.ConcatSource([splits[tfds.split_name(s)] for s in sets])
    if not getattr(data_config, "root", ""):
        raise InputError("no training data configured: set --config.data.root=<BAPPS "
                         "dataset/2afc folder> or --config.data.tfds_dir=<built TFDS dir>")
    return folder.read_2afc(data_config.root, sets, load_size=data_config.load_size)


def train_iterator(source, *, per_host_batch: int, seed: int, shard_by_process: bool = True,
                   shuffle: bool = True, worker_count: int = 0, read_threads: int = 16):
    """Endless, reshuffled-every-epoch, resumable iterator of host-local training batches.

    With ``shard_by_process`` each host reads its own shard of ``source``; otherwise ``source``
    is already this host's part (tests that give each process chosen records).
    """
    shard = {} if shard_by_process else {"shard_index": 0, "shard_count": 1}
    return make_loader(source, batch_size=per_host_batch, shuffle=shuffle, seed=seed,
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
