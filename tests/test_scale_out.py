"""eval, compare and pairs on every device and every process give the one-device results.

(a) 4 fake CPU devices (``--xla_force_host_platform_device_count=4``) write exactly the JSON and
    CSV that 1 device writes, for ``eval`` (2AFC with a crop-shift), ``compare DIR_A DIR_B`` and
    ``pairs DIR``; the folders are large enough that a step spans several devices, the last one
    padded.
(b) 2 processes x 2 devices (``jax.distributed`` over 127.0.0.1, gloo collectives), each
    scoring its share, write (process 0 only) the same files as 1 process.

This file is also the worker: ``python tests/test_scale_out.py DATA OUT [--pid I --nproc N
--port P]`` runs the three commands through ``shiftlpips_jax.cli.main``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from shared_helpers import free_port as _free_port, wait_ok
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

FILES = ("eval.json", "eval.csv", "compare.json", "compare.csv", "pairs.json", "pairs.csv")


def _env(devices: int, cache: str) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["JAX_COMPILATION_CACHE_DIR"] = cache
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _start(data, out, devices, cache, *extra):
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), str(data), str(out),
                             *extra], cwd=REPO, env=_env(devices, cache),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(proc, timeout=600):
    return wait_ok(proc, timeout)


def _make_data(root) -> None:
    from PIL import Image

    from bapps_fixture import distort, make_2afc, photo_patch

    make_2afc(root / "2afc", {"val/traditional": 7, "val/cnn": 5}, size=32, seed=3)
    rng = np.random.default_rng(5)
    for name in ("a", "b", "p"):
        (root / name).mkdir()
    # 21 pairs (more than one device's 16 per step); pairs has the same size, so it reuses
    # compare's program (the test's time is mostly compilation).
    for i in range(21):
        img = photo_patch(rng, (32, 32))
        Image.fromarray(img).save(root / "a" / f"img{i:02d}.png")
        Image.fromarray(distort(img, rng)).save(root / "b" / f"img{i:02d}.png")
    for i in range(7):                                   # 21 pairs
        Image.fromarray(photo_patch(rng, (32, 32))).save(root / "p" / f"q{i}.png")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale_out")
    _make_data(root)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("xla_cache"))


@pytest.fixture(scope="module")
def runs(data, cache, tmp_path_factory):
    """The 1-device and the 4-device runs, started together."""
    outs = {n: tmp_path_factory.mktemp(f"devices{n}") for n in (1, 4)}
    procs = {n: _start(data, out, n, cache) for n, out in outs.items()}
    for proc in procs.values():
        _wait(proc)
    return outs


def _read(folder, name):
    text = (folder / name).read_text()
    return json.loads(text) if name.endswith(".json") else text


def test_four_devices_write_exactly_the_one_device_results(data, runs, alex):
    single, four = runs[1], runs[4]
    assert json.loads((four / "devices.json").read_text()) == {"devices": 4, "processes": 1}
    assert json.loads((single / "devices.json").read_text())["devices"] == 1
    for name in FILES:
        assert _read(four, name) == _read(single, name), name
    # The numbers are the metric's: compare equals the Python API, and the summary is theirs.
    from shiftlpips_jax._src.images import load_rgb
    from shiftlpips_jax.evaluation import summarize
    got = _read(four, "compare.json")
    assert len(got["per_image"]) == 21
    for name in ("img00.png", "img17.png", "img20.png"):
        want = float(alex(load_rgb(str(data / "a" / name)), load_rgb(str(data / "b" / name))))
        assert got["per_image"][name] == pytest.approx(want, rel=1e-6, abs=1e-7), name
    ref = summarize(list(got["per_image"].values()))
    assert got["summary"]["count"] == 21
    assert got["summary"]["mean"] == pytest.approx(ref["mean"], rel=1e-12)
    assert got["summary"]["ci95"] == pytest.approx(ref["ci95"], rel=1e-12)
    assert len(_read(four, "pairs.json")["per_pair"]) == 21
    assert _read(four, "eval.json")["triplets"] == {"val/traditional": 7, "val/cnn": 5}


def test_two_processes_write_the_one_process_results(data, cache, runs, tmp_path):
    single = runs[1]
    port = _free_port()
    hosts = [_start(data, tmp_path / f"p{p}", 2, cache, "--pid", str(p), "--nproc", "2",
                    "--port", str(port)) for p in range(2)]
    logs = [_wait(h) for h in hosts]
    assert json.loads((tmp_path / "p0" / "devices.json").read_text()) == {"devices": 4,
                                                                          "processes": 2}
    for name in FILES:
        assert _read(tmp_path / "p0", name) == _read(single, name), (name, logs[0][-2000:])
        assert not (tmp_path / "p1" / name).exists(), f"process 1 wrote {name}"
    assert "N 21, mean" in logs[0] and "N 21, mean" not in logs[1]


# ------------------------------------------------------------------------------------ worker
def _worker(argv) -> None:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--pid", type=int, default=None)
    p.add_argument("--nproc", type=int, default=None)
    p.add_argument("--port", type=int, default=None)
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    dist = [] if a.pid is None else [
        "--coordinator-address", f"127.0.0.1:{a.port}", "--num-processes", str(a.nproc),
        "--process-id", str(a.pid), "--cpu-collectives", "gloo"]

    from shiftlpips_jax import cli

    def out(name):
        return os.path.join(a.out, name)

    runs = [["eval", os.path.join(a.data, "2afc"), "--load-size", "32", "--shifts", "1",
             "--batch-size", "2", "--json", out("eval.json"), "--per-sample", out("eval.csv"),
             "--no-progress"],
            ["compare", os.path.join(a.data, "a"), os.path.join(a.data, "b"),
             "--out", out("compare.csv"), "--json", out("compare.json")],
            ["pairs", os.path.join(a.data, "p"), "--out", out("pairs.csv"),
             "--json", out("pairs.json")]]
    for argv_ in runs:
        code = cli.main(argv_ + dist)
        assert code == 0, argv_
    import jax
    if jax.process_index() == 0:
        with open(out("devices.json"), "w") as f:
            json.dump({"devices": jax.device_count(), "processes": jax.process_count()}, f)


if __name__ == "__main__":
    _worker(sys.argv[1:])
