"""Every backbone preset and AlexNet knob combination equals upstream PyTorch layer for layer.

Goldens (tests/goldens/presets.npz, made by make_goldens.py with the real stlpips/lpips/torchvision
code) hold random-weight models; the same deterministic weights are rebuilt here from the state-dict
manifest, converted with our strict converters, and the features and distances compared.
"""

import json
import os
import sys

import jax
import numpy as np
import pytest

import shiftlpips_jax as sl
from shiftlpips_jax._src.weights import convert, registry
from conftest import GOLDENS, assert_parity

sys.path.insert(0, GOLDENS)
from random_weights import make_state_dict  # noqa: E402

ENTRIES = json.loads(str(np.load(os.path.join(GOLDENS, "presets.npz"))["entries"]))
KNOBS = ("conv1_stride", "blurpool", "pad_more", "blur_location", "fconv")


def build_state_dict(g, key):
    config = json.loads(str(g[f"{key}/config"]))
    manifest = json.loads(str(g[f"{key}/manifest"]))
    buffers = {f[len(f"{key}/buffer/"):]: g[f] for f in g.files if f.startswith(f"{key}/buffer/")}
    skipped = tuple(config.get("skipped_prefixes", ()))
    state = make_state_dict([(n, s) for n, s in manifest
                             if n not in buffers and not n.startswith(skipped)])
    state.update({n: np.asarray(v) for n, v in buffers.items()})
    for n, _ in manifest:  # classification-head tensors: present, and skipped by the converter
        if skipped and n.startswith(skipped):
            state[n] = np.zeros((1,), np.float32)
    for alias, canonical in json.loads(str(g[f"{key}/aliases"])).items():
        state[alias] = state[canonical]
    return config, state


def build_model(config):
    extra = {k: config[k] for k in KNOBS if k in config}
    variant = "custom" if config["variant"] == "knob" else config["variant"]
    return sl.LPIPS(net=sl.make_backbone(config["net"], variant, **extra))


def convert_state(config, state, model):
    if config["layout"] == "stlpips":
        loaded = convert.variables_from_stlpips(state, model)
    else:
        trunk = {k: v for k, v in state.items() if not k.startswith("lin")}
        tv = convert.backbone_from_torch(trunk, model.net, layout="torchvision")
        loaded = {"params": {"net": tv["params"],
                             **convert.heads_from_torch(state, model.net.channels)}}
        if "batch_stats" in tv:
            loaded["batch_stats"] = {"net": tv["batch_stats"]}
    return convert.merge_variables(registry.template_variables(model), loaded)


@pytest.mark.parametrize("key", ENTRIES)
def test_preset_matches_upstream(preset_goldens, key):
    g = preset_goldens
    config, state = build_state_dict(g, key)
    model = build_model(config)
    variables = convert_state(config, state, model)
    apply = jax.jit(model.apply, static_argnames=("spatial", "per_layer"))

    x = g[f"{key}/x"]
    scaled = (x[:1] - sl._src.lpips.SHIFT) / sl._src.lpips.SCALE
    taps = model.apply(variables, scaled, method=lambda m, a: m.net(a))
    assert len(taps) == len(model.net.channels)
    for i, feat in enumerate(taps.values()):
        want = g[f"{key}/feat{i}"]
        assert feat.shape == want.shape, (key, i, feat.shape, want.shape)
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(feat, want, rtol=1e-4, atol=2e-5 * scale,
                                   err_msg=f"{key} tap {i}")

    d, layers = apply(variables, g[f"{key}/x"], g[f"{key}/y"], per_layer=True)
    assert_parity(d, g[f"{key}/d"], f"{key} d")
    assert_parity(np.stack(layers, 1), g[f"{key}/layers"], f"{key} layers")
    spatial = apply(variables, g[f"{key}/x"], g[f"{key}/y"], spatial=True)
    assert_parity(spatial[..., 0], g[f"{key}/spatial"], f"{key} spatial")
    d_odd, layers_odd = apply(variables, g[f"{key}/x_odd"], g[f"{key}/y_odd"], per_layer=True)
    assert_parity(d_odd, g[f"{key}/d_odd"], f"{key} d_odd")
    assert_parity(np.stack(layers_odd, 1), g[f"{key}/layers_odd"], f"{key} layers_odd")


def test_every_preset_and_knob_is_covered():
    presets = {f"{n}_{v}" for n, v in sl.BACKBONE_PRESETS}
    assert presets <= set(ENTRIES)
    knob_entries = [k for k in ENTRIES if k.startswith("alexknob_")]
    assert len(knob_entries) >= 10
    g = np.load(os.path.join(GOLDENS, "presets.npz"))
    seen = {json.loads(str(g[f"{k}/config"]))["blur_location"] for k in knob_entries}
    assert seen == {"original", "feat_after_blur", "blur_before_act"}
    strides = {json.loads(str(g[f"{k}/config"]))["conv1_stride"] for k in knob_entries}
    assert strides == {1, 2, 4}
