"""DISTS against the official DISTS_pytorch code (goldens/dists.npz), its gradients, transforms,
weight loading and the evaluation distance."""

from __future__ import annotations

import inspect
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_parity
from shiftlpips_jax import evaluation as ev
from shiftlpips_jax._src import dists as dm
from shiftlpips_jax._src.dists import DISTS, l2_pool, load_dists, load_dists_variables
from shiftlpips_jax._src.errors import ShiftLPIPSError, WeightsError


@pytest.fixture(scope="module")
def dists():
    return load_dists()


def _unit(u8):
    return jnp.asarray(np.asarray(u8, np.float64) / 127.5 - 1.0, jnp.float32)


def _pairs(images, pairs):
    return _unit(images[pairs[:, 0]]), _unit(images[pairs[:, 1]])


@pytest.fixture(scope="module")
def grad_both(dists):
    """jit(grad) of the summed distance with respect to both images (compiled once)."""
    variables, model = dists
    fn = jax.jit(jax.grad(lambda v, a, b: model.apply(v, a, b).sum(), argnums=(1, 2)))
    return lambda a, b: fn(variables, a, b)


@pytest.fixture(scope="module")
def jitted(dists):
    # Variables are arguments, not closed-over constants (XLA would constant-fold the trunk).
    variables, model = dists
    fn = jax.jit(lambda v, a, b: model.apply(v, a, b))
    return lambda a, b: fn(variables, a, b)


# ------------------------------------------------------------------------------------ parity

@pytest.mark.parametrize("size", ["64", "256"])
def test_parity_square_photos(dists_goldens, pretrained_goldens, jitted, size):
    x, y = _pairs(pretrained_goldens[f"images{size}"], pretrained_goldens[f"pairs{size}"])
    assert_parity(jitted(x, y), dists_goldens[f"d{size}"], f"DISTS {size}x{size}")


def test_parity_example_triplet(dists_goldens, example, jitted):
    ref, p0, p1 = (_unit(a[None]) for a in example)
    d = np.concatenate([np.asarray(jitted(ref, p0)), np.asarray(jitted(ref, p1))])
    assert_parity(d, dists_goldens["d64"][:2], "DISTS example triplet")
    assert d[1] < d[0]   # p1 is the closer one, as for LPIPS


@pytest.mark.parametrize("size", ["96x128", "75x101"])
def test_parity_non_square(dists_goldens, jitted, size):
    x, y = _pairs(dists_goldens[f"images{size}"], dists_goldens[f"pairs{size}"])
    assert x.shape[1:3] == tuple(int(s) for s in size.split("x"))
    assert_parity(jitted(x, y), dists_goldens[f"d{size}"], f"DISTS {size}")


def test_parity_odd_width_shift_pairs(dists_goldens, pretrained_goldens, jitted):
    assert_parity(jitted(_unit(pretrained_goldens["shift64_a"]), _unit(pretrained_goldens["shift64_b"])),
                  dists_goldens["dshift64"], "DISTS 64x61")


def test_per_layer_terms_match_reference(dists_goldens, pretrained_goldens, dists):
    variables, model = dists
    x, y = _pairs(pretrained_goldens["images64"], pretrained_goldens["pairs64"])
    d, terms = model.apply(variables, x, y, per_layer=True)
    np.testing.assert_allclose(np.stack(terms, axis=1), dists_goldens["layers64"], atol=2e-6)
    np.testing.assert_allclose(1.0 - np.sum(np.stack(terms, 1), 1), d, atol=1e-6)


def test_constant_and_identical_images_match_reference(dists_goldens, pretrained_goldens, jitted):
    photo = _unit(pretrained_goldens["images64"][[3]])
    grey = _unit(np.full((1, 64, 64, 3), 128, np.uint8))
    d = np.concatenate([np.asarray(jitted(grey, photo)), np.asarray(jitted(photo, photo))])
    assert_parity(d, dists_goldens["dconst"], "DISTS constant / identical")
    assert d[1] == pytest.approx(0.0, abs=1e-6)


def test_l2_pool_is_the_hanning_filter_with_zero_padding():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 6, 3)).astype(np.float32)
    # Direct evaluation of sqrt(conv(x^2, g) + 1e-12), g = a a^T / sum, a = hanning(5)[1:-1].
    a = np.hanning(5)[1:-1]
    g = np.outer(a, a) / np.outer(a, a).sum()
    xp = np.pad(x.astype(np.float64) ** 2, ((0, 0), (1, 1), (1, 1), (0, 0)))
    oh, ow = (9 - 1) // 2 + 1, (6 - 1) // 2 + 1
    want = np.zeros((2, oh, ow, 3))
    for i in range(oh):
        for j in range(ow):
            want[:, i, j] = np.einsum("nhwc,hw->nc", xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3], g)
    np.testing.assert_allclose(l2_pool(jnp.asarray(x)), np.sqrt(want + 1e-12), rtol=1e-6)


# --------------------------------------------------------------------------------- gradients

def test_input_gradient_matches_torch_autograd(dists_goldens, pretrained_goldens, grad_both):
    grad = lambda a, b: grad_both(a, b)[0]
    for row, want01 in zip(dists_goldens["grad64_pairs"], dists_goldens["grad64"]):
        a, b = pretrained_goldens["pairs64"][row]
        g = np.asarray(grad(_unit(pretrained_goldens["images64"][[a]]), _unit(pretrained_goldens["images64"][[b]]))[0])
        want = 0.5 * want01   # d/dx of x in [-1, 1] = 0.5 * d/du of u = (x + 1) / 2
        scale = np.abs(want).max()
        np.testing.assert_allclose(g, want, atol=2e-4 * scale)
        assert np.linalg.norm(g - want) / np.linalg.norm(want) < 1e-3


def test_jvp_matches_central_difference_on_pixels(pretrained_goldens, dists):
    variables, model = dists
    x = _unit(pretrained_goldens["images64"][[3]])
    y = _unit(pretrained_goldens["images64"][[4]])
    apply = jax.jit(lambda v, a, b: model.apply(v, a, b)[0])
    f = lambda a: apply(variables, a, y)
    g = np.asarray(jax.jit(jax.grad(apply, argnums=1))(variables, x, y))
    rng = np.random.default_rng(1)
    # Pixels with a clearly non-zero derivative, so float32 central differences resolve it;
    # small steps, since ReLU kinks sit close to any pixel value.
    eps = 1e-3
    flat = np.argsort(-np.abs(g).ravel())[rng.integers(0, 200, size=3)]
    for k in flat:
        idx = np.unravel_index(k, x.shape)
        v = np.zeros(x.shape, np.float32)
        v[idx] = 1.0
        v = jnp.asarray(v)
        _, tangent = jax.jvp(lambda a: apply(variables, a, y), (x,), (v,))
        assert float(tangent) == pytest.approx(float(g[idx]), rel=1e-4, abs=1e-9)
        fd = (float(f(x + eps * v)) - float(f(x - eps * v))) / (2 * eps)
        assert fd == pytest.approx(float(g[idx]), rel=5e-2)
    # Along the gradient's direction (DISTS curves strongly: the step stays small).
    v = jnp.asarray(g / np.linalg.norm(g))
    fd = (float(f(x + eps * v)) - float(f(x - eps * v))) / (2 * eps)
    assert fd == pytest.approx(float(np.linalg.norm(g)), rel=5e-2)
    # jvp and grad agree on a random direction over all pixels.
    v = jnp.asarray(rng.normal(size=x.shape).astype(np.float32))
    _, tangent = jax.jvp(lambda a: apply(variables, a, y), (x,), (v,))
    assert float(tangent) == pytest.approx(float(np.sum(g * np.asarray(v))), rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("case", ["identical", "both_constant", "one_constant", "black",
                                  "white"])
def test_gradients_are_finite(pretrained_goldens, grad_both, case):
    photo = _unit(pretrained_goldens["images64"][[3]])
    grey = jnp.zeros((1, 64, 64, 3)) + 0.1
    x, y = {"identical": (photo, photo), "both_constant": (grey, grey * 0.5),
            "one_constant": (grey, photo), "black": (-jnp.ones_like(photo), photo),
            "white": (jnp.ones_like(photo), -jnp.ones_like(photo))}[case]
    gx, gy = grad_both(x, y)
    assert np.all(np.isfinite(np.asarray(gx))) and np.all(np.isfinite(np.asarray(gy)))
    if case == "identical":
        # d(x, y) has a minimum at y == x: the gradient vanishes there.
        assert np.abs(np.asarray(gx)).max() < 1e-5


# -------------------------------------------------------------------------------- transforms

def test_jit_eager_vmap_and_cached_features_agree(pretrained_goldens, dists):
    variables, model = dists
    x, y = _pairs(pretrained_goldens["images64"], pretrained_goldens["pairs64"][2:6])
    eager = np.asarray(model.apply(variables, x, y))
    jitted = np.asarray(jax.jit(model.apply)(variables, x, y))
    vmapped = np.asarray(jax.vmap(lambda a, b: model.apply(variables, a[None], b[None])[0])(x, y))
    fy = model.apply(variables, y, method=DISTS.features)
    fx = model.apply(variables, x, method=DISTS.features)
    cached = np.asarray(model.apply(variables, fx, fy, method=DISTS.compare_features))
    for other in (jitted, vmapped, cached):
        np.testing.assert_allclose(other, eager, rtol=1e-5, atol=1e-6)
    # A batch-1 side broadcasts against a batch.
    one = np.asarray(model.apply(variables, x[:1], y))
    each = [float(model.apply(variables, x[:1], y[i:i + 1])[0]) for i in range(len(y))]
    np.testing.assert_allclose(one, each, rtol=1e-5, atol=1e-6)


def test_large_batch_chunks_equal_one_by_one(pretrained_goldens, dists):
    variables, model = dists
    x, y = _pairs(pretrained_goldens["images64"], pretrained_goldens["pairs64"])   # 26 images: several CPU chunks
    apply = jax.jit(model.apply)
    whole = np.asarray(apply(variables, x, y))
    parts = np.concatenate([np.asarray(apply(variables, x[i:i + 1], y[i:i + 1]))
                            for i in (0, 11, 25)])
    np.testing.assert_allclose(whole[[0, 11, 25]], parts, rtol=1e-5, atol=1e-6)


def test_jax_export_round_trip(pretrained_goldens, dists):
    variables, model = dists
    x, y = _pairs(pretrained_goldens["images64"], pretrained_goldens["pairs64"][2:4])
    fn = jax.jit(lambda v, a, b: model.apply(v, a, b))
    exported = jax.export.export(fn)(variables, x, y)
    assert exported.in_avals[-1].shape == (2, 64, 64, 3)
    np.testing.assert_allclose(exported.call(variables, x, y), fn(variables, x, y), rtol=1e-6)


# ----------------------------------------------------------------------------------- weights

def test_variables_tree_and_weight_values(dists):
    variables, _ = dists
    p = variables["params"]
    assert p["alpha"].shape == (1475,) and p["beta"].shape == (1475,)
    assert sorted(p["net"]) == sorted(dm.CONV_NAMES)
    assert float(p["alpha"].sum() + p["beta"].sum()) == pytest.approx(1.0, abs=1e-5)
    assert p["net"]["conv5_3"]["kernel"].shape == (3, 3, 512, 512)


def test_corrupt_weight_copies_are_refused(tmp_path):
    bad = tmp_path / "weights.pt"
    shutil.copy(dm.DISTS_WEIGHTS_ASSET, bad)
    data = bytearray(bad.read_bytes())
    data[-40] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch") as info:
        load_dists_variables(weights=str(bad))
    assert isinstance(info.value, ShiftLPIPSError)
    with pytest.raises(WeightsError, match="not found"):
        load_dists_variables(weights=str(tmp_path / "absent.pt"))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_dists_variables(trunk=str(bad))
    with pytest.raises(WeightsError, match="not found"):
        load_dists_variables(trunk=str(tmp_path / "absent.ckpt"))


def test_public_signatures_are_keyword_only():
    for fn in (load_dists, load_dists_variables):
        params = inspect.signature(fn).parameters.values()
        assert all(p.kind == p.KEYWORD_ONLY for p in params), fn.__name__
        assert fn.__doc__ and "Returns" in (load_dists_variables.__doc__ or "")


# ------------------------------------------------------------------------- evaluation distance

def _read_set(root, name):
    from PIL import Image
    base = os.path.join(root, name)
    stems = sorted(f[:-4] for f in os.listdir(os.path.join(base, "ref")))
    load = lambda sub: np.stack([np.asarray(Image.open(os.path.join(base, sub, s + ".png"))
                                            .convert("RGB")) for s in stems])
    return load("ref"), load("p0"), load("p1")


def test_dists_distance_scores_a_bapps_fixture(tmp_path, dists_goldens, pretrained_goldens):
    from bapps_fixture import make_2afc
    from shiftlpips_jax import data

    dist = ev.get_distance("dists")
    assert dist is ev.dists_distance() and dist.key == "dists"
    x, y = _pairs(pretrained_goldens["images64"], pretrained_goldens["pairs64"][:4])
    direct_fn = jax.jit(lambda p, a, b: dist.compare(p, dist.features(p, a), dist.features(p, b)))
    direct = lambda a, b: direct_fn(dist.params, a, b)
    assert_parity(direct(x, y), dists_goldens["d64"][:4], "DISTS Distance")

    root = make_2afc(tmp_path / "2afc", {"val/traditional": 6}, size=64, seed=3, ties=1)
    res = ev.evaluate_2afc(data.read_2afc(root, ["val/traditional"]), dist, shifts=(1,),
                           batch_size=4, progress=False)
    (per,) = res.sets
    ref, p0, p1 = (_unit(a) for a in _read_set(root, "val/traditional"))
    np.testing.assert_allclose(per.d0, direct(ref, p0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(per.d1, direct(ref, p1), rtol=1e-5, atol=1e-6)
    # Crop-shift by one pixel (offset 3): ref[:, :, :61] against p[:, :, 1:62].
    np.testing.assert_allclose(per.d0_shift[1], direct(ref[:, :, :61], p0[:, :, 1:62]),
                               rtol=1e-5, atol=1e-6)
    assert per.d0[-1] == pytest.approx(per.d1[-1])   # the tie triplet (p1 == p0)
    gts = np.asarray(per.judge)
    want = np.mean((per.d0 < per.d1) * (1 - gts) + (per.d1 < per.d0) * gts
                   + (per.d0 == per.d1) * 0.5)
    assert res.to_json()["2afc"]["mean"] == pytest.approx(100.0 * want)
