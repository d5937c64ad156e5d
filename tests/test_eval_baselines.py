"""L2 / SSIM baselines against scikit-image and upstream's formulas, on real photo patches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import color
from skimage.metrics import structural_similarity

from bapps_fixture import distort, photo_patch
from shiftlpips_jax import evaluation as ev


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(3)
    a = np.stack([photo_patch(rng, (32, 40)) for _ in range(4)])
    b = np.stack([distort(x, rng) for x in a])
    b[3] = a[3]  # one identical pair
    return a, b


def _unit(x):
    return jnp.asarray(x, jnp.float32) / 127.5 - 1.0


def test_rgb_to_lab_matches_skimage(pairs):
    a, _ = pairs
    ours = np.asarray(ev.rgb_to_lab(a.astype(np.float32) / 255.0))
    ref = color.rgb2lab(a)
    np.testing.assert_allclose(ours, ref, atol=2e-3)
    # The dark linear branches of both the gamma and the Lab cube root are exercised too.
    dark = np.array([[[0, 0, 0], [3, 1, 2], [10, 10, 10], [255, 255, 255]]], np.uint8)
    np.testing.assert_allclose(np.asarray(ev.rgb_to_lab(dark / 255.0)), color.rgb2lab(dark),
                               atol=2e-3)


@pytest.mark.parametrize("space", ["RGB", "Lab"])
def test_ssim_matches_skimage_defaults(pairs, space):
    a, b = pairs
    if space == "RGB":
        xa, xb, rng_ = a.astype(np.float64), b.astype(np.float64), 255.0
    else:
        xa, xb, rng_ = color.rgb2lab(a), color.rgb2lab(b), 100.0
    ours = np.asarray(ev.ssim(jnp.asarray(xa, jnp.float32), jnp.asarray(xb, jnp.float32),
                              data_range=rng_))
    ref = [structural_similarity(xa[i], xb[i], data_range=rng_, channel_axis=-1)
           for i in range(len(a))]
    np.testing.assert_allclose(ours, ref, atol=2e-5)
    assert ours[3] == pytest.approx(1.0, abs=1e-6)


def test_l2_and_dssim_distances_follow_upstream_formulas(pairs):
    a, b = pairs
    x, y = _unit(a), _unit(b)
    lab_a, lab_b = color.rgb2lab(a), color.rgb2lab(b)
    # Upstream lpips.l2(p0, p1, range=100) on Lab, per image.
    want_l2_lab = [0.5 * np.mean((lab_a[i] / 100 - lab_b[i] / 100) ** 2) for i in range(4)]
    np.testing.assert_allclose(ev.l2_distance("Lab")(x, y), want_l2_lab, rtol=1e-4, atol=1e-8)
    want_l2_rgb = np.mean((np.asarray(x) - np.asarray(y)) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(ev.l2_distance("RGB")(x, y), want_l2_rgb, rtol=1e-6)
    want_dssim = [(1 - structural_similarity(a[i].astype(np.float64), b[i].astype(np.float64),
                                             data_range=255.0, channel_axis=-1)) / 2
                  for i in range(4)]
    np.testing.assert_allclose(ev.ssim_distance("RGB")(x, y), want_dssim, atol=1e-5)
    want_dssim_lab = [(1 - structural_similarity(lab_a[i], lab_b[i], data_range=100.0,
                                                 channel_axis=-1)) / 2 for i in range(4)]
    np.testing.assert_allclose(ev.ssim_distance("Lab")(x, y), want_dssim_lab, atol=1e-5)


def test_baselines_jit_equals_eager(pairs):
    a, b = pairs
    x, y = _unit(a), _unit(b)
    for dist in (ev.l2_distance("Lab"), ev.ssim_distance("RGB")):
        eager = np.asarray(dist(x, y))
        jitted = np.asarray(jax.jit(lambda u, v, d=dist: d(u, v))(x, y))
        np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7)


def test_ssim_rejects_small_or_mismatched_images():
    with pytest.raises(ValueError, match="at least 7x7"):
        ev.ssim(jnp.zeros((1, 6, 8, 3)), jnp.zeros((1, 6, 8, 3)), data_range=1.0)
    with pytest.raises(ValueError, match="one shape"):
        ev.ssim(jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 9, 3)), data_range=1.0)


def test_unknown_colorspace_is_rejected():
    with pytest.raises(ValueError, match="colorspace"):
        ev.l2_distance("YUV")
