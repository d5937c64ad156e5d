"""Hostile and malformed checkpoints: each raises the reader's own error, in bounded memory and time.

The cases live in ``hostile_checkpoints.py`` (one function per file). They are loaded in a worker
process whose address space is capped 2 GiB above what it uses after its imports, so a regression
that tries to allocate gigabytes fails the case instead of the machine; a case that kills the
worker (e.g. a C stack overflow) is reported as that case's failure and the rest still run.
"""

import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import hostile_checkpoints as hc
import shiftlpips_jax as sl
from shiftlpips_jax._src.weights import torch_pickle
from conftest import GOLDENS

MIB = 1 << 20
SECONDS_PER_CASE = 10.0    # bound per load; the slowest case takes under a second when idle
FUZZ_MUTANTS = 300
FUZZ_PEAK_MIB = 80         # a mutant may legitimately use the 64 MiB view allowance


def _worker(args, timeout=900):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, hc.__file__, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("hostile"))
    pending, out, crashed = sorted(hc.CASES), {}, {}
    while pending:
        proc = _worker(["--dir", folder, "--limit-gib", "2", "--seconds", "60", *pending])
        for line in proc.stdout.splitlines():
            result = json.loads(line)
            out[result["name"]] = result
        rest = [n for n in pending if n not in out]
        if proc.returncode == 0 or not rest:
            break
        # The first case without a result took the worker down; the others run again.
        crashed[rest[0]] = f"worker died with status {proc.returncode}: {proc.stderr[-3000:]}"
        pending = rest[1:]
    return out, crashed


def test_the_set_is_large_and_covers_every_category():
    hostile = [c for c in hc.CASES.values() if c.error is not None]
    assert len(hostile) >= 50
    by_category = collections.Counter(c.category for c in hostile)
    assert set(by_category) == {"tensor-bounds", "zip", "pickle-structure", "globals",
                                "mutation", "persistent-id", "legacy", "files"}
    assert min(by_category.values()) >= 4, by_category
    assert {c.error for c in hostile} == {hc.FORMAT, hc.UNSAFE}


@pytest.mark.parametrize("name", sorted(hc.CASES))
def test_case(results, name):
    out, crashed = results
    assert name not in crashed, crashed.get(name)
    c, r = hc.CASES[name], out[name]
    if c.error is None:
        assert r["error"] is None, f"{r['error']}: {r['message']}"
        assert r["summary"] == c.expect
    else:
        assert (r["error"], c.match in r["message"]) == (c.error, True), \
            f"expected {c.error} with {c.match!r}, got {r['error']}: {r['message']}"
        assert f"{name}." in r["message"], "the message names the file"
    assert r["peak"] <= c.peak_mib * MIB, f"peak {r['peak'] / MIB:.1f} MiB"
    assert r["seconds"] <= SECONDS_PER_CASE, f"{r['seconds']:.2f} s"


def test_mutants_of_legitimate_files_raise_only_reader_errors(tmp_path):
    proc = _worker(["--dir", str(tmp_path), "--fuzz", str(FUZZ_MUTANTS), "--seed", "0",
                    "--limit-gib", "2", "--seconds", "60"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == FUZZ_MUTANTS
    outcomes = collections.Counter(r["error"] for r in results)
    assert set(outcomes) <= {None, hc.FORMAT, hc.UNSAFE}, [
        (r["name"], r["error"], r["message"]) for r in results
        if r["error"] not in (None, hc.FORMAT, hc.UNSAFE)][:5]
    assert outcomes[hc.FORMAT] >= FUZZ_MUTANTS // 3, outcomes  # the mutations do bite
    worst = max(results, key=lambda r: r["peak"])
    assert worst["peak"] <= FUZZ_PEAK_MIB * MIB, worst
    slowest = max(results, key=lambda r: r["seconds"])
    assert slowest["seconds"] <= SECONDS_PER_CASE, slowest


def _write(tmp_path, name):
    c = hc.CASES[name]
    path = tmp_path / (name + (".pth" if c.loader == "torch" else ".ckpt"))
    path.write_bytes(c.build())
    return c, str(path)


def _load(c, path):
    return (sl.weights.load_torch_checkpoint if c.loader == "torch" else sl.weights.load_array_pickle)(path)


def test_hostile_loads_cannot_change_later_loads(tmp_path):
    """A file that sets state or items on allow-listed names leaves the next load untouched."""
    tables = ("_COMMON_GLOBALS", "_TORCH_GLOBALS", "_NUMPY_GLOBALS", "_STORAGE_DTYPES")
    before = {t: dict(getattr(torch_pickle, t)) for t in tables}
    reference = sl.weights.load_torch_checkpoint(os.path.join(GOLDENS, "pth", "conv_state_zip.pth"))
    hostile = [n for n, c in hc.CASES.items() if c.category == "mutation"]
    assert len(hostile) >= 8
    _, valid = _write(tmp_path, "valid_zip")
    for name in hostile:
        c, path = _write(tmp_path, name)
        with pytest.raises(getattr(sl, c.error), match="refusing|twice|attributes"):
            _load(c, path)
        # The same process, right after: legitimate files still load, with the same values.
        np.testing.assert_array_equal(sl.weights.load_torch_checkpoint(valid)["w"],
                                      np.array([[1, 2], [3, 4]], np.float32))
        again = sl.weights.load_torch_checkpoint(os.path.join(GOLDENS, "pth", "conv_state_zip.pth"))
        for key in reference:
            np.testing.assert_array_equal(again[key], reference[key])
    assert {t: dict(getattr(torch_pickle, t)) for t in tables} == before
    for t in tables:  # read-only: nothing in the process can rebind an entry either
        with pytest.raises(TypeError):
            getattr(torch_pickle, t)["x"] = 1


@pytest.mark.parametrize("loader", [sl.weights.load_torch_checkpoint, sl.weights.load_array_pickle])
def test_fifo_and_directory_are_refused_without_blocking(tmp_path, loader):
    fifo = tmp_path / "weights.pth"
    os.mkfifo(fifo)
    with pytest.raises(sl.errors.CheckpointFormatError, match=r"weights.pth: not a regular file"):
        loader(str(fifo))
    with pytest.raises(sl.errors.CheckpointFormatError, match="not a regular file"):
        loader(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        loader(str(tmp_path / "missing.pth"))
