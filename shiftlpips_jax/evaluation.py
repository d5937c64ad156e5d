"""Measuring a perceptual distance the way the ST-LPIPS paper does (Ghildyal & Liu, ECCV 2022).

* Scores from distances (NumPy): :func:`twoafc_score` (BAPPS 2AFC agreement),
  :func:`jnd_map` (JND mAP, VOC AP), :func:`rank_flips` / :func:`rank_flip_rate` (``r_rf``).
* Distances: :func:`get_distance` builds ST-LPIPS / LPIPS (pretrained or a checkpoint) or the
  L2 / DSSIM baselines in Lab or RGB (:func:`ssim`, :func:`rgb_to_lab` match scikit-image),
  MS-SSIM (:func:`ms_ssim`, as pytorch-msssim) and DISTS (the official DISTS_pytorch model).
* Runner: :func:`evaluate_2afc` (2AFC + crop-shift rank flips for n = 1, 2, 3, reference features
  computed once per triplet) and :func:`evaluate_jnd`, with parallel decoding, a progress bar and
  results that print as the paper's table (``.table()``) or the CLI's JSON (``.to_json()``).
* Command line: ``shiftlpips eval`` (:mod:`shiftlpips_jax.cli.eval`) and ``shiftlpips shift-study``
  (:mod:`shiftlpips_jax.cli.shift_study`).

Example::

    from shiftlpips_jax import data, evaluation as ev
    src = data.read_2afc("BAPPS/dataset/2afc", ["val/traditional", "val/cnn"])
    res = ev.evaluate_2afc(src, ev.get_distance("alex"), shifts=(1, 2, 3))
    print(res.table()); res.to_json()["2afc"]["mean"]
"""

from shiftlpips_jax._src.evaluation.baselines import dssim
from shiftlpips_jax._src.evaluation.baselines import rgb_to_lab
from shiftlpips_jax._src.evaluation.baselines import ssim
from shiftlpips_jax._src.evaluation.distances import COLORSPACES
from shiftlpips_jax._src.evaluation.distances import Distance
from shiftlpips_jax._src.evaluation.distances import dists_distance
from shiftlpips_jax._src.evaluation.distances import get_distance
from shiftlpips_jax._src.evaluation.distances import l2_distance
from shiftlpips_jax._src.evaluation.distances import learned_distance
from shiftlpips_jax._src.evaluation.distances import msssim_distance
from shiftlpips_jax._src.evaluation.distances import ssim_distance
from shiftlpips_jax._src.evaluation.msssim import ms_ssim
from shiftlpips_jax._src.evaluation.runner import SHIFT_OFFSET
from shiftlpips_jax._src.evaluation.runner import JNDResult
from shiftlpips_jax._src.evaluation.runner import JNDSetResult
from shiftlpips_jax._src.evaluation.runner import TwoAFCResult
from shiftlpips_jax._src.evaluation.runner import TwoAFCSetResult
from shiftlpips_jax._src.evaluation.runner import evaluate_2afc
from shiftlpips_jax._src.evaluation.runner import evaluate_jnd
from shiftlpips_jax._src.evaluation.scores import jnd_map
from shiftlpips_jax._src.evaluation.scores import rank_flip_rate
from shiftlpips_jax._src.evaluation.scores import rank_flips
from shiftlpips_jax._src.evaluation.scores import rank_flips_better
from shiftlpips_jax._src.evaluation.scores import twoafc_per_sample
from shiftlpips_jax._src.evaluation.scores import twoafc_score
from shiftlpips_jax._src.evaluation.scores import voc_ap

__all__ = (
    "COLORSPACES",
    "Distance",
    "JNDResult",
    "JNDSetResult",
    "SHIFT_OFFSET",
    "TwoAFCResult",
    "TwoAFCSetResult",
    "dists_distance",
    "dssim",
    "evaluate_2afc",
    "evaluate_jnd",
    "get_distance",
    "jnd_map",
    "l2_distance",
    "learned_distance",
    "ms_ssim",
    "msssim_distance",
    "rank_flip_rate",
    "rank_flips",
    "rank_flips_better",
    "rgb_to_lab",
    "ssim",
    "ssim_distance",
    "twoafc_per_sample",
    "twoafc_score",
    "voc_ap",
)
