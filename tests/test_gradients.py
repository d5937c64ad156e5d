"""One input gradient per pretrained model: finite, and near a central difference.

The quick tier's gradient check (``make test-fast``): ``d/dx sum(d(x, y))`` through the pure
``metric.module.apply`` under ``jax.jit`` on a 32x32 crop of the bundled example, through the
layers' custom differentiation rules. Along a fixed random unit direction ``v``, ``<grad, v>``
must match the central difference ``(d(x + h v) - d(x - h v)) / 2h`` to within what ReLU and
max-pool kinks allow in float32 (25% at h = 1e-3; a wrong rule is off by far more). The full
tier checks every rule exactly against XLA's own gradients.
"""

import jax
import jax.numpy as jnp
import pytest

from shiftlpips_jax._src.pixels import to_unit_range

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("key", [("alex", "shift_tolerant"), ("vgg", "shift_tolerant"),
                                 ("alex", "lpips"), ("vgg", "lpips")], ids="/".join)
def test_input_gradient_is_finite_and_matches_finite_differences(metrics, example, key):
    metric = metrics[key]
    ref, p0, _ = example
    x = jnp.asarray(to_unit_range(p0[None, :32, :32]))     # 32x32: every model's minimum fits
    y = jnp.asarray(to_unit_range(ref[None, :32, :32]))
    v = jax.random.normal(jax.random.key(0), x.shape)
    v = v / jnp.linalg.norm(v)
    h = 1e-3

    def loss(b):
        with jax.default_matmul_precision("highest"):
            return metric.module.apply(metric.params, b, y).sum()

    @jax.jit
    def derivatives(a):
        # One program: the gradient and the two distances of the central difference.
        g = jax.grad(loss)(a)
        with jax.default_matmul_precision("highest"):
            d = metric.module.apply(metric.params, jnp.concatenate([a + h * v, a - h * v]),
                                    jnp.concatenate([y, y]))
        return g, d

    g, d = derivatives(x)
    assert g.shape == x.shape and bool(jnp.isfinite(g).all()) and float(jnp.abs(g).max()) > 0
    reverse = float(jnp.vdot(g, v))
    fd = (float(d[0]) - float(d[1])) / (2 * h)
    assert abs(fd - reverse) <= 0.25 * abs(reverse) + 1e-4, (fd, reverse)
