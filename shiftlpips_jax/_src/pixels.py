"""The one uint8 -> [-1, 1] converter: how every image becomes a network input.

``x / 127.5 - 1`` (the reference's formula) for uint8 images, in the evaluation runner, the shift
study, the train and eval steps and the benchmarks alike. NumPy in, NumPy out; ``jax.Array`` (or
a tracer inside ``jit``) in, jax out. Only NumPy and JAX are imported, so the train step's
imports stay free of Pillow and the data libraries.

Example::

    x = to_unit_range(uint8_images)              # float32 in [-1, 1]
    x = to_unit_range(floats_in_0_1, normalize=True)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["to_unit_range"]


def to_unit_range(x, *, normalize: bool = False):
    """Images as the networks read them: float32 in [-1, 1].

    uint8 values in [0, 255] become ``x / 127.5 - 1`` (the reference's formula); floats are
    taken as [-1, 1], or as [0, 1] with ``normalize`` (``2 x - 1``). A ``jax.Array`` (also a
    tracer inside ``jit``) gives a jax array, anything else a NumPy array.

    Args:
      x: images, any shape, uint8 or float.
      normalize: float inputs are in [0, 1] instead of [-1, 1] (ignored for uint8).

    Returns:
      float32 array of ``x``'s shape in [-1, 1].
    """
    xp = jnp if isinstance(x, jax.Array) else np
    x = xp.asarray(x)
    if x.dtype == np.uint8:
        return x.astype(xp.float32) / 127.5 - 1.0
    x = x.astype(xp.float32)
    return 2.0 * x - 1.0 if normalize else x
