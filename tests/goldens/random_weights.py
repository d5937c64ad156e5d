"""Deterministic random weights for a PyTorch state-dict manifest, NumPy only.

The golden script (run once, with torch) and the tests (no torch) both call :func:`make_state_dict`
on the same manifest of ``(name, shape)`` pairs, so a random-weight PyTorch model and its converted
JAX twin hold bit-identical weights without committing the weights themselves.

Values depend only on the tensor name, its shape and ``seed``:
* ``*.filt`` (BlurPool buffers) are left out: the model builds them itself;
* ``*num_batches_tracked`` are int64 zeros;
* ``*running_var`` in [0.5, 1.5), ``*running_mean`` ~ 0.1 N(0, 1);
* BatchNorm ``weight`` (1-D, name ends in ``bn*.weight``/``downsample.*.weight``/``slice1.1.weight``
  — anything 1-D called weight) = 1 + 0.1 N(0, 1);
* 1x1 convs of LPIPS heads (``lin*.model.1.weight``) = |N(0, 1)| * 0.1 (non-negative, as trained);
* other ``weight`` tensors ~ N(0, 2 / fan_in) (He init, keeps activations O(1) through depth);
* ``bias`` ~ 0.05 N(0, 1).
"""

from __future__ import annotations

import zlib

import numpy as np


def _rng(name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def make_tensor(name: str, shape, seed: int = 0) -> np.ndarray:
    shape = tuple(int(s) for s in shape)
    rng = _rng(name, seed)
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, np.int64)
    if name.endswith("running_var"):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if name.endswith("running_mean"):
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)
    if name.endswith("bias"):
        return (0.05 * rng.standard_normal(shape)).astype(np.float32)
    if name.endswith("weight"):
        if len(shape) == 1:
            return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        if name.startswith("lin"):
            return (0.1 * np.abs(rng.standard_normal(shape))).astype(np.float32)
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    raise ValueError(f"no rule for tensor {name!r}")


def make_state_dict(manifest, seed: int = 0) -> dict[str, np.ndarray]:
    """manifest: iterable of (name, shape). Returns {name: array}, skipping ``*.filt`` buffers."""
    return {name: make_tensor(name, shape, seed) for name, shape in manifest
            if not name.endswith(".filt")}
