"""Input checks with messages that name the problem and the expected form.

Shape and dtype checks run on the host before anything is traced (they need only the static
shape and dtype, so they also hold for tracers); value-range checks run inside the jitted call
(one fused min/max reduction) and are raised on return, for concrete values only: under a
user's ``jax.jit``, ``jax.grad`` or ``jax.vmap`` the values are not known when the call returns,
so the range check is skipped.

Example::

    x, y, single = prepare_pair(x, y, min_size=21, normalize=False, model="alex/shift_tolerant")
    check_range(range_stats(x, y), normalize=False, what="x and y")
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .errors import InputError, InputTypeError

__all__ = ["prepare_image", "prepare_pair", "check_range", "is_traced", "RANGE_TOL"]

RANGE_TOL = 1e-3  # floats may exceed the nominal range by this much (rounding, resampling)


def _as_array(x: Any, name: str):
    if isinstance(x, jax.Array):
        return x
    if isinstance(x, np.ndarray):
        return x
    try:
        arr = np.asarray(x)
    except Exception as err:  # noqa: BLE001 - report any conversion failure the same way
        raise InputTypeError(f"{name} must be an array of images (N, H, W, 3); got "
                             f"{type(x).__name__}") from err
    if arr.dtype == object:
        raise InputTypeError(f"{name} must be a numeric array of images (N, H, W, 3); got "
                             f"{type(x).__name__} that does not convert to one")
    return arr


def _check_dtype(x, name: str, normalize: bool) -> None:
    dt = np.dtype(x.dtype)
    if dt == np.uint8:
        if normalize:
            raise InputError(f"{name} is uint8, which is always read as [0, 255]; "
                             "normalize=True is only for float images in [0, 1]")
        return
    if jnp.issubdtype(dt, jnp.floating):
        return
    raise InputTypeError(f"{name} has dtype {dt}; expected float images in [-1, 1] (or [0, 1] "
                         "with normalize=True) or uint8 images in [0, 255]")


def prepare_image(x: Any, name: str, *, min_size: int, normalize: bool,
                  model: str) -> tuple[Any, bool]:
    """Checks one image batch; returns (array, was_single_image)."""
    x = _as_array(x, name)
    _check_dtype(x, name, normalize)
    single = x.ndim == 3
    if x.ndim not in (3, 4):
        raise InputError(f"{name} has shape {tuple(x.shape)} (rank {x.ndim}); expected a batch "
                         "(N, H, W, 3) or a single image (H, W, 3), channels last")
    if single:
        x = x[None]
    if x.shape[-1] != 3:
        hint = ""
        if x.shape[1] == 3:
            hint = (" It looks channels-first (NCHW); transpose it with "
                    "x.transpose(0, 2, 3, 1) (or (1, 2, 0) for one image).")
        raise InputError(f"{name} has {x.shape[-1]} channels in shape {tuple(x.shape)}; expected "
                         f"3 RGB channels last (N, H, W, 3).{hint}")
    if x.shape[0] == 0:
        raise InputError(f"{name} is an empty batch (shape {tuple(x.shape)})")
    h, w = x.shape[1], x.shape[2]
    if h < min_size or w < min_size:
        raise InputError(f"{name} images are {h}x{w}; {model} needs at least "
                         f"{min_size}x{min_size} pixels (H and W >= {min_size})")
    return x, single


def prepare_pair(x: Any, y: Any, *, min_size: int, normalize: bool, model: str):
    """Checks an image pair; returns (x, y, single)."""
    x, single_x = prepare_image(x, "x", min_size=min_size, normalize=normalize, model=model)
    y, single_y = prepare_image(y, "y", min_size=min_size, normalize=normalize, model=model)
    if single_x != single_y:
        raise InputError("x and y must both be batches (N, H, W, 3) or both single images "
                         f"(H, W, 3); got shapes {tuple(x.shape[single_x:])} and "
                         f"{tuple(y.shape[single_y:])}")
    if x.shape[0] != y.shape[0]:
        raise InputError(f"batch sizes differ: x has {x.shape[0]} images, y has {y.shape[0]}; "
                         "pass equal batches (N, H, W, 3)")
    if x.shape != y.shape:
        raise InputError(f"image shapes differ: x is {tuple(x.shape)}, y is {tuple(y.shape)}; "
                         "both must be (N, H, W, 3) with the same H and W (resize or crop first)")
    return x, y, single_x


def to_unit_range(x: jax.Array, normalize: bool) -> jax.Array:
    """uint8 [0, 255] or float [0, 1] (normalize) or float [-1, 1] -> float32 [-1, 1]."""
    if x.dtype == jnp.uint8:
        return x.astype(jnp.float32) / 127.5 - 1.0
    x = x.astype(jnp.float32)
    return 2.0 * x - 1.0 if normalize else x


def range_stats(*xs: jax.Array) -> jax.Array:
    """[min, max] over the raw float inputs, NaNs ignored (uint8 inputs are always in range)."""
    floats = [x for x in xs if x.dtype != jnp.uint8]
    if not floats:
        return jnp.array([0.0, 0.0], jnp.float32)
    lo = jnp.min(jnp.stack([jnp.nanmin(x.astype(jnp.float32)) for x in floats]))
    hi = jnp.max(jnp.stack([jnp.nanmax(x.astype(jnp.float32)) for x in floats]))
    return jnp.stack([lo, hi])


def is_traced(x: Any) -> bool:
    """Whether ``x`` is an abstract value of a transformation (jit, grad, vmap, ...)."""
    return isinstance(x, jax.core.Tracer)


def check_range(stats, normalize: bool, what: str = "inputs") -> None:
    """Raises if ``stats`` (:func:`range_stats`) is outside the nominal range; skipped when
    ``stats`` is traced (values unknown until the user's transformed function runs)."""
    if is_traced(stats):
        return
    lo, hi = (float(v) for v in np.asarray(stats))
    want = (0.0, 1.0) if normalize else (-1.0, 1.0)
    if np.isnan(lo) and np.isnan(hi):
        return  # all-NaN input: its distance is NaN, nothing else is affected
    if lo < want[0] - RANGE_TOL or hi > want[1] + RANGE_TOL:
        hint = (" Pass normalize=False for [-1, 1] images." if normalize else
                " Pass normalize=True for [0, 1] images, or uint8 arrays for [0, 255].")
        raise InputError(f"{what} have values in [{lo:.4g}, {hi:.4g}]; expected floats in "
                         f"[{want[0]:g}, {want[1]:g}].{hint}")
