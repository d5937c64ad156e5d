"""MS-SSIM against pytorch-msssim 1.0.0 (goldens/msssim.npz), the small-image rule, gradients,
transforms and the evaluation distance."""

from __future__ import annotations

import inspect
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import color

from conftest import GOLDENS, assert_parity
from shiftlpips_jax import evaluation as ev
from shiftlpips_jax._src.errors import InputError
from shiftlpips_jax._src.evaluation.msssim import gaussian_window, ms_ssim, msssim_min_size


@pytest.fixture(scope="module")
def goldens():
    return np.load(os.path.join(GOLDENS, "msssim.npz"))


def _split(images, pairs):
    images = jnp.asarray(images, jnp.float32)
    return images[pairs[:, 0]], images[pairs[:, 1]]


@pytest.mark.parametrize("hw", [(256, 256), (256, 200), (181, 203)])
def test_parity_rgb(goldens, pretrained_goldens, hw):
    h, w = hw
    x, y = _split(pretrained_goldens["images256"][:, :h, :w], pretrained_goldens["pairs256"])
    key = "rgb256" if hw == (256, 256) else f"rgb{h}x{w}"
    assert_parity(ms_ssim(x, y, data_range=255.0), goldens[key], f"MS-SSIM RGB {h}x{w}")


def test_parity_lab(goldens, pretrained_goldens):
    lab = color.rgb2lab(pretrained_goldens["images256"]).astype(np.float32)
    x, y = _split(lab, pretrained_goldens["pairs256"])
    assert_parity(ms_ssim(x, y, data_range=100.0), goldens["lab256"], "MS-SSIM Lab 256")


def test_small_images_raise_by_default(pretrained_goldens):
    x, y = _split(pretrained_goldens["images64"], pretrained_goldens["pairs64"][:2])
    with pytest.raises(InputError, match=r"at least 161 pixels; got 64x64.*small_images='shrink'"):
        ms_ssim(x, y, data_range=255.0)
    assert msssim_min_size() == 161 and msssim_min_size(small_images="shrink") == 33
    big = jnp.zeros((1, 161, 170, 3))
    assert float(ms_ssim(big, big, data_range=255.0)[0]) == pytest.approx(1.0)
    with pytest.raises(InputError, match="160x170"):
        ms_ssim(big[:, :160], big[:, :160], data_range=255.0)


def test_shrink_rule_matches_reference_parts_on_bapps_sizes(goldens, pretrained_goldens):
    x, y = _split(pretrained_goldens["images64"], pretrained_goldens["pairs64"])
    assert_parity(ms_ssim(x, y, data_range=255.0, small_images="shrink"), goldens["shrink64"],
                  "MS-SSIM shrink 64x64")
    a = jnp.asarray(pretrained_goldens["shift64_a"], jnp.float32)
    b = jnp.asarray(pretrained_goldens["shift64_b"], jnp.float32)
    assert_parity(ms_ssim(a, b, data_range=255.0, small_images="shrink"),
                  goldens["shrinkshift64"], "MS-SSIM shrink 64x61")


def test_shrink_equals_standard_where_the_window_fits(pretrained_goldens):
    x, y = _split(pretrained_goldens["images256"], pretrained_goldens["pairs256"][:3])
    np.testing.assert_array_equal(ms_ssim(x, y, data_range=255.0),
                                  ms_ssim(x, y, data_range=255.0, small_images="shrink"))


def test_shrink_minimum_and_degenerate_cases():
    with pytest.raises(InputError, match="at least 33"):
        ms_ssim(jnp.zeros((1, 32, 64, 3)), jnp.zeros((1, 32, 64, 3)), data_range=255.0,
                small_images="shrink")
    z = jnp.full((2, 33, 40, 3), 7.0)
    assert np.allclose(ms_ssim(z, z, data_range=255.0, small_images="shrink"), 1.0)


def test_ordering_follows_distortion_strength(pretrained_goldens):
    rng = np.random.default_rng(0)
    ref = pretrained_goldens["images256"][[0]].astype(np.float32)
    noisy = [np.clip(ref + rng.normal(0, s, ref.shape), 0, 255) for s in (2.0, 10.0, 40.0)]
    vals = [float(ms_ssim(jnp.asarray(ref), jnp.asarray(n), data_range=255.0)[0])
            for n in noisy]
    assert vals[0] > vals[1] > vals[2] and 0.0 <= vals[2] < 1.0


def test_gaussian_window():
    g = gaussian_window(11, 1.5)
    assert g.shape == (11,) and g.dtype == np.float32
    assert g.sum() == pytest.approx(1.0, abs=1e-6) and np.argmax(g) == 5
    np.testing.assert_allclose(g, g[::-1])


def test_bad_arguments_are_rejected():
    a = jnp.zeros((1, 200, 200, 3))
    with pytest.raises(InputError, match="one shape"):
        ms_ssim(a, a[:, :199], data_range=255.0)
    with pytest.raises(InputError, match="one shape"):
        ms_ssim(a[0], a[0], data_range=255.0)
    with pytest.raises(InputError, match="odd"):
        ms_ssim(a, a, data_range=255.0, win_size=10)
    with pytest.raises(InputError, match="small_images"):
        ms_ssim(a, a, data_range=255.0, small_images="crop")
    with pytest.raises(ValueError, match="small_images"):
        ev.msssim_distance("RGB", small_images="maybe")
    with pytest.raises(ValueError, match="colorspace"):
        ev.msssim_distance("YUV")


# ------------------------------------------------------------------------- gradients, transforms

# One compiled program for every case below (same shapes).
_GRAD_SHRINK = jax.jit(jax.grad(lambda u, v: ms_ssim(u, v, data_range=255.0,
                                                     small_images="shrink").sum()))


@pytest.mark.parametrize("case", ["photo", "identical", "constant", "one_constant"])
def test_gradients_are_finite(pretrained_goldens, case):
    x, y = _split(pretrained_goldens["images64"], pretrained_goldens["pairs64"][2:4])
    grey = jnp.full_like(x, 128.0)
    a, b = {"photo": (x, y), "identical": (x, x), "constant": (grey, grey * 0.5),
            "one_constant": (grey, y)}[case]
    g = np.asarray(_GRAD_SHRINK(a, b))
    assert np.all(np.isfinite(g))
    if case == "identical":
        assert np.abs(g).max() < 1e-6   # MS-SSIM peaks (at 1) where x == y
    if case == "photo":
        assert np.abs(g).max() > 0


def test_gradient_matches_central_difference(pretrained_goldens):
    x, y = _split(pretrained_goldens["images64"], pretrained_goldens["pairs64"][2:3])
    f = jax.jit(lambda u: ms_ssim(u, y, data_range=255.0, small_images="shrink")[0])
    g = np.asarray(jax.grad(f)(x))
    v = jnp.asarray(g / np.linalg.norm(g))
    eps = 3.0   # in 8-bit units: float32 rounding of a value near 1 needs a large step
    fd = (float(f(x + eps * v)) - float(f(x - eps * v))) / (2 * eps)
    assert fd == pytest.approx(float(np.linalg.norm(g)), rel=2e-2)
    idx = np.unravel_index(np.argmax(np.abs(g)), g.shape)
    e = np.zeros(x.shape, np.float32)
    e[idx] = 1.0
    _, tangent = jax.jvp(f, (x,), (jnp.asarray(e),))
    assert float(tangent) == pytest.approx(float(g[idx]), rel=1e-4)


def test_jit_eager_vmap_agree(pretrained_goldens):
    x, y = _split(pretrained_goldens["images64"], pretrained_goldens["pairs64"][:4])
    kw = dict(data_range=255.0, small_images="shrink")
    eager = np.asarray(ms_ssim(x, y, **kw))
    jitted = np.asarray(jax.jit(lambda a, b: ms_ssim(a, b, **kw))(x, y))
    vmapped = np.asarray(jax.vmap(lambda a, b: ms_ssim(a[None], b[None], **kw)[0])(x, y))
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(vmapped, eager, rtol=1e-6, atol=1e-7)


def test_signature_options_are_keyword_only():
    params = inspect.signature(ms_ssim).parameters.values()
    assert [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD] == ["x", "y"]
    params = inspect.signature(ev.msssim_distance).parameters.values()
    assert [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD] == ["colorspace"]


# ----------------------------------------------------------------------------- evaluation


def test_msssim_distances(goldens, pretrained_goldens):
    x, y = _split(pretrained_goldens["images64"], pretrained_goldens["pairs64"])
    unit = lambda a: a / 127.5 - 1.0
    dist = ev.get_distance("msssim")
    assert dist is ev.msssim_distance("RGB") and dist.key == "msssim/RGB/shrink"
    assert dist.min_size == 33
    np.testing.assert_allclose(dist(unit(x), unit(y)), (1.0 - goldens["shrink64"]) / 2.0,
                               atol=1e-5)
    lab = ev.get_distance("ms-ssim", colorspace="Lab")
    assert lab.key == "msssim/Lab/shrink"
    want = ms_ssim(jnp.asarray(color.rgb2lab(pretrained_goldens["images64"][pretrained_goldens["pairs64"][:3, 0]]), jnp.float32),
                   jnp.asarray(color.rgb2lab(pretrained_goldens["images64"][pretrained_goldens["pairs64"][:3, 1]]), jnp.float32),
                   data_range=100.0, small_images="shrink")
    # Our rgb_to_lab is within 2e-3 of skimage's (test_eval_baselines), hence the tolerance.
    np.testing.assert_allclose(lab(unit(x[:3]), unit(y[:3])), (1.0 - want) / 2.0, atol=2e-4)
    strict = ev.msssim_distance(small_images="error")
    assert strict.min_size == 161
    # The other baselines keep upstream's Lab default.
    assert ev.get_distance("l2").key == "l2/Lab" and ev.get_distance("ssim").key == "ssim/Lab"


def test_msssim_scores_a_bapps_fixture(tmp_path):
    from bapps_fixture import make_2afc, make_jnd
    from PIL import Image
    from shiftlpips_jax import data

    dist = ev.get_distance("msssim")
    root = make_2afc(tmp_path / "2afc", {"val/traditional": 5}, size=64, seed=4, ties=1)
    res = ev.evaluate_2afc(data.read_2afc(root, ["val/traditional"]), dist, shifts=(1, 2),
                           batch_size=2, progress=False)
    (per,) = res.sets
    base = os.path.join(root, "val/traditional")
    stems = sorted(f[:-4] for f in os.listdir(os.path.join(base, "ref")))
    load = lambda sub: jnp.asarray(np.stack([np.asarray(Image.open(
        os.path.join(base, sub, s + ".png")).convert("RGB")) for s in stems]), jnp.float32)
    ref, p0, p1 = load("ref"), load("p0"), load("p1")
    kw = dict(data_range=255.0, small_images="shrink")
    np.testing.assert_allclose(per.d0, (1 - ms_ssim(ref, p0, **kw)) / 2, atol=1e-6)
    np.testing.assert_allclose(per.d1, (1 - ms_ssim(ref, p1, **kw)) / 2, atol=1e-6)
    np.testing.assert_allclose(per.d1_shift[2], (1 - ms_ssim(ref[:, :, :61], p1[:, :, 2:63],
                                                             **kw)) / 2, atol=1e-6)
    assert per.d0[-1] == per.d1[-1]
    out = res.to_json()
    assert set(out["r_rf"]) == {"1", "2"} and out["model"] == "msssim/RGB/shrink"
    jroot = make_jnd(tmp_path / "jnd", {"val/traditional": 6}, size=64, seed=5)
    jres = ev.evaluate_jnd(data.read_jnd(jroot, ["val/traditional"]), dist, batch_size=3,
                           progress=False)
    assert 0.0 <= jres.to_json()["jnd_map"]["mean"] <= 1.0
