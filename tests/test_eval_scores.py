"""Score formulas on tiny hand-computed cases: 2AFC, VOC AP / JND mAP, rank flips."""

import math

import numpy as np
import pytest

from shiftlpips_jax import evaluation as ev


# ----------------------------------------------------------------------------------------- 2AFC
def test_2afc_hand_cases():
    # d0<d1 agrees with judge=0.2 (80% chose p0): 0.8; d1<d0 with judge 0.2: 0.2; tie: 0.5.
    d0 = [0.1, 0.5, 0.3]
    d1 = [0.2, 0.4, 0.3]
    judge = [0.2, 0.2, 0.9]
    np.testing.assert_allclose(ev.twoafc_per_sample(d0, d1, judge), [0.8, 0.2, 0.5])
    assert ev.twoafc_score(d0, d1, judge) == pytest.approx((0.8 + 0.2 + 0.5) / 3)


def test_2afc_all_ties_is_half_whatever_the_judges():
    assert ev.twoafc_score([0.3] * 4, [0.3] * 4, [0.0, 0.25, 0.75, 1.0]) == 0.5


def test_2afc_all_agree_and_all_disagree():
    d0, d1 = [0.1, 0.9], [0.5, 0.2]
    assert ev.twoafc_score(d0, d1, [0.0, 1.0]) == 1.0   # people unanimous, metric agrees
    assert ev.twoafc_score(d0, d1, [1.0, 0.0]) == 0.0   # people unanimous, metric disagrees


def test_2afc_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        ev.twoafc_score([0.1, 0.2], [0.3], [0.5, 0.5])


# ---------------------------------------------------------------------------------------- VOC AP
def test_voc_ap_hand_case():
    # rec [0.5, 0.5, 1.0], prec [1.0, 0.5, 0.667]: envelope at the recall steps is 1.0 then 0.667
    ap = ev.voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3])
    assert ap == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)


def test_jnd_map_hand_case():
    # sorted by distance: same = [1, 0, 1] -> TP [1,1,2], FP [0,1,1], prec [1, .5, 2/3],
    # rec [.5, .5, 1] -> AP = .5*1 + .5*(2/3).
    assert ev.jnd_map([0.1, 0.3, 0.2], [1.0, 1.0, 0.0]) == pytest.approx(0.5 + 1 / 3)


def test_jnd_map_soft_labels_match_upstream_recipe():
    rng = np.random.default_rng(0)
    ds = rng.random(50)
    same = rng.integers(0, 4, 50) / 3.0
    s = same[np.argsort(ds, kind="stable")]
    tp, fp = np.cumsum(s), np.cumsum(1 - s)
    prec, rec = tp / (tp + fp), tp / s.sum()
    # Upstream voc_ap, written as its loop.
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    expected = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    assert ev.jnd_map(ds, same) == pytest.approx(expected, abs=1e-12)


def test_jnd_map_all_same_is_one_and_no_same_is_nan():
    assert ev.jnd_map([0.4, 0.1, 0.3], [1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert math.isnan(ev.jnd_map([0.4, 0.1, 0.3], [0.0, 0.0, 0.0]))


def test_jnd_map_perfect_and_reversed_ranking():
    same = [1.0, 1.0, 0.0, 0.0]
    assert ev.jnd_map([0.1, 0.2, 0.3, 0.4], same) == pytest.approx(1.0)
    # Positives ranked last: prec at rec .5 is 1/3, at rec 1 it is 2/4 -> envelope .5, .5.
    assert ev.jnd_map([0.4, 0.3, 0.2, 0.1], same) == pytest.approx(0.5)


def test_jnd_map_ties_keep_dataset_order():
    # Equal distances: the stable sort keeps input order, so which tie comes first matters.
    assert ev.jnd_map([0.2, 0.2], [1.0, 0.0]) == pytest.approx(1.0)
    assert ev.jnd_map([0.2, 0.2], [0.0, 1.0]) == pytest.approx(0.5)


# ----------------------------------------------------------------------------------- rank flips
def test_rank_flips_hand_case():
    d0, d1 = [0.1, 0.5, 0.3, 0.2], [0.2, 0.4, 0.3, 0.6]
    d0s, d1s = [0.3, 0.5, 0.1, 0.2], [0.2, 0.3, 0.3, 0.2]
    # orders before: T F F T ; after: F F T F  -> flips: T F T T
    np.testing.assert_array_equal(ev.rank_flips(d0, d1, d0s, d1s), [True, False, True, True])
    assert ev.rank_flip_rate(d0, d1, d0s, d1s) == pytest.approx(75.0)


def test_rank_flips_none_and_all():
    d0, d1 = [0.1, 0.9], [0.5, 0.2]
    assert ev.rank_flip_rate(d0, d1, d0, d1) == 0.0
    assert ev.rank_flip_rate(d0, d1, d1, d0) == 100.0


def test_rank_flips_better_counts_improving_flips():
    d0, d1 = [0.1, 0.1], [0.2, 0.2]
    d0s, d1s = [0.3, 0.3], [0.2, 0.2]        # both flip to "p1 closer"
    judge = [0.9, 0.1]                       # first: people prefer p1 (flip helps)
    assert ev.rank_flips_better(d0, d1, d0s, d1s, judge) == 1
