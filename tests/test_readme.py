"""The README stays true: its Python snippets run, and the quickstart output is what we print."""

import io
import os
import re

import numpy as np
import pytest

from shiftlpips_jax._src.compare import run_example
from shiftlpips_jax.errors import InputError
from shiftlpips_jax.evaluation import summarize
from conftest import REPO

README = open(os.path.join(REPO, "README.md")).read()


def test_python_snippets_run():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["d"].shape == (4,)
    assert namespace["m"].shape == (4, 64, 64, 1)
    assert namespace["grad"].shape == (4, 64, 64, 3)
    # reduction= and the streaming example give the metric's own numbers.
    metric, x, y = namespace["metric"], namespace["x"], namespace["y"]
    assert float(namespace["mean_d"]) == pytest.approx(float(np.mean(metric(x, y))), rel=1e-6)
    with pytest.raises(InputError, match="'none', 'mean', 'sum'"):
        metric(x, y, reduction="avg")
    want = summarize(np.asarray(metric(namespace["outputs"], namespace["targets"])))
    for key in ("summary", "sharded_summary"):
        got = namespace["summary"] if key == "summary" else namespace["sharded_stats"].summary()
        assert got["count"] == 10, key
        for k in ("mean", "std", "min", "max"):
            assert got[k] == pytest.approx(want[k], rel=1e-5), (key, k)
        np.testing.assert_allclose(got["ci95"], want["ci95"], rtol=1e-4)

    # "Using it in training": the mesh and shard_map snippets give the unsharded gradient, the
    # cached-feature loss the direct one, and the NNX model learns against the frozen metric.
    grad, loss = np.asarray(namespace["grad"]), float(namespace["loss"])
    scale = float(np.abs(grad).max())
    assert scale > 0
    for name in ("mesh_grad", "sm_grad"):
        np.testing.assert_allclose(np.asarray(namespace[name]), grad, atol=1e-5 * scale)
    for name in ("mesh_loss", "sm_loss"):
        np.testing.assert_allclose(float(namespace[name]), loss, rtol=1e-5)
    losses = namespace["nnx_losses"]
    assert len(losses) == 5 and all(np.isfinite(losses)) and losses[-1] < losses[0], losses


def test_quickstart_has_two_commands_and_true_output():
    quick = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quick, flags=re.S)[0].strip().splitlines()
    assert [c.split("#")[0].strip() for c in commands] == ["make example", "make test"]
    printed = re.findall(r"```\n(Bundled example.*?)```", quick, flags=re.S)[0]
    buf = io.StringIO()
    run_example(out=buf)
    # Same text; each distance within one unit of its 6th decimal (float32 sums round
    # differently on other CPUs, e.g. 0.1320215 printed as 0.132021 or 0.132022).
    got, want = buf.getvalue().split(), printed.split()
    assert len(got) == len(want), (buf.getvalue(), printed)
    for g, w in zip(got, want):
        if re.fullmatch(r"\d+\.\d{6}", w):
            assert abs(float(g) - float(w)) <= 1.01e-6, (g, w)
        else:
            assert g == w, (g, w)
    assert buf.getvalue().splitlines()[0] == printed.splitlines()[0]
    ci = open(os.path.join(REPO, ".ci", "run")).read()
    assert "make test" in ci
