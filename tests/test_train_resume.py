"""``kill -9`` a training run mid-way, rerun the same command: it resumes from
its last checkpoint (parameters, Adam state, grain data position, rng) and ends with exactly the
parameters of an uninterrupted run.

The runs are the real program (``python -m train``) on the tiny config: shuffled data, dropout
on, asynchronous checkpoints every 2 steps. A shared persistent compilation cache keeps the three
runs from compiling three times.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 30
ARGS = ["--config", "train/configs/tiny.py", "--config.image_size=32",
        "--config.data.load_size=32", "--config.data.synthetic=60", "--config.batch_size=4",
        f"--config.max_steps={STEPS}", "--config.log_every=1", "--config.checkpoint_every=2",
        "--config.val_every=0", "--config.keep_checkpoints=2"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = dict(os.environ)
    e["JAX_PLATFORMS"] = "cpu"
    e["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))
    e["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    e.pop("XLA_FLAGS", None)
    return e


def _train(workdir, env, extra=()):
    return subprocess.run([sys.executable, "-m", "train", *ARGS, "--workdir", str(workdir),
                           *extra], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def final_state(workdir) -> dict[str, np.ndarray]:
    """Every array of the last checkpoint (params, batch stats, Adam moments, step, rng)."""
    import orbax.checkpoint as ocp
    from flax import traverse_util

    ckpts = os.path.join(workdir, "checkpoints")
    last = max(int(d) for d in os.listdir(ckpts) if d.isdigit())
    tree = ocp.StandardCheckpointer().restore(os.path.join(ckpts, str(last), "state"))
    return {"/".join(map(str, k)): np.asarray(v)
            for k, v in traverse_util.flatten_dict(tree).items()}


def test_kill9_then_resume_equals_uninterrupted(tmp_path, env):
    straight = _train(tmp_path / "straight", env)
    assert straight.returncode == 0, straight.stderr[-3000:]

    # Start the same run, SIGKILL it once it has logged step 9 (mid-run, possibly mid-save).
    workdir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "train", *ARGS, "--workdir", str(workdir)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    killed_at = None
    deadline = time.time() + 300
    for line in proc.stdout:
        if line.startswith("[step ") and int(line[6:line.index("/")]) >= 9:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = int(line[6:line.index("/")])
            break
        assert time.time() < deadline
    proc.wait(timeout=60)
    assert killed_at is not None and proc.returncode == -signal.SIGKILL
    steps = sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit())
    assert steps and max(steps) < STEPS, steps  # it really died mid-run

    resumed = _train(workdir, env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from step {max(steps)}" in resumed.stdout

    a, b = final_state(tmp_path / "straight"), final_state(workdir)
    assert sorted(a) == sorted(b)
    assert int(a["state/step"]) == int(b["state/step"]) == STEPS
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # The JSONL log of the resumed run has one entry per step, none duplicated.
    logged = [json.loads(x)["step"] for x in open(workdir / "metrics.jsonl")]
    assert logged == list(range(1, STEPS + 1)), logged
    # And the exported metrics are identical too.
    import shiftlpips_jax as sl
    m1 = sl.load(checkpoint=str(tmp_path / "straight" / "metric"))
    m2 = sl.load(checkpoint=str(workdir / "metric"))
    for x, y in zip(jax_leaves(m1.params), jax_leaves(m2.params)):
        np.testing.assert_array_equal(x, y)


def test_resume_refuses_a_different_run(tmp_path, env):
    """A workdir holding another configuration's run is not silently resumed."""
    first = _train(tmp_path / "w", env, ["--config.max_steps=2"])
    assert first.returncode == 0, first.stderr[-3000:]
    other = _train(tmp_path / "w", env, ["--config.batch_size=8"])
    assert other.returncode == 5
    assert "global_batch=4" in other.stderr and "new --workdir" in other.stderr


def jax_leaves(tree):
    import jax
    return [np.asarray(x) for x in jax.tree.leaves(tree)]
