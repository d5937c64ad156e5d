"""Pretrained ST-LPIPS and LPIPS equal the PyTorch reference on real images.

Goldens (tests/goldens/pretrained.npz) come from the real stlpips/lpips code: the example triplet,
24 further pairs at 64x64, 20 at 256x256, and 1-3 px crop-shifted pairs at 64x61 and 256x253;
distances, per-layer terms and spatial maps. Bound: |delta| <= 1e-5 + 1e-4 |d|.

Run as a script to print the measured maximum parity error per model:
    python tests/test_parity_pretrained.py
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import GOLDENS, assert_parity  # noqa: E402

MODELS = {"st_alex": ("alex", "shift_tolerant"), "st_vgg": ("vgg", "shift_tolerant"),
          "lpips_alex": ("alex", "lpips"), "lpips_vgg": ("vgg", "lpips")}
SETS = {"64": ("images64", "pairs64"), "256": ("images256", "pairs256"),
        "shift64": ("shift64_a", "shift64_b"), "shift256": ("shift256_a", "shift256_b")}


def _inputs(g, which):
    a, b = SETS[which]
    if which.startswith("shift"):
        return g[a], g[b]
    imgs, pairs = g[a], g[b]
    return imgs[pairs[:, 0]], imgs[pairs[:, 1]]


def _batched(metric, x, y, batch=8, **kw):
    outs = [metric(x[i:i + batch], y[i:i + batch], **kw) for i in range(0, len(x), batch)]
    if kw.get("per_layer"):
        return (np.concatenate([np.asarray(o[0]) for o in outs]),
                np.concatenate([np.stack([np.asarray(t) for t in o[1]], 1) for o in outs]))
    return np.concatenate([np.asarray(o) for o in outs])


def measure(g, metric, model):
    """{set: (max |delta| of d, max |delta| of per-layer terms, n pairs)} plus spatial errors."""
    out = {}
    for which in SETS:
        x, y = _inputs(g, which)
        d, layers = _batched(metric, x, y, per_layer=True)
        assert_parity(d, g[f"{model}/d{which}"], f"{model} d{which}")
        assert_parity(layers, g[f"{model}/layers{which}"], f"{model} layers{which}")
        out[which] = (float(np.abs(d - g[f"{model}/d{which}"]).max()),
                      float(np.abs(layers - g[f"{model}/layers{which}"]).max()), len(x))
    for key, (x, y) in {"spatial64": (g["images64"][[0, 0]], g["images64"][[1, 2]]),
                        "spatialshift64": (g["shift64_a"][:2], g["shift64_b"][:2])}.items():
        maps = np.asarray(metric(x, y, spatial=True))[..., 0]
        assert_parity(maps, g[f"{model}/{key}"], f"{model} {key}")
        out[key] = (float(np.abs(maps - g[f"{model}/{key}"]).max()), None, len(x))
    return out


@pytest.mark.fast
@pytest.mark.parametrize("model", sorted(MODELS))
def test_bundled_example_matches_reference(pretrained_goldens, metrics, example, model):
    # The quick tier's parity check: the example triplet is pairs64[0:2] of the goldens.
    g = pretrained_goldens
    np.testing.assert_array_equal(g["pairs64"][:2], [[0, 1], [0, 2]])
    ref, p0, p1 = example
    d = metrics[MODELS[model]](np.stack([ref, ref]), np.stack([p0, p1]))
    assert_parity(d, g[f"{model}/d64"][:2], f"{model} example")


@pytest.mark.parametrize("model", sorted(MODELS))
def test_pretrained_matches_reference(pretrained_goldens, metrics, model):
    g = pretrained_goldens
    assert len(g["pairs64"]) >= 22 and len(g["pairs256"]) >= 20
    assert set(g["shift64_n"]) == {1, 2, 3} and set(g["shift256_n"]) == {1, 2, 3}
    measure(g, metrics[MODELS[model]], model)


if __name__ == "__main__":
    import shiftlpips_jax as sl

    g = np.load(os.path.join(GOLDENS, "pretrained.npz"))
    print("Parity with the PyTorch reference (float32, CPU): max |delta| over each golden set")
    print(f"{'model':<12}{'set':<16}{'pairs':>6}{'max|dd|':>12}{'max|d layer|':>14}")
    for model, key in MODELS.items():
        res = measure(g, sl.load(*key), model)
        for which, (dd, dl, n) in res.items():
            dl_text = f"{dl:.2e}" if dl is not None else "-"
            print(f"{model:<12}{which:<16}{n:>6}{dd:>12.2e}{dl_text:>14}")
        print(f"{model:<12}{'ALL':<16}{'':>6}{max(v[0] for v in res.values()):>12.2e}")
