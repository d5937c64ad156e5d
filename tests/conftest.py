"""Shared fixtures: example images, loaded metrics, the lpips head files, goldens."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import shiftlpips_jax as sl
from shiftlpips_jax._src.images import example_path, load_rgb

GOLDENS = os.path.join(os.path.dirname(__file__), "goldens")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tolerance(d):
    """The parity bound: |delta| <= 1e-5 + 1e-4 |d|."""
    return 1e-5 + 1e-4 * np.abs(np.asarray(d, dtype=np.float64))


def assert_parity(actual, expected, what=""):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    err = np.abs(actual - expected)
    bound = tolerance(expected)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert np.all(err <= bound), (
        f"{what}: max |delta| {err.max():.3g} at {worst} (value {expected[worst]:.6g}) exceeds "
        f"1e-5 + 1e-4|d|")
    return float(err.max()) if err.size else 0.0


@pytest.fixture(scope="session")
def example():
    """The bundled 64x64 example triplet as uint8 (ref, p0, p1)."""
    return tuple(load_rgb(example_path(n)) for n in ("ex_ref", "ex_p0", "ex_p1"))


@pytest.fixture(scope="session")
def metrics():
    """Every pretrained metric (the four LPIPS models and DISTS), loaded once per session."""
    return {k: sl.load(*k) for k in sl.available_models()}


@pytest.fixture(scope="session")
def alex(metrics):
    return metrics[("alex", "shift_tolerant")]


@pytest.fixture(scope="session")
def lpips_wheel_dir(tmp_path_factory):
    """The unpacked lpips 0.1.4 wheel (LPIPS v0.1 head files). CI downloads it (Makefile);
    elsewhere it is fetched from PyPI with --no-deps on first use."""
    wheel = os.environ.get("SHIFTLPIPS_TEST_LPIPS_WHEEL")
    if not wheel or not os.path.isfile(wheel):
        found = glob.glob(os.path.join(REPO, ".cache", "wheels", "lpips-0.1.4-*.whl"))
        if found:
            wheel = found[0]
        else:
            dest = os.path.join(REPO, ".cache", "wheels")
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                            "lpips==0.1.4", "-d", dest], check=True)
            wheel = glob.glob(os.path.join(dest, "lpips-0.1.4-*.whl"))[0]
    out = tmp_path_factory.mktemp("lpips_wheel")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(out)
    return str(out / "lpips" / "weights" / "v0.1")


@pytest.fixture(scope="session")
def pretrained_goldens():
    return np.load(os.path.join(GOLDENS, "pretrained.npz"))


@pytest.fixture(scope="session")
def dists_goldens():
    """The official DISTS_pytorch values (tests/goldens/make_dists_goldens.py)."""
    return np.load(os.path.join(GOLDENS, "dists.npz"))


@pytest.fixture(scope="session")
def preset_goldens():
    return np.load(os.path.join(GOLDENS, "presets.npz"))


def pytest_collection_modifyitems(config, items):
    """The transforms matrix first (one test per model, minutes each): pytest-xdist then runs
    it alongside the rest of the suite instead of finishing on it with one busy worker."""
    items.sort(key=lambda item: os.path.basename(str(item.fspath)) != "test_transforms.py")
