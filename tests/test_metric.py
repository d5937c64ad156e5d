"""The Metric contract: reference values, input forms, errors, jit/grad/vmap, gradients."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import shiftlpips_jax as sl
from shiftlpips_jax._src.lpips import EPS
from conftest import assert_parity

# Reference distances measured with the PyTorch implementations (shared/reference/README.md).
REFERENCE = {
    ("alex", "shift_tolerant"): (0.7777555585, 0.1320216507),
    ("vgg", "shift_tolerant"): (0.6516970396, 0.1361120045),
    ("alex", "lpips"): (0.7218806744, 0.1375655383),
    ("vgg", "lpips"): (0.5686128139, 0.4216642678),
}


def _float(img):
    return img.astype(np.float32) / 127.5 - 1.0


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_example_triplet_matches_reference(metrics, example, key):
    ref, p0, p1 = example
    d = metrics[key](np.stack([ref, ref]), np.stack([p0, p1]))
    assert d.shape == (2,) and d.dtype == jnp.float32
    assert_parity(d, REFERENCE[key], str(key))


def test_input_forms_agree(alex, example):
    ref, p0, _ = example
    d_uint8 = alex(ref[None], p0[None])
    d_float = alex(_float(ref)[None], _float(p0)[None])
    d_norm = alex(ref[None] / 255.0, p0[None] / 255.0, normalize=True)
    d_single = alex(ref, p0)
    assert d_single.shape == ()
    np.testing.assert_allclose(d_uint8, d_float, rtol=1e-6)
    np.testing.assert_allclose(d_norm, d_float, rtol=1e-5)
    np.testing.assert_allclose(d_single, d_float[0], rtol=1e-6)
    np.testing.assert_allclose(alex(jnp.asarray(_float(ref))[None], _float(p0)[None]), d_float,
                               rtol=1e-6)


def test_spatial_and_per_layer(alex, example):
    ref, p0, p1 = example
    x, y = np.stack([ref, ref]), np.stack([p0, p1])
    m = alex(x, y, spatial=True)
    assert m.shape == (2, 64, 64, 1)
    assert np.all(np.asarray(m) >= 0)
    d, layers = alex(x, y, per_layer=True)
    assert len(layers) == 5 and all(lay.shape == (2,) for lay in layers)
    np.testing.assert_allclose(sum(np.asarray(lay) for lay in layers), d, rtol=1e-6)
    ms, maps = alex(x, y, spatial=True, per_layer=True)
    assert len(maps) == 5 and all(mp.shape == (2, 64, 64, 1) for mp in maps)
    np.testing.assert_allclose(ms, m, rtol=1e-6)
    # The upsampled map of the last tap has the mean of its (constant-preserving) source.
    odd = alex(x[:, :, :61], y[:, :, :61], spatial=True)
    assert odd.shape == (2, 64, 61, 1)


def test_pure_module_apply_matches_and_skips_checks(alex, example):
    ref, p0, _ = example
    x, y = _float(ref)[None], _float(p0)[None]
    d = alex.module.apply(alex.variables, x, y)
    np.testing.assert_allclose(d, alex(x, y), rtol=1e-6)
    # Inside a user's jit there are no value checks: out-of-range values compute.
    out = jax.jit(lambda a, b: alex.module.apply(alex.variables, a, b))(x * 3.0, y)
    assert out.shape == (1,) and np.isfinite(out).all()


def test_feature_cache_equals_direct_distance(alex, example):
    ref, p0, p1 = example
    x, y = np.stack([p0, p1]), ref[None]
    fx, fy = alex.features(x), alex.features(y)
    d = alex.distance_from_features(fx, fy)
    np.testing.assert_allclose(d, alex(x, np.stack([ref, ref])), rtol=1e-5)
    d2, layers = alex.distance_from_features(fx, fy, per_layer=True)
    np.testing.assert_allclose(d2, d, rtol=1e-6)
    with pytest.raises(ValueError, match="expected 5 feature maps"):
        alex.distance_from_features(fx[:3], fy)
    with pytest.raises(ValueError, match="do not match"):
        alex.distance_from_features(fx, alex.features(np.zeros((1, 40, 40, 3), np.float32)))


@pytest.mark.parametrize("shape", [(21, 21), (21, 40), (33, 27), (64, 61), (97, 130)])
def test_any_size_at_or_above_minimum(alex, shape):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, *shape, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.1, x.shape), -1, 1).astype(np.float32)
    d = alex(x, y)
    assert d.shape == (2,) and np.isfinite(d).all() and (np.asarray(d) > 0).all()


def test_minimum_size_is_tight():
    for (net, variant) in sl.BACKBONE_PRESETS:
        bb = sl.make_backbone(net, variant)
        low = sl.min_input_size(bb)
        assert min(bb.tap_sizes(low)) >= 1
        if low > 1:
            assert min(bb.tap_sizes(low - 1)) < 1, (net, variant)
        for s in range(low, low + 40):
            assert min(bb.tap_sizes(s)) >= 1, (net, variant, s)


def test_nan_in_one_pair_leaves_others_untouched(alex, example):
    ref, p0, p1 = example
    x = np.stack([_float(ref)] * 3)
    y = np.stack([_float(p0), _float(p1), _float(p0)])
    clean = np.asarray(alex(x, y))
    y_nan = y.copy()
    y_nan[1, 10, 10, 0] = np.nan
    d = np.asarray(alex(x, y_nan))
    assert np.isnan(d[1])
    np.testing.assert_array_equal(d[[0, 2]], clean[[0, 2]])


def test_traces_once_per_input_shape(alex, monkeypatch):
    # The jitted body calls validation.range_stats once per trace: count those calls.
    from shiftlpips_jax._src import validation
    traces = []
    real = validation.range_stats
    monkeypatch.setattr(validation, "range_stats", lambda *a: traces.append(1) or real(*a))
    m = sl.Metric(alex.module, alex.variables, net=alex.net, variant=alex.variant)
    x = np.zeros((2, 32, 32, 3), np.float32)
    for _ in range(3):
        m(x, x)
    assert len(traces) == 1
    m(np.ones((2, 32, 32, 3), np.float32), x)  # same shape, other values: no retrace
    assert len(traces) == 1
    m(np.zeros((3, 32, 32, 3), np.float32), np.zeros((3, 32, 32, 3), np.float32))
    assert len(traces) == 2


def test_variables_and_deprecated_params_alias(alex):
    assert set(alex.variables) == {"params"}
    assert set(alex.variables["params"]) >= {"net", "lin0"}
    with pytest.warns(DeprecationWarning, match="Metric.params is deprecated; use "
                                                "Metric.variables"):
        old = alex.params
    assert old is alex.variables
    x = np.zeros((1, 32, 32, 3), np.float32)
    np.testing.assert_array_equal(alex.module.apply(alex.variables, x, x), [0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the metric itself never uses params
        alex(x, x)
        alex.features(x)
        sl.Metric(alex.module, alex.variables, net=alex.net, variant=alex.variant)(x, x)


def test_jit_grad_vmap_agree(alex, example):
    ref, p0, p1 = (img[:32, :32] for img in example)  # small crops keep compile time low
    x = jnp.asarray(np.stack([_float(p0), _float(p1)]))
    y = jnp.asarray(np.stack([_float(ref)] * 2))

    def dist(a, b):
        return alex.module.apply(alex.variables, a, b)

    def loss(a):
        return jnp.sum(dist(a, y))

    # jit agrees with op-by-op execution.
    np.testing.assert_allclose(jax.jit(dist)(x, y), dist(x, y), rtol=1e-5, atol=1e-7)
    # The reverse-mode gradient is the derivative: it matches forward mode and a central
    # difference along a random direction.
    g = jax.jit(jax.grad(loss))(x)
    assert np.isfinite(g).all() and float(jnp.abs(g).sum()) > 0
    v = jnp.asarray(np.random.default_rng(0).normal(size=x.shape).astype(np.float32))
    directional = float(jnp.sum(g * v))
    _, tangent = jax.jit(lambda a, t: jax.jvp(loss, (a,), (t,)))(x, v)
    np.testing.assert_allclose(float(tangent), directional, rtol=1e-4)
    # ReLU and max-pool kinks and float32 rounding make the difference quotient noisy (~2% at
    # this step), so this catches a wrong sign or scale, not rounding.
    eps = 1e-4
    central = (float(jax.jit(loss)(x + eps * v)) - float(jax.jit(loss)(x - eps * v))) / (2 * eps)
    np.testing.assert_allclose(central, directional, rtol=5e-2)
    # vmap over single pairs equals the batched call, values and gradients.
    per_pair = jax.jit(jax.vmap(lambda a, b: dist(a[None], b[None])[0]))(x, y)
    np.testing.assert_allclose(per_pair, dist(x, y), rtol=1e-5)
    g_vmap = jax.jit(jax.vmap(jax.grad(lambda a, b: dist(a[None], b[None])[0])))(x, y)
    np.testing.assert_allclose(g_vmap, g, rtol=1e-4, atol=1e-7)


def test_wrapper_composes_with_jit_grad_vmap(alex, example):
    """The validating call under the user's transformations gives the pure function's results;
    shape and dtype checks still raise (with the concrete-call messages), the value-range check
    is skipped for tracers."""
    ref, p0, p1 = (img[:32, :32] for img in example)
    x = jnp.asarray(np.stack([_float(p0), _float(p1)]))
    y = jnp.asarray(np.stack([_float(ref)] * 2))

    def pure(a, b):
        return alex.module.apply(alex.params, a, b)

    want = jax.jit(pure)(x, y)
    np.testing.assert_allclose(jax.jit(alex)(x, y), want, rtol=1e-6)
    g = jax.grad(lambda a, t: alex(a, t).mean())(x, y)
    g_want = jax.jit(jax.grad(lambda a, t: pure(a, t).mean()))(x, y)
    np.testing.assert_allclose(g, g_want, rtol=1e-5, atol=1e-8)
    # vmap over single images (H, W, 3): the wrapper's single-image form, batched.
    np.testing.assert_allclose(jax.vmap(alex)(x, y), want, rtol=1e-5)
    with pytest.raises(sl.errors.InputError, match=r"image shapes differ"):
        jax.jit(alex)(x, y[:, :30])
    with pytest.raises(sl.errors.InputTypeError, match=r"dtype int32; expected float"):
        jax.jit(alex)(x.astype(jnp.int32), y.astype(jnp.int32))
    # Out of range: concrete calls raise, traced ones cannot know the values.
    with pytest.raises(sl.errors.InputError, match=r"expected floats in \[-1, 1\]"):
        alex(x + 3, y)
    assert np.isfinite(jax.jit(alex)(x + 3, y)).all()


def test_float64_inputs_compute_in_float32_with_float64_gradient(alex, example):
    """README: with jax_enable_x64, float64 images are computed in float32 (float32 distances,
    equal to the float32 call) and the gradient with respect to a float64 input is float64."""
    ref, p0, p1 = (img[:32, :32] for img in example)
    x32 = np.stack([_float(p0), _float(p1)]).astype(np.float32)
    y32 = np.stack([_float(ref)] * 2).astype(np.float32)
    want = np.asarray(alex(x32, y32))
    g_want = np.asarray(jax.grad(lambda a: alex(a, y32).sum())(jnp.asarray(x32)))
    with jax.enable_x64(True):
        x64, y64 = jnp.asarray(x32, jnp.float64), jnp.asarray(y32, jnp.float64)
        assert x64.dtype == jnp.float64
        d = alex(x64, y64)
        g = jax.grad(lambda a: alex(a, y64).sum())(x64)
    assert d.dtype == jnp.float32 and g.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(d), want, rtol=1e-6)
    assert np.isfinite(np.asarray(g)).all()
    np.testing.assert_allclose(np.asarray(g), g_want, rtol=1e-5,
                               atol=1e-6 * float(np.abs(g_want).max()))


def test_gradient_finite_at_identical_inputs(metrics, example):
    ref = jnp.asarray(_float(example[0][:40, :40]))[None]
    for key, m in metrics.items():
        g = jax.jit(jax.grad(lambda a: jnp.sum(m.module.apply(m.variables, a, ref))))(ref)
        assert np.isfinite(g).all(), key
        # DISTS' S1/S2 quotients round to ~3e-6 at d = 0 in float32 (test_dists bounds it).
        np.testing.assert_allclose(g, 0.0, atol=1e-5 if key[0] == "dists" else 1e-6)


def _upstream_normalize(f):
    return f / (jnp.sqrt(jnp.sum(f ** 2, axis=-1, keepdims=True)) + EPS)


def test_normalize_features_value_and_finite_gradient_at_zero():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(2, 5, 5, 8)).astype(np.float32)
    f[0, 1, 2] = 0.0
    f[1, 3] = 0.0
    f[1, 4, 4] = 1e-3
    ours, theirs = sl.normalize_features(f), _upstream_normalize(jnp.asarray(f))
    assert float(jnp.max(jnp.abs(ours - theirs))) <= 1e-7
    w = jnp.asarray(rng.normal(size=f.shape).astype(np.float32))
    g_ours = jax.grad(lambda a: jnp.sum(w * sl.normalize_features(a)))(jnp.asarray(f))
    g_theirs = jax.grad(lambda a: jnp.sum(w * _upstream_normalize(a)))(jnp.asarray(f))
    assert np.isnan(g_theirs).any()  # the upstream formula's failure this guards against
    assert np.isfinite(g_ours).all()
    live = np.asarray(jnp.sum(jnp.asarray(f) ** 2, -1) > 0)
    np.testing.assert_allclose(np.asarray(g_ours)[live], np.asarray(g_theirs)[live], rtol=1e-5)


def test_gradient_finite_with_dead_feature_locations(alex, example):
    # Push conv5 biases far negative: relu5 is zero everywhere (zero-norm feature vectors).
    params = jax.tree.map(lambda a: a, alex.variables)
    net = dict(params["params"]["net"])
    net["conv5"] = {**net["conv5"], "bias": net["conv5"]["bias"] - 1e4}
    params = {"params": {**params["params"], "net": net}}
    x = jnp.asarray(_float(example[1]))[None]
    y = jnp.asarray(_float(example[0]))[None]
    taps = alex.module.apply(params, x, method=lambda mod, a: mod.net(a))
    assert float(jnp.abs(taps["relu5"]).max()) == 0.0
    g = jax.jit(jax.grad(lambda a: jnp.sum(alex.module.apply(params, a, y))))(x)
    assert np.isfinite(g).all() and float(jnp.abs(g).sum()) > 0


def test_bfloat16_option_is_close():
    m32, m16 = sl.load("alex"), sl.load("alex", dtype=jnp.bfloat16)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (4, 64, 64, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.2, x.shape), -1, 1).astype(np.float32)
    d32, d16 = np.asarray(m32(x, y)), np.asarray(m16(x, y))
    assert d16.dtype == np.float32
    np.testing.assert_allclose(d16, d32, rtol=0.05)


# ---- bad input ---------------------------------------------------------------------------------

def _x(n=1, h=64, w=64, c=3, dtype=np.float32):
    return np.zeros((n, h, w, c), dtype)


@pytest.mark.parametrize("x, y, exc, pattern", [
    (_x(), _x(h=60), ValueError, r"image shapes differ.*\(1, 64, 64, 3\).*\(1, 60, 64, 3\)"),
    (_x(2), _x(3), ValueError, r"batch sizes differ: x has 2 images, y has 3"),
    (np.zeros((1, 3, 64, 64), np.float32), np.zeros((1, 3, 64, 64), np.float32), ValueError,
     r"64 channels.*expected 3 RGB channels last.*channels-first \(NCHW\)"),
    (_x(c=4), _x(c=4), ValueError, r"4 channels .*expected 3 RGB channels last"),
    (np.zeros((64, 64), np.float32), np.zeros((64, 64), np.float32), ValueError,
     r"rank 2.*\(N, H, W, 3\)"),
    (np.zeros((1, 1, 64, 64, 3), np.float32), np.zeros((1, 1, 64, 64, 3), np.float32), ValueError,
     r"rank 5"),
    (_x(h=20, w=20), _x(h=20, w=20), ValueError, r"20x20; alex/shift_tolerant needs at least 21x21"),
    (_x(h=64, w=16), _x(h=64, w=16), ValueError, r"at least 21x21"),
    (_x() + 1.5, _x(), ValueError, r"values in \[0, 1.5\]; expected floats in \[-1, 1\]"),
    (_x(0), _x(0), ValueError, r"empty batch"),
    (_x(dtype=np.int32), _x(dtype=np.int32), TypeError, r"dtype int32; expected float"),
    (_x(dtype=bool), _x(dtype=bool), TypeError, r"dtype bool"),
    (np.zeros((64, 64, 3), np.float32), _x(), ValueError, r"both be batches"),
    ("not an image", _x(), TypeError, r"x has dtype <U12; expected float images"),
])
def test_bad_input_is_rejected_with_clear_message(alex, x, y, exc, pattern):
    # The builtin class (old `except ValueError/TypeError` code) and the library's own.
    with pytest.raises(exc, match=pattern) as info:
        alex(x, y)
    assert isinstance(info.value, sl.ShiftLPIPSError)
    assert type(info.value) is (sl.errors.InputTypeError if exc is TypeError else
                                sl.errors.InputError)
    with pytest.raises(sl.ShiftLPIPSError, match=pattern):
        alex(x, y)


def test_normalize_range_and_uint8_rules(alex):
    with pytest.raises(ValueError, match=r"\[-1, 0\]; expected floats in \[0, 1\].*normalize=False"):
        alex(_x() - 1, _x(), normalize=True)
    with pytest.raises(ValueError, match="uint8, which is always read as \\[0, 255\\]"):
        alex(_x(dtype=np.uint8), _x(dtype=np.uint8), normalize=True)
    # Slightly outside the range (resampling overshoot within the tolerance) is accepted.
    assert np.isfinite(alex(_x() + 1.0005, _x())).all()
    with pytest.raises(ValueError, match="expected floats"):
        alex.features(_x() + 2)


def test_unknown_net_and_variant_list_known_ones():
    with pytest.raises(ValueError, match=r"unknown net 'resnet50'.*\['alex', 'dists', 'vgg'\]"):
        sl.load("resnet50")
    with pytest.raises(ValueError, match=r"unknown variant 'antialiased' for net 'alex'.*"
                                         r"\['lpips', 'shift_tolerant'\]"):
        sl.load("alex", variant="antialiased")
    with pytest.raises(ValueError, match=r"unknown variant 'nope' for net 'squeeze'.*custom"):
        sl.make_backbone("squeeze", "nope")
    with pytest.raises(ValueError, match=r"unknown knob\(s\) \['stride'\]"):
        sl.make_backbone("alex", "vanilla", stride=2)
    with pytest.raises(ValueError, match="blur_location only applies"):
        sl.make_backbone("alex", "vanilla", blur_location="blur_before_act")
    assert sl.load("alexnet").net == "alex"
