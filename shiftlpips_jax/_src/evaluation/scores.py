"""The paper's scores from distances: 2AFC agreement, JND mAP and shift rank flips.

Definitions as upstream ``stlpips/trainer.py`` (``score_2afc_dataset``, ``score_jnd_dataset``),
``stlpips.voc_ap`` and ``n_pixel_shift_study/rank_flips.py`` (Ghildyal & Liu, ECCV 2022):

* 2AFC per triplet: ``(d0<d1)*(1-judge) + (d1<d0)*judge + 0.5*(d0==d1)``; the set's score is the
  mean (the paper reports it in %).
* JND: pairs sorted by distance ascending (ties keep dataset order), "same" fractions as soft
  positives; cumulative precision/recall; VOC AP (area under the monotone precision envelope).
  A set without any "same" vote has no recall, so its AP is NaN.
* Rank flip at shift n: ``(d0<d1)`` under the n-pixel crop-shift differs from the n = 0 crop;
  ``r_rf = 100 * flips / triplets``.

Example::

    twoafc_score(d0, d1, judge)         # fraction in [0, 1]
    jnd_map(d, same)                    # AP in [0, 1]
    rank_flip_rate(d0_0, d1_0, d0_n, d1_n)   # %
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["twoafc_per_sample", "twoafc_score", "voc_ap", "jnd_map", "rank_flips",
           "rank_flip_rate", "rank_flips_better"]


def _vectors(*arrays):
    out = [np.asarray(a, np.float64).reshape(-1) for a in arrays]
    if len({a.size for a in out}) != 1:
        raise ValueError(f"score inputs differ in length: {[a.size for a in out]}")
    if out[0].size == 0:
        raise ValueError("score inputs are empty")
    return out


def twoafc_per_sample(d0, d1, judge):
    """Per-triplet agreement with people, in [0, 1], as upstream ``score_2afc_dataset``.

    ``(d0 < d1) * (1 - judge) + (d1 < d0) * judge + 0.5 * (d0 == d1)``: the fraction of people
    the metric sides with (ties score one half). One definition for NumPy and JAX: given
    ``jax.Array`` inputs (also tracers inside ``jit``/``shard_map``) it returns a float32 jax
    array of their shape; otherwise the inputs are checked (same length, not empty) and it
    returns float64 NumPy.

    Args:
      d0, d1: distances d(ref, p0), d(ref, p1), (N,).
      judge: fraction of people who preferred p1, (N,) in [0, 1].

    Returns:
      (N,) agreement per triplet.
    """
    if any(isinstance(a, jax.Array) for a in (d0, d1, judge)):
        d0, d1, judge = (jnp.asarray(a, jnp.float32) for a in (d0, d1, judge))
        return (d0 < d1) * (1.0 - judge) + (d1 < d0) * judge + (d1 == d0) * 0.5
    d0, d1, judge = _vectors(d0, d1, judge)
    return (d0 < d1) * (1.0 - judge) + (d1 < d0) * judge + (d1 == d0) * 0.5


def twoafc_score(d0, d1, judge) -> float:
    """Mean 2AFC agreement in [0, 1] (multiply by 100 for the paper's %).

    Args:
      d0, d1, judge: as :func:`twoafc_per_sample`.

    Returns:
      The mean of :func:`twoafc_per_sample`.
    """
    return float(np.mean(twoafc_per_sample(d0, d1, judge)))


def voc_ap(rec, prec) -> float:
    """VOC average precision (the exact, not the 11-point, form), as upstream ``voc_ap``.

    Args:
      rec: (N,) cumulative recall.
      prec: (N,) cumulative precision.

    Returns:
      The area under the monotone precision envelope.
    """
    rec = np.asarray(rec, np.float64)
    prec = np.asarray(prec, np.float64)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def jnd_map(distances, same) -> float:
    """JND mAP: "same" as positives ranked by ascending distance; NaN without positives.

    Args:
      distances: (N,) distances of the pairs.
      same: (N,) fraction of people who judged each pair identical.

    Returns:
      The average precision in [0, 1] (NaN when no pair has a "same" vote).
    """
    ds, same = _vectors(distances, same)
    order = np.argsort(ds, kind="stable")
    s = same[order]
    tp = np.cumsum(s)
    fp = np.cumsum(1.0 - s)
    total = np.sum(s)
    if total <= 0:
        return float("nan")
    fn = total - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = tp / (tp + fp)
        rec = tp / (tp + fn)
    return voc_ap(rec, prec)


def rank_flips(d0_ref, d1_ref, d0_shift, d1_shift) -> np.ndarray:
    """Boolean (N,): the ordering ``d0 < d1`` changed between the two conditions.

    Args:
      d0_ref, d1_ref: d(ref, p0), d(ref, p1) without the shift (the n = 0 crop), (N,).
      d0_shift, d1_shift: the same under the shift, (N,).

    Returns:
      (N,) bool.
    """
    a0, a1, b0, b1 = _vectors(d0_ref, d1_ref, d0_shift, d1_shift)
    return (a0 < a1) != (b0 < b1)


def rank_flip_rate(d0_ref, d1_ref, d0_shift, d1_shift) -> float:
    """``r_rf`` in %: 100 * flipped triplets / triplets.

    Args:
      d0_ref, d1_ref, d0_shift, d1_shift: as :func:`rank_flips`.

    Returns:
      The percentage of flipped triplets.
    """
    return 100.0 * float(np.mean(rank_flips(d0_ref, d1_ref, d0_shift, d1_shift)))


def rank_flips_better(d0_ref, d1_ref, d0_shift, d1_shift, judge) -> int:
    """Flips whose shifted 2AFC agreement beats the unshifted one (upstream ``countBetter``).

    Args:
      d0_ref, d1_ref, d0_shift, d1_shift: as :func:`rank_flips`.
      judge: (N,) fraction of people who preferred p1.

    Returns:
      The number of such flips.
    """
    flips = rank_flips(d0_ref, d1_ref, d0_shift, d1_shift)
    before = twoafc_per_sample(d0_ref, d1_ref, judge)
    after = twoafc_per_sample(d0_shift, d1_shift, judge)
    return int(np.sum(flips & (after > before)))
