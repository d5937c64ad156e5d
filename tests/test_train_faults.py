"""Issue 4 section 5: faults.

* A NaN/inf loss stops the run with a clear message (exit status 3) and the last good checkpoint
  stays intact and finite; nothing after the bad step is saved.
* A failed save (an item fails while the others are being written) raises a clear error and never
  corrupts or hides the previous checkpoint; a half-written checkpoint left by a crash is ignored.
* A bad example (a corrupt PNG in a BAPPS folder) stops the run with an error naming the file.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _env(tmp_path_factory=None):
    e = dict(os.environ)
    e["JAX_PLATFORMS"] = "cpu"
    e.pop("XLA_FLAGS", None)
    return e


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    workdir = tmp_path / "run"
    # A huge learning rate blows the weights up within a few Adam steps.
    r = subprocess.run(
        [sys.executable, "-m", "train", "--config", "train/configs/tiny.py", "--workdir",
         str(workdir), "--config.image_size=32", "--config.data.load_size=32",
         "--config.batch_size=4", "--config.lr=1e12", "--config.checkpoint_every=1",
         "--config.log_every=1", "--config.val_every=0", "--config.keep_checkpoints=50"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "non-finite (NaN/inf) at step" in r.stderr
    bad = int(r.stderr.split("at step ")[1].split(";")[0])
    good = int(r.stderr.split("last good checkpoint is step ")[1].split(" ")[0])
    steps = sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit())
    assert steps and max(steps) == good < bad, (steps, good, bad)
    assert not os.path.exists(workdir / "metric")  # nothing exported from a failed run

    import orbax.checkpoint as ocp
    tree = ocp.StandardCheckpointer().restore(
        os.path.join(workdir, "checkpoints", str(good), "state"))
    leaves = jax.tree.leaves(tree["state"]["params"])
    assert all(np.all(np.isfinite(np.asarray(x))) for x in leaves)
    assert int(tree["state"]["bad_step"]) == -1


def test_nonfinite_step_is_not_applied():
    """The step itself refuses a non-finite update: state keeps its values, bad_step is set."""
    import shiftlpips_jax as sl
    from shiftlpips_jax.training import objective, optim, state as st, step as stp

    model = sl.LPIPS(net=sl.make_backbone("alex", "vanilla"))
    rank = objective.RankNet()
    x = jnp.zeros((1, 32, 32, 3))
    params = {"metric": model.init(jax.random.key(0), x, x)["params"],
              "rank": rank.init(jax.random.key(1), jnp.ones(1), jnp.ones(1))["params"]}
    tx = optim.make_optimizer(params, train_trunk=False, schedule=lambda s: 1e-4)
    mesh = stp.make_mesh(jax.devices()[:1])
    state = stp.replicate(mesh, st.TrainState.create(params=params, batch_stats={}, tx=tx))
    train_step = stp.make_train_step(model, rank, tx, mesh, clamp=optim.clamp_mask(params),
                                     trainable=optim.trainable_labels(params, train_trunk=False),
                                     donate=False)
    rng = np.random.default_rng(0)
    batch = {k: rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8) for k in ("ref", "p0", "p1")}
    batch["judge"] = np.array([np.nan, 0.5], np.float32)  # poisons the loss
    new, m = train_step(state, stp.shard_batch(mesh, batch), jax.random.key(0))
    assert not bool(m["finite"]) and int(new.bad_step) == 0 and int(new.step) == 1
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, b)
    batch["judge"] = np.array([0.0, 0.5], np.float32)
    new2, m2 = train_step(new, stp.shard_batch(mesh, batch), jax.random.key(0))
    assert bool(m2["finite"]) and int(new2.bad_step) == 0  # the first bad step is remembered


def _tiny_state():
    from shiftlpips_jax.training import state as st
    import optax
    params = {"metric": {"lin0": {"kernel": jnp.arange(4.0).reshape(1, 1, 4, 1)}},
              "rank": {"model_0": {"kernel": jnp.ones((5, 2)), "bias": jnp.zeros(2)}}}
    return st.TrainState.create(params=params, batch_stats={}, tx=optax.adam(1e-3))


class _Iter:
    def __init__(self, state=b'{"pos": 1}'):
        self.state = state

    def get_state(self):
        return self.state

    def set_state(self, s):
        self.state = s

    def start_prefetch(self):
        pass


def _settle(path, timeout=20.0):
    """Waits until nothing under ``path`` changes for a moment."""
    import time

    def listing():
        return sorted((d, f, os.path.getsize(os.path.join(d, f)) if os.path.exists(
            os.path.join(d, f)) else -1) for d, _, fs in os.walk(path) for f in fs)

    end, last = time.time() + timeout, None
    while time.time() < end:
        now = listing()
        if now == last:
            return
        last = now
        time.sleep(0.5)


def test_failed_save_never_corrupts_previous_checkpoint(tmp_path):
    from shiftlpips_jax.training.checkpointing import CheckpointError, Checkpointer

    state = _tiny_state()
    key = jax.random.key(7)
    ckpt = Checkpointer(str(tmp_path), keep=5)
    ckpt.save(2, state, key, _Iter(), meta={"examples_seen": 8})
    ckpt.wait()
    files_before = {p: open(os.path.join(d, p), "rb").read()
                    for d, _, fs in os.walk(tmp_path / "checkpoints" / "2") for p in fs}

    # Step 4: the params item is written, then the meta item fails (not JSON-serialisable).
    bumped = state.replace(step=state.step + 2,
                           params=jax.tree.map(lambda a: a + 1, state.params))
    with pytest.raises(CheckpointError, match="previous checkpoint \\(step 2\\).*intact"):
        ckpt.save(4, bumped, key, _Iter(b'{"pos": 9}'), meta={"bad": object()})
        ckpt.wait()
    assert ckpt.latest_step() == 2 and ckpt.all_steps() == [2]
    _settle(tmp_path / "checkpoints")  # writes the failed save had started may still be landing
    # A crash mid-save leaves only a temporary directory; it is not a checkpoint.
    os.makedirs(tmp_path / "checkpoints" / "6.orbax-checkpoint-tmp-1" / "state")
    ckpt.close()

    again = Checkpointer(str(tmp_path), keep=5)
    assert again.latest_step() == 2
    it = _Iter(b"{}")
    restored, rkey, meta = again.restore(_tiny_state(), it)
    assert int(restored.step) == 0 and meta["examples_seen"] == 8 and it.state == b'{"pos": 1}'
    for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(jax.random.key_data(rkey), jax.random.key_data(key))
    files_after = {p: open(os.path.join(d, p), "rb").read()
                   for d, _, fs in os.walk(tmp_path / "checkpoints" / "2") for p in fs}
    assert files_after == files_before
    # Saving works again afterwards, the same step included.
    again.save(4, bumped, key, _Iter(b'{"pos": 9}'), meta={"examples_seen": 16})
    again.close()
    assert Checkpointer(str(tmp_path)).all_steps() == [2, 4]


def test_bad_example_names_its_file(tmp_path):
    from bapps_fixture import make_2afc

    from shiftlpips_jax.training import input_pipeline, loop
    sys.path.insert(0, REPO)
    from train.configs import tiny

    root = make_2afc(tmp_path / "2afc", {"train/traditional": 8}, size=32, seed=0)
    bad = os.path.join(root, "train", "traditional", "p1", "000005.png")
    with open(bad, "wb") as fh:
        fh.write(b"\x89PNG but truncated")
    config = tiny.get_config()
    config.data.synthetic = 0
    config.data.root = root
    config.data.load_size = 32
    config.image_size = 32
    config.data.train_sets = ("train/traditional",)
    config.val_every = 0
    config.batch_size = 8
    config.data.shuffle = False
    with pytest.raises(input_pipeline.DataError) as err:
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert bad in str(err.value) and "step 1" in str(err.value)
