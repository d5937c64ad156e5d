"""Training faults.

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

from shiftlpips_jax.errors import NonFiniteLossError

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
    from shiftlpips_jax._src.training import objective, optim, state as st
    from shiftlpips_jax.training import step as stp

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
    from shiftlpips_jax._src.training import state as st
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
    from shiftlpips_jax._src.training.checkpointing import CheckpointError, Checkpointer

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

    from shiftlpips_jax._src.training import loop
    from shiftlpips_jax.errors import DataError
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
    with pytest.raises(DataError) as err:
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert bad in str(err.value) and "step 1" in str(err.value)


def _random_state(seed=0):
    """A small state whose arrays are random (incompressible), so Orbax stores them in data
    files of their own rather than inline in its index."""
    from shiftlpips_jax._src.training import state as st
    import optax
    rng = np.random.default_rng(seed)
    params = {"metric": {"lin0": {"kernel": jnp.asarray(rng.standard_normal((400, 50)),
                                                        jnp.float32)}},
              "rank": {"model_0": {"kernel": jnp.asarray(rng.standard_normal((5, 2)),
                                                         jnp.float32), "bias": jnp.zeros(2)}}}
    return st.TrainState.create(params=params, batch_stats={}, tx=optax.adam(1e-3))


def _two_checkpoints(workdir):
    """Steps 2 and 4 of the same run; returns (state at 2, state at 4)."""
    from shiftlpips_jax._src.training.checkpointing import Checkpointer

    s2 = _random_state(0).replace(step=jnp.asarray(2, jnp.int32))
    s4 = _random_state(1).replace(step=jnp.asarray(4, jnp.int32))
    ckpt = Checkpointer(str(workdir), keep=5)
    ckpt.save(2, s2, jax.random.key(7), _Iter(b'{"pos": 2}'), meta={"examples_seen": 8})
    ckpt.save(4, s4, jax.random.key(7), _Iter(b'{"pos": 4}'), meta={"examples_seen": 16})
    ckpt.close()
    return s2, s4


def _data_files(step_dir):
    """The array data files of a checkpoint (the largest files of its state item)."""
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(step_dir, "state"))
             for f in fs]
    return sorted(files, key=os.path.getsize, reverse=True)[:1]


def test_bit_flips_in_checkpoint_data_are_refused_naming_the_good_one(tmp_path):
    """Ten single-bit flips in the array data of the newest checkpoint: each one is refused,
    naming that step and the previous good one; moving the bad step aside (as the message says)
    resumes from the good one."""
    import shutil

    from shiftlpips_jax._src.training.checkpointing import CheckpointError, Checkpointer

    pristine = tmp_path / "pristine"
    s2, _ = _two_checkpoints(pristine)
    data = _data_files(pristine / "checkpoints" / "4")[0]
    size = os.path.getsize(data)
    assert size > 40000  # the 400x50 float32 kernels live in this file, not inline
    rng = np.random.default_rng(0)
    refused = 0
    for trial in range(10):
        work = tmp_path / f"flip{trial}"
        shutil.copytree(pristine, work)
        victim = str(data).replace(str(pristine), str(work))
        blob = bytearray(open(victim, "rb").read())
        blob[int(rng.integers(size // 10, size - size // 10))] ^= 1 << int(rng.integers(8))
        open(victim, "wb").write(bytes(blob))
        it = _Iter(b"{}")
        with pytest.raises(CheckpointError) as err:
            Checkpointer(str(work)).restore(_random_state(), it)
        msg = str(err.value)
        assert "checkpoint step 4" in msg and "previous good checkpoint is step 2" in msg, msg
        assert it.state == b"{}"  # the live iterator was not moved by the refused restore
        refused += 1
        shutil.rmtree(work)
    assert refused == 10
    # Follow the message's advice once: the bad step moved aside, the run resumes from step 2.
    work = tmp_path / "advice"
    shutil.copytree(pristine, work)
    victim = str(data).replace(str(pristine), str(work))
    blob = bytearray(open(victim, "rb").read())
    blob[size // 2] ^= 0x10
    open(victim, "wb").write(bytes(blob))
    with pytest.raises(CheckpointError) as err:
        Checkpointer(str(work)).restore(_random_state(), _Iter())
    command = str(err.value).split("`")[1]
    assert subprocess.run(command, shell=True).returncode == 0, command
    it = _Iter(b"{}")
    restored, _, meta = Checkpointer(str(work)).restore(_random_state(), it)
    assert int(restored.step) == 2 and meta["verified"] and it.state == b'{"pos": 2}'
    for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(s2.params)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("item, old, new, what", [
    ("data/process_0-of-1.json", b'{"pos": 4}', b'{"pos": 3}', "data position"),
    ("meta/metadata", b'"examples_seen": 16', b'"examples_seen": 12', "metadata"),
])
def test_edited_iterator_position_or_metadata_is_refused(tmp_path, item, old, new, what):
    from shiftlpips_jax._src.training.checkpointing import CheckpointError, Checkpointer

    _two_checkpoints(tmp_path)
    path = tmp_path / "checkpoints" / "4" / item
    text = path.read_bytes()
    assert old in text, text
    path.write_bytes(text.replace(old, new))
    it = _Iter(b"{}")
    with pytest.raises(CheckpointError, match=f"checkpoint step 4 .*{what}.*previous good "
                                              "checkpoint is step 2"):
        Checkpointer(str(tmp_path)).restore(_random_state(), it)
    assert it.state == b"{}"
    # The untouched earlier step still restores, verified.
    _, _, meta = Checkpointer(str(tmp_path)).restore(_random_state(), it, step=2)
    assert meta["verified"] and it.state == b'{"pos": 2}'


_DISK_FULL = r"""
import resource, signal, sys
import jax
sys.path.insert(0, sys.argv[2])
from test_train_faults import _Iter, _random_state
from shiftlpips_jax._src.training.checkpointing import CheckpointError, Checkpointer

state = _random_state()
ckpt = Checkpointer(sys.argv[1], keep=5)
ckpt.save(2, state, jax.random.key(0), _Iter(), meta={"examples_seen": 8})
ckpt.wait()
# From here on no file may grow past 20 kB: the small JSON items still fit, the 80 kB array
# data does not, so step 4 fails in the background writer, after save() has returned.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.RLIM_INFINITY))
ckpt.save(4, state, jax.random.key(0), _Iter(), meta={"examples_seen": 16})
print("save 4 returned", flush=True)
try:
    if sys.argv[3] == "next-save":
        ckpt.save(6, state, jax.random.key(0), _Iter(), meta={"examples_seen": 24})
    else:
        ckpt.wait()
except CheckpointError as err:
    print("ERROR:", err)
"""


@pytest.mark.parametrize("reported_by", ["next-save", "wait"])
def test_full_disk_message_names_the_failed_step(tmp_path, reported_by):
    r = subprocess.run([sys.executable, "-c", _DISK_FULL, str(tmp_path),
                        os.path.dirname(os.path.abspath(__file__)), reported_by],
                       cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    out = r.stdout
    assert "save 4 returned" in out, (out, r.stderr[-3000:])
    assert "ERROR: saving step 4 failed" in out, (out, r.stderr[-3000:])
    assert "File too large" in out and "previous checkpoint (step 2)" in out, out
    assert "step 6" not in out, out
    from shiftlpips_jax._src.training.checkpointing import Checkpointer
    again = Checkpointer(str(tmp_path))
    assert again.all_steps() == [2]
    _, _, meta = again.restore(_random_state(), _Iter())
    assert meta["verified"] and meta["examples_seen"] == 8


def _small_config(**overrides):
    sys.path.insert(0, REPO)
    from train.configs import tiny

    config = tiny.get_config()
    config.image_size = 32
    config.data.load_size = 32
    config.data.synthetic = 24
    config.batch_size = 4
    config.log_every = 1
    config.checkpoint_every = 2
    config.val_every = 0
    config.export = False
    config.keep_checkpoints = 5
    for k, v in overrides.items():
        setattr(config, k, v)
    return config


def test_corrupt_checkpoint_stops_the_resume_and_the_advice_resumes_identically(tmp_path):
    """A flipped bit in the newest checkpoint of a run: the resume stops naming it and the
    previous good one; after moving it aside as told, the resumed run ends with exactly the
    parameters of the uninterrupted run."""
    from shiftlpips_jax._src.training import loop
    from shiftlpips_jax._src.training.checkpointing import CheckpointError

    workdir = tmp_path / "run"
    straight = loop.train_and_evaluate(_small_config(max_steps=4), str(workdir))
    assert straight["step"] == 4
    data = _data_files(workdir / "checkpoints" / "4")[0]
    blob = bytearray(open(data, "rb").read())
    blob[len(blob) // 2] ^= 0x04
    open(data, "wb").write(bytes(blob))
    with pytest.raises(CheckpointError) as err:
        loop.train_and_evaluate(_small_config(max_steps=4), str(workdir))
    msg = str(err.value)
    assert "checkpoint step 4" in msg and "previous good checkpoint is step 2" in msg, msg
    assert subprocess.run(msg.split("`")[1], shell=True).returncode == 0
    resumed = loop.train_and_evaluate(_small_config(max_steps=4), str(workdir))
    assert resumed["step"] == 4
    for a, b in zip(jax.tree.leaves(straight["state"]), jax.tree.leaves(resumed["state"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_nan_after_an_unverified_resume_does_not_call_it_good(tmp_path):
    """A checkpoint without digests (an earlier version's) holding a NaN weight: it restores
    with a warning, the run stops on the NaN, and the message does not call that checkpoint
    good."""
    import shutil

    from shiftlpips_jax._src.training import loop
    from shiftlpips_jax._src.training.checkpointing import Checkpointer

    workdir = tmp_path / "run"
    first = loop.train_and_evaluate(_small_config(max_steps=2), str(workdir))
    ckpt = Checkpointer(str(workdir))
    position = _Iter(b"{}")
    state, key, meta = ckpt.restore(first["state"], position)
    assert meta["verified"]
    kernel = state.params["metric"]["lin0"]["kernel"]
    poisoned = state.replace(params={**state.params, "metric": {
        **state.params["metric"], "lin0": {"kernel": kernel.at[0, 0, 0, 0].set(jnp.nan)}}})
    meta = {k: v for k, v in meta.items() if k not in ("step", "verified")}
    ckpt.save(3, poisoned.replace(step=state.step + 1), key, position, meta=meta)
    ckpt.close()
    shutil.rmtree(workdir / "checkpoints" / "3" / "digest")  # as an earlier version wrote it
    with pytest.warns(UserWarning, match="step 3 .*no recorded digests"):
        with pytest.raises(NonFiniteLossError) as err:
            loop.train_and_evaluate(_small_config(max_steps=6), str(workdir))
    msg = str(err.value)
    assert "non-finite (NaN/inf) at step 4" in msg, msg
    assert "last good checkpoint" not in msg and "step 3" in msg and "not verified" in msg, msg
    assert "resumed from step 3" in msg, msg
