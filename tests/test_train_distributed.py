"""Data parallelism on fake CPU devices and across processes.

(b) On 4 fake devices the sharded train step (``jax.shard_map`` + ``lax.pmean``) equals the
    single-device step on the same global batch, dropout included (per-example keys), and the
    jitted step traces once.
(c) 2 processes x 2 devices, ``jax.distributed`` over 127.0.0.1 with gloo collectives, run the
    real training loop (``train_and_evaluate``: multi-host checkpoints, validation and export):
    the parameters are identical across processes and equal those of the same run on one
    process with 4 devices.

Each configuration runs in its own Python process (the device count is fixed at JAX start-up):
this file is also the worker, ``python tests/test_train_distributed.py <mode> ...``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from shared_helpers import free_port as _free_port, wait_ok

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
IMAGE = 32
GLOBAL_BATCH = 8
N_TRAIN = 48


def _env(devices: int, cache_dir: str | None = None) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    if cache_dir:
        env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    return env


def _run(args, devices, timeout=300, cache_dir=None):
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], cwd=REPO,
                            env=_env(devices, cache_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait(proc, timeout=400):
    return wait_ok(proc, timeout)


def test_sharded_step_equals_single_device_step(tmp_path):
    out = tmp_path / "step.json"
    _wait(_run(["step", str(out)], devices=4))
    r = json.loads(out.read_text())
    print(json.dumps(r))
    assert r["devices"] == 4
    np.testing.assert_allclose(r["loss_sharded"], r["loss_single"], rtol=1e-6)
    # Gradients agree to float32 reduction order; so do the updated parameters, except where a
    # gradient is within that rounding noise of 0 (Adam's sign-like step has no defined
    # direction there): those few entries may differ by at most Adam's step, 2 x lr.
    assert max(r["grad_rel_diff"]) <= 1e-4, r
    assert max(r["param_diff_outside_floor"]) <= 1e-6, r
    assert max(r["param_diff_at_floor"]) <= 2 * r["lr"], r
    assert max(r["floor_entries"]) <= 1e-4 * r["entries"], r
    assert r["moved"] > 1e-5                   # the steps did move the parameters
    assert r["dropout_changes_loss"]           # dropout is on: another key, another loss
    assert r["traces"] == {"single": 1, "sharded": 1}


def test_two_processes_equal_four_devices(tmp_path):
    port = _free_port()
    hosts = [_run(["loop", str(tmp_path / "multi"), "--pid", str(p), "--nproc", "2",
                   "--port", str(port)], devices=2) for p in range(2)]
    single = _run(["loop", str(tmp_path / "single")], devices=4)
    logs = [_wait(h) for h in hosts] + [_wait(single)]
    p0 = np.load(tmp_path / "multi" / "params_0.npz")
    p1 = np.load(tmp_path / "multi" / "params_1.npz")
    ref = np.load(tmp_path / "single" / "params_0.npz")
    assert sorted(p0.files) == sorted(p1.files) == sorted(ref.files)
    for k in p0.files:
        np.testing.assert_array_equal(p0[k], p1[k], err_msg=f"processes disagree on {k}")
    worst = max(float(np.max(np.abs(p0[k] - ref[k]))) for k in ref.files)
    assert worst <= 1e-6, (worst, logs[0][-2000:])
    # The multi-host run checkpointed, validated and exported like the single-process one.
    meta = json.loads((tmp_path / "multi" / "result_0.json").read_text())
    assert meta["step"] == 6 and meta["checkpoints"] == [3, 6]
    assert os.path.isfile(tmp_path / "multi" / "metric" / "shiftlpips.json")
    import shiftlpips_jax as sl
    metric = sl.load(checkpoint=str(tmp_path / "multi" / "metric"))
    np.testing.assert_allclose(
        metric.variables["params"]["lin0"]["kernel"].reshape(-1),
        p0["metric/lin0/kernel"].reshape(-1), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# Workers.

def _source(n, seed=0):
    from shiftlpips_jax import data
    return data.synthetic_2afc(n, size=IMAGE, seed=seed)


def _tiny_config():
    sys.path.insert(0, REPO)
    from train.configs import tiny
    c = tiny.get_config()
    c.image_size = IMAGE
    c.data.load_size = IMAGE
    c.batch_size = GLOBAL_BATCH
    c.eval_batch_size = GLOBAL_BATCH
    c.max_steps = 6
    c.log_every = 3
    c.checkpoint_every = 3
    c.val_every = 6
    c.async_checkpoints = False
    c.data.shuffle = False  # the global batches must not depend on the process count
    return c


def worker_step(out_path):
    """Chains 3 single-device steps; from each state also takes the 4-device step and compares
    the two results (loss, gradient, parameters)."""
    import jax
    import jax.numpy as jnp

    import shiftlpips_jax as sl
    from shiftlpips_jax._src.training import init, objective, optim, state as st
    from shiftlpips_jax.training import step as stp

    model = sl.LPIPS(net=sl.make_backbone("alex", "vanilla"))
    rank = objective.RankNet()
    v = init.init_metric_variables(model, "alex", jax.random.key(1), image_size=IMAGE)
    params = {"metric": v["params"],
              "rank": rank.init(jax.random.key(2), jnp.ones(1), jnp.ones(1))["params"]}
    lr = 1e-4
    sched = optim.make_schedule(base_lr=lr, global_batch=GLOBAL_BATCH, num_train=N_TRAIN,
                                nepoch=5, nepoch_decay=5)
    tx = optim.make_optimizer(params, train_trunk=True, schedule=sched)
    src = _source(3 * GLOBAL_BATCH)
    batches = [{k: np.stack([src[i][k] for i in range(j * GLOBAL_BATCH, (j + 1) * GLOBAL_BATCH)])
                for k in ("ref", "p0", "p1", "judge")} for j in range(3)]
    key = jax.random.key(0)
    meshes = {"single": stp.make_mesh(jax.devices()[:1]), "sharded": stp.make_mesh(jax.devices())}
    steps = {n: stp.make_train_step(model, rank, tx, m, clamp=optim.clamp_mask(params),
                                    schedule=sched, donate=False, return_grads=True)
             for n, m in meshes.items()}
    state = st.TrainState.create(params=params, batch_stats={}, tx=tx)
    report = {"loss_single": [], "loss_sharded": [], "grad_rel_diff": [],
              "param_diff_outside_floor": [], "param_diff_at_floor": [], "floor_entries": []}
    for b in batches:
        out = {}
        for n, mesh in meshes.items():
            s_n, m_n = steps[n](stp.replicate(mesh, state), stp.shard_batch(mesh, b), key)
            out[n] = jax.device_get((s_n, m_n))
        (s1, m1), (s4, m4) = out["single"], out["sharded"]
        report["loss_single"].append(float(m1["loss"]))
        report["loss_sharded"].append(float(m4["loss"]))
        g1, g4 = jax.tree.leaves(m1["grads"]), jax.tree.leaves(m4["grads"])
        p1, p4 = jax.tree.leaves(s1.params), jax.tree.leaves(s4.params)
        rel, inside, at_floor, floor_n = 0.0, 0.0, 0.0, 0
        for a1, a4, q1, q4 in zip(g1, g4, p1, p4):
            noise = np.max(np.abs(a1 - a4))
            rel = max(rel, noise / (np.max(np.abs(a1)) + 1e-30))
            floor = np.abs(a1) <= 2 * noise  # Adam's direction is rounding noise there
            d = np.abs(q1 - q4)
            inside = max(inside, float(np.max(d[~floor], initial=0.0)))
            at_floor = max(at_floor, float(np.max(d[floor], initial=0.0)))
            floor_n += int(np.sum(floor & (d > 1e-6)))
        report["grad_rel_diff"].append(float(rel))
        report["param_diff_outside_floor"].append(inside)
        report["param_diff_at_floor"].append(at_floor)
        report["floor_entries"].append(floor_n)
        state = s1
    report["entries"] = int(sum(np.size(x) for x in jax.tree.leaves(params)))
    moved = max(float(np.max(np.abs(a - b))) for a, b in
                zip(jax.tree.leaves(state.params), jax.tree.leaves(jax.device_get(params))))
    report["moved"] = moved
    s2, m2 = steps["single"](stp.replicate(meshes["single"], state),
                             stp.shard_batch(meshes["single"], batches[0]), jax.random.key(5))
    s3, m3 = steps["single"](stp.replicate(meshes["single"], state),
                             stp.shard_batch(meshes["single"], batches[0]), key)
    report["dropout_changes_loss"] = float(m2["loss"]) != float(m3["loss"])
    report["traces"] = {n: f._cache_size() for n, f in steps.items()}
    report["devices"] = jax.device_count()
    report["lr"] = lr
    json.dump(report, open(out_path, "w"))


def worker_loop(workdir, pid=None, nproc=None, port=None):
    import jax
    if nproc:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"127.0.0.1:{port}", nproc, pid)
    from flax import traverse_util

    from shiftlpips_jax._src.training import loop

    config = _tiny_config()
    full = _source(N_TRAIN)
    val = {"val/synthetic": _source(12, seed=3)}
    if nproc:
        # Process p holds rows [p*B/P, (p+1)*B/P) of every global batch, in order.
        per = GLOBAL_BATCH // nproc
        idx = [b * GLOBAL_BATCH + pid * per + j for b in range(N_TRAIN // GLOBAL_BATCH)
               for j in range(per)]
        train = full.subset(idx)
        config.data.shard_by_process = False
        val = {k: v for k, v in val.items()}
    else:
        train = full
    result = loop.train_and_evaluate(config, workdir, train_source=train, val_sources=val)
    params = traverse_util.flatten_dict(jax.device_get(result["state"].params), sep="/")
    p = jax.process_index()
    np.savez(os.path.join(workdir, f"params_{p}.npz"), **params)
    ckpts = sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints"))
                   if d.isdigit())
    with open(os.path.join(workdir, f"result_{p}.json"), "w") as fh:
        json.dump({"step": result["step"], "val": result["val"], "checkpoints": ckpts}, fh)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "step":
        worker_step(sys.argv[2])
    elif mode == "loop":
        import argparse
        ap = argparse.ArgumentParser()
        ap.add_argument("workdir")
        ap.add_argument("--pid", type=int)
        ap.add_argument("--nproc", type=int)
        ap.add_argument("--port", type=int)
        a = ap.parse_args(sys.argv[2:])
        worker_loop(a.workdir, a.pid, a.nproc, a.port)
    else:
        raise SystemExit(f"unknown mode {mode}")
