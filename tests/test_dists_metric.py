"""``sl.load("dists")``: the Metric contract of the LPIPS models, under jit, grad, vmap and
``jax.shard_map`` (4 fake CPU devices, default checks), against the official dists_goldens."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import shiftlpips_jax as sl
from conftest import GOLDENS, REPO, assert_parity
from shiftlpips_jax._src.errors import InputError
from shiftlpips_jax._src.evaluation.msssim import MSSSIM


@pytest.fixture(scope="module")
def dists():
    return sl.load("dists")


def _u8_pairs(pretrained_goldens, rows):
    pairs = pretrained_goldens["pairs64"][rows]
    return pretrained_goldens["images64"][pairs[:, 0]], pretrained_goldens["images64"][pairs[:, 1]]


def test_load_lists_and_names_dists(dists):
    assert ("dists", "official") in sl.available_models()
    assert (dists.net, dists.variant, dists.name) == ("dists", "official", "dists/official")
    assert dists.min_size == 1 and not dists.has_spatial_map
    assert sl.load("dists", "official").name == "dists/official"
    with pytest.raises(InputError, match=r"unknown variant 'lpips' for net 'dists'.*official"):
        sl.load("dists", "lpips")


def test_official_values_in_every_input_form(dists, dists_goldens, pretrained_goldens):
    a, b = _u8_pairs(pretrained_goldens, slice(0, 6))
    want = dists_goldens["d64"][:6]
    assert_parity(dists(a, b), want, "uint8")
    assert_parity(dists(a / 127.5 - 1.0, b / 127.5 - 1.0), want, "[-1, 1]")
    assert_parity(dists(a / 255.0, b / 255.0, normalize=True), want, "[0, 1]")
    assert_parity(dists(a[0], b[0]), want[0], "single image")
    d, layers = dists(a, b, per_layer=True)
    assert len(layers) == 6
    np.testing.assert_allclose(1.0 - sum(np.asarray(t) for t in layers), d, rtol=1e-5, atol=1e-6)
    assert_parity(np.stack([np.asarray(t) for t in layers], axis=1), dists_goldens["layers64"][:6],
                  "per-layer terms")
    cached = dists.distance_from_features(dists.features(a), dists.features(b))
    np.testing.assert_allclose(cached, dists(a, b), rtol=1e-5, atol=1e-6)


def test_same_validation_and_messages_as_lpips(dists, alex):
    cases = [
        (np.zeros((1, 3, 64, 64), np.float32), r"expected 3 RGB channels last.*NCHW"),
        (np.zeros((64, 64), np.float32), r"rank 2.*\(N, H, W, 3\)"),
        (np.zeros((1, 64, 64, 3), np.float32) + 1.5, r"values in \[1.5, 1.5\]; expected floats"),
        (np.zeros((1, 64, 64, 3), np.int32), r"dtype int32; expected float"),
        (np.zeros((0, 64, 64, 3), np.float32), r"empty batch"),
    ]
    for x, pattern in cases:
        for metric in (dists, alex):
            with pytest.raises((ValueError, TypeError), match=pattern):
                metric(x, x)
    with pytest.raises(ValueError, match=r"batch sizes differ: x has 2 images, y has 3"):
        dists(np.zeros((2, 8, 8, 3), np.float32), np.zeros((3, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="uint8, which is always read as"):
        dists(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8), normalize=True)
    with pytest.raises(InputError, match="dists/official has no spatial distance map"):
        dists(np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 8, 8, 3), np.float32),
              spatial=True)
    with pytest.raises(ValueError, match=r"expected 6 feature maps per input"):
        dists.distance_from_features(alex.features(np.zeros((1, 32, 32, 3), np.float32)),
                                     dists.features(np.zeros((1, 32, 32, 3), np.float32)))


def test_jit_grad_vmap_equal_the_plain_call(dists, pretrained_goldens):
    a, b = _u8_pairs(pretrained_goldens, slice(2, 5))
    x = jnp.asarray(a[:, :32, :32] / 127.5 - 1.0, jnp.float32)
    y = jnp.asarray(b[:, :32, :32] / 127.5 - 1.0, jnp.float32)
    plain = np.asarray(dists(x, y))

    def dist(v, p, q):
        return dists.module.apply(v, p, q)

    np.testing.assert_allclose(jax.jit(dist)(dists.variables, x, y), plain, rtol=1e-5)
    per_pair = jax.jit(jax.vmap(lambda p, q: dist(dists.variables, p[None], q[None])[0]))(x, y)
    np.testing.assert_allclose(per_pair, plain, rtol=1e-5)

    def loss(p):
        return jnp.sum(dist(dists.variables, p, y))

    with jax.default_matmul_precision("highest"):
        eager = np.asarray(jax.grad(loss)(x))
        jitted = np.asarray(jax.jit(jax.grad(loss))(x))
        vmapped = np.asarray(jax.jit(jax.vmap(jax.grad(
            lambda p, q: dist(dists.variables, p[None], q[None])[0])))(x, y))
    assert np.isfinite(eager).all() and np.abs(eager).max() > 0
    scale = np.abs(eager).max()
    for other in (jitted, vmapped):
        np.testing.assert_allclose(other, eager, rtol=1e-5, atol=1e-5 * scale)


def test_msssim_module_fits_the_metric_wrapper(pretrained_goldens):
    from shiftlpips_jax import evaluation as ev
    m = sl.Metric(MSSSIM(), {}, net="msssim", variant="RGB")
    assert m.min_size == 33 and not m.has_spatial_map
    a, b = _u8_pairs(pretrained_goldens, slice(0, 3))
    dist = ev.get_distance("msssim")
    want = dist(jnp.asarray(a / 127.5 - 1.0, jnp.float32), jnp.asarray(b / 127.5 - 1.0,
                                                                       jnp.float32))
    np.testing.assert_allclose(m(a, b), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="no per-layer terms"):
        m(a, b, per_layer=True)
    with pytest.raises(ValueError, match="needs at least 33x33"):
        m(a[:, :32, :32], b[:, :32, :32])


# --------------------------------------------------------------------- shard_map, 4 devices

def _shard_worker() -> None:
    """Forward and input gradient under jax.shard_map on a ("data",) mesh of 4 devices."""
    from jax.sharding import PartitionSpec as P

    assert jax.device_count() == 4, jax.devices()
    metric = sl.load("dists")
    pretrained_goldens = np.load(os.path.join(GOLDENS, "pretrained.npz"))
    a, b = _u8_pairs(pretrained_goldens, slice(0, 8))
    x = jnp.asarray(a[:, :32, :32] / 127.5 - 1.0, jnp.float32)
    y = jnp.asarray(b[:, :32, :32] / 127.5 - 1.0, jnp.float32)
    mesh = jax.make_mesh((4,), ("data",))
    # As a user places a batch on a ("data",) mesh: images split, parameters replicated.
    batch = jax.sharding.NamedSharding(mesh, P("data"))
    params = jax.device_put(metric.variables, jax.sharding.NamedSharding(mesh, P()))
    xs, ys = jax.device_put(x, batch), jax.device_put(y, batch)

    def local(params, p, q):
        d = metric.module.apply(params, p, q)
        g = jax.grad(lambda p_: metric.module.apply(params, p_, q).sum())(p)
        return d, g

    fn = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P("data"), P("data")),
                               out_specs=(P("data"), P("data"))))
    with jax.default_matmul_precision("highest"):
        d, g = fn(params, xs, ys)
        # The reference is unsharded but has the same partition (2 pairs per call): on an
        # AVX2 CPU (Zen 2) the batch-8 and batch-2 float32 gradients of DISTS differ by 1.1e-4
        # of the largest entry (XLA's convolutions round differently per batch size), batch 2
        # and batch 1 by 2e-7, so only the same partition compares at 1e-5.
        grad_fn = jax.jit(jax.grad(lambda p_, q_: metric.module.apply(metric.variables, p_,
                                                                       q_).sum()))
        g_plain = np.concatenate([np.asarray(grad_fn(x[i:i + 2], y[i:i + 2]))
                                  for i in range(0, 8, 2)])
    assert len(d.sharding.device_set) == 4
    np.testing.assert_allclose(d, metric(x, y), rtol=1e-5)
    g, g_plain = np.asarray(g), np.asarray(g_plain)
    assert np.isfinite(g).all() and np.abs(g_plain).max() > 0
    np.testing.assert_allclose(g, g_plain, rtol=1e-5, atol=1e-5 * np.abs(g_plain).max())
    print("shard_map ok", np.asarray(d).round(6).tolist())


def test_shard_map_forward_and_grad_on_four_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "shard-worker"],
                          cwd=os.path.join(REPO, "tests"), env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "shard_map ok" in proc.stdout


if __name__ == "__main__" and sys.argv[1:] == ["shard-worker"]:
    _shard_worker()
