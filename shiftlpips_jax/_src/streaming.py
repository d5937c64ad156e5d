"""Mergeable statistics of distances for evaluation loops: count, mean, std, min, max, 95% CI.

:class:`DistanceStats` is a small pytree (a ``flax.struct.dataclass``) holding the count, mean,
sum of squared deviations from the mean (``m2``), minimum and maximum of the values seen so far.
Two states merge exactly with Chan et al.'s parallel formulas (no catastrophic cancellation,
unlike sums of d and d²), so batches, ``lax.scan`` steps, devices (``all_reduce`` inside
``jax.shard_map``, or ``lax.all_gather(...).reduce()``) and processes
(:func:`merge_across_processes`) combine into the statistics of all values. It follows the
``clu.metrics.Metric`` protocol (``empty``, ``from_model_output``, ``merge``, ``reduce``,
``compute``, ``from_output``), so it can sit in a ``clu.metrics.Collection`` without this package
depending on CLU. A boolean mask marks the real rows of a padded batch; padding rows count for
nothing, whatever they hold (NaN included). The state is float32 with an int32 count.

Every summary in the package uses one definition (:func:`summarize` on NumPy values,
:meth:`DistanceStats.summary` on a state): ``std`` is the sample standard deviation (``ddof=1``)
and ``ci95`` the Student-t 95% confidence interval of the mean, ``mean ± t(0.975, n-1) std /
sqrt(n)`` (the t quantile computed here, without SciPy); both are NaN for fewer than two values.

Example::

    stats = DistanceStats.empty()
    for batch in batches:                   # padded to one shape; batch["mask"] marks real rows
        stats = step(stats, batch)          # jitted: stats.update(d, mask=batch["mask"])
    print(stats.summary())                  # {"count", "mean", "std", "ci95", "min", "max"}
"""

from __future__ import annotations

import math
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .errors import InputError

__all__ = ["DistanceStats", "summarize", "merge_across_processes", "pad_batch",
           "student_t_quantile", "student_t_cdf"]

_F = jnp.float32


def _as_values(values: Any) -> jax.Array:
    try:
        # Host data is checked with NumPy first (jnp.asarray of strings warns before failing).
        v = jnp.asarray(values if isinstance(values, jax.Array) else np.asarray(values))
    except (TypeError, ValueError) as err:
        raise InputError(f"values must be an array of real numbers; got {type(values).__name__}"
                         f" ({err})") from None
    if not (jnp.issubdtype(v.dtype, jnp.floating) or jnp.issubdtype(v.dtype, jnp.integer)
            or v.dtype == jnp.bool_):
        raise InputError(f"values must be real numbers (float, int or bool); got dtype {v.dtype}")
    return v.astype(_F)


def _as_mask(mask: Any, shape: tuple[int, ...]) -> jax.Array:
    """Booleans of ``shape``: ``mask`` covers the leading axes and broadcasts over the rest."""
    if mask is None:
        return jnp.ones(shape, bool)
    m = jnp.asarray(mask)
    if m.shape != shape[:m.ndim]:
        raise InputError(f"mask of shape {m.shape} does not fit values of shape {shape}: "
                         "expected the leading axes of the values, e.g. (batch,)")
    m = m.astype(bool).reshape(m.shape + (1,) * (len(shape) - m.ndim))
    return jnp.broadcast_to(m, shape)


@flax.struct.dataclass
class DistanceStats:
    """Count, mean, ``m2`` (sum of squared deviations), min and max of the values seen.

    Build one with :meth:`empty` or :meth:`from_model_output`, grow it with :meth:`update` /
    :meth:`merge`, read it with :meth:`compute` (jit-friendly arrays) or :meth:`summary` (host
    floats with the 95% CI). A state whose fields have a leading axis is a stack of states
    (from ``lax.all_gather`` or ``vmap``); :meth:`reduce` merges it into one.

    Attributes:
      count: int32, number of values (mask-true entries) seen.
      mean: float32, their mean (0 while ``count`` is 0).
      m2: float32, the sum of squared deviations from ``mean``.
      min, max: float32, extremes (+inf / -inf while ``count`` is 0).
    """
    count: jax.Array
    mean: jax.Array
    m2: jax.Array
    min: jax.Array
    max: jax.Array

    @classmethod
    def empty(cls) -> "DistanceStats":
        """The state of no values: merging it changes nothing.

        Returns:
          A :class:`DistanceStats` with count 0.
        """
        return cls(count=jnp.zeros((), jnp.int32), mean=jnp.zeros((), _F), m2=jnp.zeros((), _F),
                   min=jnp.full((), jnp.inf, _F), max=jnp.full((), -jnp.inf, _F))

    @classmethod
    def from_model_output(cls, values: jax.Array, mask: jax.Array | None = None,
                          **_: Any) -> "DistanceStats":
        """The statistics of one batch of values.

        Extra keyword arguments are ignored, so a ``clu.metrics.Collection`` can pass all its
        model outputs (``values=..., mask=..., loss=...``).

        Args:
          values: any shape, real numbers (cast to float32), e.g. distances of shape (N,).
          mask: ``None`` (all count) or booleans (or 0/1) whose shape is the leading axes of
            ``values``, e.g. (N,): only true entries count; false ones may hold anything.

        Returns:
          A :class:`DistanceStats` of the masked values.

        Raises:
          InputError: non-numeric values, or a mask that does not fit.
        """
        v = _as_values(values)
        m = _as_mask(mask, v.shape)
        n = jnp.sum(m, dtype=jnp.int32)
        safe = jnp.maximum(n, 1).astype(_F)
        # Two passes over the batch (mean, then squared deviations from it): exact enough in
        # float32 for any batch, and the batches then combine through merge().
        mean = jnp.sum(jnp.where(m, v, 0.0)) / safe
        m2 = jnp.sum(jnp.where(m, jnp.square(v - mean), 0.0))
        return cls(count=n, mean=mean, m2=m2,
                   min=jnp.min(jnp.where(m, v, jnp.inf), initial=jnp.inf),
                   max=jnp.max(jnp.where(m, v, -jnp.inf), initial=-jnp.inf))

    @classmethod
    def from_output(cls, name: str) -> type:
        """A subclass whose ``from_model_output`` reads the model output named ``name``.

        As ``clu.metrics.Metric.from_output``: ``Collection.create(d=DistanceStats.from_output(
        "distance"))`` then ``single_from_model_output(distance=d, mask=m)``.

        Args:
          name: the keyword under which the values arrive.

        Returns:
          A :class:`DistanceStats` subclass.
        """
        @flax.struct.dataclass
        class FromOutput(cls):
            @classmethod
            def from_model_output(sub, mask=None, **outputs):
                if name not in outputs:
                    raise InputError(f"model output {name!r} is missing; got "
                                     f"{sorted(outputs)}")
                return super().from_model_output(outputs[name], mask=mask)

        FromOutput.__name__ = FromOutput.__qualname__ = f"{cls.__name__}_{name}"
        return FromOutput

    def merge(self, other: "DistanceStats") -> "DistanceStats":
        """The statistics of the values of both states (Chan et al.'s pairwise update).

        Associative and commutative up to float32 rounding; ``empty()`` is its identity.

        Args:
          other: another state (same shape; stacked states merge element-wise).

        Returns:
          The merged state.
        """
        n = self.count + other.count
        na, nb = self.count.astype(_F), other.count.astype(_F)
        safe = jnp.maximum(n, 1).astype(_F)
        delta = other.mean - self.mean
        return type(self)(count=n, mean=self.mean + delta * (nb / safe),
                          m2=self.m2 + other.m2 + jnp.square(delta) * (na * (nb / safe)),
                          min=jnp.minimum(self.min, other.min),
                          max=jnp.maximum(self.max, other.max))

    def update(self, values: jax.Array, mask: jax.Array | None = None) -> "DistanceStats":
        """This state merged with the statistics of a new batch (for jit / ``lax.scan`` loops).

        Args:
          values, mask: as :meth:`from_model_output`.

        Returns:
          The updated state.
        """
        return self.merge(type(self).from_model_output(values, mask))

    def _pooled(self, total: Callable, lowest: Callable, highest: Callable) -> "DistanceStats":
        # The pooled mean is the count-weighted mean of the parts; the pooled m2 adds each
        # part's spread around the pooled mean: m2_i + n_i (mean_i - mean)^2.
        n = total(self.count)
        nf = self.count.astype(_F)
        mean = total(nf * self.mean) / jnp.maximum(n, 1).astype(_F)
        m2 = total(self.m2 + nf * jnp.square(self.mean - mean))
        return type(self)(count=n, mean=mean, m2=m2, min=lowest(self.min),
                          max=highest(self.max))

    def reduce(self) -> "DistanceStats":
        """Merges a stack of states (fields with a leading axis) into one.

        The ``clu.metrics.Metric.reduce`` contract: ``lax.all_gather(state, "data").reduce()``
        inside ``shard_map``, or the output of ``multihost_utils.process_allgather``.

        Returns:
          One state (fields with the leading axis removed).
        """
        if jnp.ndim(self.count) == 0:
            raise InputError("reduce() needs a stack of states (fields with a leading axis); "
                             "this state is a single one")
        return self._pooled(lambda x: jnp.sum(x, axis=0), lambda x: jnp.min(x, axis=0),
                            lambda x: jnp.max(x, axis=0))

    def all_reduce(self, axis_name: str | tuple[str, ...]) -> "DistanceStats":
        """Merges this device's state with those of every device along a mesh axis.

        For use inside ``jax.shard_map`` (or ``pmap``): ``lax.psum`` / ``pmin`` / ``pmax`` over
        ``axis_name``; the result is the same (replicated) on every device, so ``out_specs=P()``
        passes shard_map's default replication check. Call it on each device's own state (from
        its shard of the values), then merge the result into the replicated running state: a
        state that is already the same on every device would be counted once per device.

        Args:
          axis_name: the mesh axis (or axes), e.g. ``"data"``.

        Returns:
          The state of all devices' values.
        """
        return self._pooled(lambda x: lax.psum(x, axis_name), lambda x: lax.pmin(x, axis_name),
                            lambda x: lax.pmax(x, axis_name))

    def compute(self) -> dict[str, jax.Array]:
        """The statistics as arrays (works under jit).

        Returns:
          ``{"count", "mean", "std", "min", "max"}``: ``std`` with ``ddof=1``; ``mean``, ``min``
          and ``max`` are NaN for no values, ``std`` for fewer than two.
        """
        n = self.count
        nan = jnp.asarray(jnp.nan, _F)
        std = jnp.sqrt(jnp.maximum(self.m2, 0.0) / jnp.maximum(n - 1, 1).astype(_F))
        return {"count": n, "mean": jnp.where(n > 0, self.mean, nan),
                "std": jnp.where(n > 1, std, nan), "min": jnp.where(n > 0, self.min, nan),
                "max": jnp.where(n > 0, self.max, nan)}

    def summary(self) -> dict[str, Any]:
        """The statistics as Python numbers, with the 95% confidence interval of the mean.

        Fetches the state to the host; same definitions as :func:`summarize`.

        Returns:
          ``{"count": int, "mean", "std", "ci95": [lo, hi], "min", "max"}`` (floats; NaN where
          undefined).

        Raises:
          InputError: the state is a stack (call :meth:`reduce` first).
        """
        if np.ndim(self.count) != 0:
            raise InputError(f"summary() needs a single state; this is a stack of shape "
                             f"{np.shape(self.count)}: call .reduce() first")
        count, mean, m2, lo, hi = (np.asarray(jax.device_get(x)) for x in
                                   (self.count, self.mean, self.m2, self.min, self.max))
        return _summary(int(count), float(mean), float(m2), float(lo), float(hi))


def _summary(count: int, mean: float, m2: float, lo: float, hi: float) -> dict[str, Any]:
    nan = float("nan")
    if count < 1:
        return {"count": 0, "mean": nan, "std": nan, "ci95": [nan, nan], "min": nan, "max": nan}
    if count < 2:
        std, ci = nan, [nan, nan]
    else:
        std = math.sqrt(max(m2, 0.0) / (count - 1))
        half = student_t_quantile(0.975, count - 1) * std / math.sqrt(count)
        ci = [mean - half, mean + half]
    return {"count": count, "mean": mean, "std": std, "ci95": ci, "min": lo, "max": hi}


def summarize(values: Any, mask: Any = None) -> dict[str, Any]:
    """Count, mean, std, 95% CI of the mean, min and max of values (NumPy, float64).

    ``std`` is the sample standard deviation (``ddof=1``); ``ci95`` is the Student-t interval
    ``mean ± t(0.975, n-1) std / sqrt(n)``, exact for normally distributed values and the better
    choice for the small n of a folder of images. NaN values propagate (they are not dropped).

    Args:
      values: real numbers, any shape (flattened), e.g. per-image distances.
      mask: optional booleans of the same shape (or its leading axes): only true entries count.

    Returns:
      ``{"count": int, "mean", "std", "ci95": [lo, hi], "min", "max"}``: Python floats; NaN
      where undefined (``mean``, ``min``, ``max`` for no values; ``std`` and ``ci95`` for fewer
      than two).

    Raises:
      InputError: non-numeric values or a mask that does not fit.
    """
    try:
        v = np.asarray(values)
    except (TypeError, ValueError) as err:
        raise InputError(f"values must be real numbers; got {type(values).__name__} ({err})") \
            from None
    if v.dtype == object:
        try:
            v = v.astype(np.float64)
        except (TypeError, ValueError):
            raise InputError("values must be real numbers; got non-numeric entries") from None
    if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)
            or v.dtype == np.bool_):
        raise InputError(f"values must be real numbers (float, int or bool); got dtype {v.dtype}")
    v = v.astype(np.float64)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != v.shape[:m.ndim]:
            raise InputError(f"mask of shape {m.shape} does not fit values of shape {v.shape}")
        m = np.broadcast_to(m.astype(bool).reshape(m.shape + (1,) * (v.ndim - m.ndim)), v.shape)
        v = v[m]
    v = v.reshape(-1)
    if v.size == 0:
        return _summary(0, 0.0, 0.0, 0.0, 0.0)
    mean = float(np.mean(v))
    m2 = float(np.sum(np.square(v - mean)))
    return _summary(int(v.size), mean, m2, float(np.min(v)), float(np.max(v)))


def merge_across_processes(state: DistanceStats) -> DistanceStats:
    """Merges each process's own state into the state of all processes' values.

    Uses ``jax.experimental.multihost_utils.process_allgather`` (a collective: every process
    must call it) and :meth:`DistanceStats.reduce`; with one process it returns ``state``.

    Args:
      state: this process's state, from its own share of the data (host-local arrays). A state
        already reduced over the devices of every process (a global array, e.g. the output of
        a ``shard_map`` over a multi-process mesh) holds everything and must not be gathered.

    Returns:
      The merged state, the same on every process.

    Raises:
      InputError: ``state`` is a stack or a global (multi-process) array.
    """
    if np.ndim(state.count) != 0:
        raise InputError("merge_across_processes() needs a single state; call .reduce() on "
                         "the stack first")
    if jax.process_count() == 1:
        return state
    for leaf in jax.tree.leaves(state):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            raise InputError("this state is a global array spanning every process (already "
                             "merged over all devices); it needs no gathering")
    from jax.experimental import multihost_utils
    stacked = multihost_utils.process_allgather(jax.tree.map(np.asarray, state))
    return jax.tree.map(jnp.asarray, stacked).reduce()


def pad_batch(batch: Any, size: int) -> tuple[Any, np.ndarray]:
    """Pads a short batch (a pytree of arrays sharing the leading axis) to ``size`` rows.

    Padding rows are zeros; the mask is true on the real rows. Keeping one batch shape means
    one compiled program for the whole run, and the mask keeps the padding out of the
    statistics.

    Args:
      batch: arrays (or a dict / tuple of arrays) with the same leading length ``n <= size``.
      size: the batch size to pad to.

    Returns:
      ``(padded_batch, mask)``: the batch with ``size`` rows (NumPy), and a (size,) bool mask.

    Raises:
      InputError: leading lengths differ, or exceed ``size``.
    """
    leaves = jax.tree.leaves(batch)
    if not leaves:
        raise InputError("pad_batch() needs at least one array")
    lengths = {int(np.shape(x)[0]) if np.ndim(x) else -1 for x in leaves}
    if len(lengths) != 1 or -1 in lengths:
        raise InputError(f"all arrays of a batch need the same leading (batch) axis; got "
                         f"lengths {sorted(lengths)}")
    n = lengths.pop()
    if size < 1 or n > size:
        raise InputError(f"cannot pad a batch of {n} rows to {size} rows")

    def pad(x):
        x = np.asarray(x)
        return np.concatenate([x, np.zeros((size - n,) + x.shape[1:], x.dtype)]) if n < size \
            else x

    return jax.tree.map(pad, batch), np.arange(size) < n


# ------------------------------------------------------------------------ Student-t quantile
def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            return h
    raise ArithmeticError(f"incomplete beta fraction did not converge (a={a}, b={b}, x={x})")


def _stirling_tail(x: float) -> float:
    """lgamma(x) - [(x - 1/2) ln x - x + ln(2 pi) / 2], for x >= 100 (error < 1e-20)."""
    x2 = x * x
    return (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - 1.0 / (1680.0 * x2)) / x2) / x2) / x


def _lgamma_ratio(a: float, b: float) -> float:
    """lgamma(a + b) - lgamma(a), without the cancellation of two huge lgammas for large a."""
    if a < 100.0:
        return math.lgamma(a + b) - math.lgamma(a)
    return ((a - 0.5) * math.log1p(b / a) + b * math.log(a + b) - b
            + _stirling_tail(a + b) - _stirling_tail(a))


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularized incomplete beta I_x(a, b), with y = 1 - x passed exactly."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    big, small = (a, b) if a >= b else (b, a)
    # ln x and ln y from whichever of x, y is small, so x near 1 keeps its digits.
    log_x = math.log1p(-y) if y < 0.5 else math.log(x)
    log_y = math.log1p(-x) if x < 0.5 else math.log(y)
    log_front = (a * log_x + b * log_y + _lgamma_ratio(big, small)
                 - math.lgamma(small))
    # The fraction converges fast below the mean of the beta distribution; use the symmetry
    # I_x(a, b) = 1 - I_y(b, a) above it.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def _t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for t >= 0: I_{df/(df+t²)}(df/2, 1/2) / 2."""
    t2 = t * t
    return 0.5 * _betainc(0.5 * df, 0.5, df / (df + t2), t2 / (df + t2))


def _check_df(df: float) -> float:
    try:
        df = float(df)
    except (TypeError, ValueError):
        raise InputError(f"degrees of freedom must be a number; got {df!r}") from None
    if not (df > 0 and math.isfinite(df)):
        raise InputError(f"degrees of freedom must be a positive finite number; got {df}")
    return df


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t distribution with ``df`` degrees of freedom.

    Args:
      t: the point.
      df: degrees of freedom (> 0, need not be an integer).

    Returns:
      The probability, a float in [0, 1].
    """
    df = _check_df(df)
    t = float(t)
    if math.isnan(t):
        return float("nan")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = _t_upper_tail(abs(t), df)
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t distribution with ``df`` degrees of freedom.

    Bisection on the tail probability (the regularized incomplete beta function); agrees with
    SciPy to better than 1e-8 relative for df from 0.5 to 1e8.
    ``student_t_quantile(0.975, n - 1)`` is the factor of a 95% CI.

    Args:
      p: probability in (0, 1).
      df: degrees of freedom (> 0).

    Returns:
      t with P(T <= t) = p.

    Raises:
      InputError: ``p`` outside (0, 1) or ``df`` not positive.
    """
    df = _check_df(df)
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise InputError(f"p must be a probability in (0, 1); got {p!r}") from None
    if not 0.0 < p < 1.0:
        raise InputError(f"p must be a probability in (0, 1); got {p}")
    if p == 0.5:
        return 0.0
    q = 1.0 - p if p > 0.5 else p                         # the upper-tail probability sought
    lo, hi = 0.0, 1.0
    while _t_upper_tail(hi, df) > q:
        lo, hi = hi, 2.0 * hi
        if hi > 1e300:
            break
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _t_upper_tail(mid, df) > q:
            lo = mid
        else:
            hi = mid
    t = 0.5 * (lo + hi)
    return t if p > 0.5 else -t
