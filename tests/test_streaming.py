"""Streaming statistics: exact against NumPy over any batching, under jit, scan, devices, hosts.

The multi-device and multi-process checks run in their own Python processes (the device count
is fixed when JAX starts): this file is also the worker, ``python tests/test_streaming.py
<mode> ...``.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from shiftlpips_jax._src.errors import InputError
from shiftlpips_jax._src.streaming import (DistanceStats, merge_across_processes, pad_batch,
                                           student_t_cdf, student_t_quantile, summarize)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _data(n=1000, seed=0):
    # Distances are positive and skewed; an offset far from 0 exercises cancellation.
    rng = np.random.default_rng(seed)
    return (rng.lognormal(-2.0, 0.7, n) + 3.0).astype(np.float32)


def _batches(values, batch, seed=1, padding=np.nan):
    """Splits at random points into chunks of 1..batch rows, each padded to ``batch`` rows with
    garbage and masked."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(values):
        k = int(rng.integers(1, batch + 1))
        chunk = values[i:i + k]
        pad = np.full(batch - len(chunk), padding, np.float32)
        out.append((np.concatenate([chunk, pad]), np.arange(batch) < len(chunk)))
        i += k
    return out


def _to_unit(u8):
    return u8.astype(np.float32) / 127.5 - 1.0


def _numpy_stats(v):
    v = np.asarray(v, np.float64)
    return {"count": v.size, "mean": v.mean(), "std": v.std(ddof=1), "min": v.min(),
            "max": v.max()}


def _assert_stats(got, v, rtol=2e-6, exact_extremes=True):
    want = _numpy_stats(v)
    assert int(got["count"]) == want["count"]
    for k in ("mean", "std"):
        np.testing.assert_allclose(float(got[k]), want[k], rtol=rtol, err_msg=k)
    for k in ("min", "max"):
        if exact_extremes:                 # min and max of float32 values are exact
            assert float(got[k]) == want[k], k
        else:
            assert float(got[k]) == pytest.approx(want[k], rel=rtol), k


def _same_state(a, b, rtol=1e-6):
    assert int(a.count) == int(b.count)
    for k in ("mean", "m2", "min", "max"):
        np.testing.assert_allclose(float(getattr(a, k)), float(getattr(b, k)), rtol=rtol,
                                   err_msg=k)


# --------------------------------------------------------------------------- single process
def test_jitted_updates_over_random_masked_batches_equal_numpy():
    v = _data()
    step = jax.jit(lambda s, d, m: s.update(d, m))
    stats = DistanceStats.empty()
    for d, m in _batches(v, 16):          # NaN padding: must not leak into any statistic
        stats = step(stats, d, m)
    assert step._cache_size() == 1        # one shape, one program
    _assert_stats(jax.device_get(stats.compute()), v)
    s, ref = stats.summary(), summarize(v)
    assert s["count"] == ref["count"] == 1000
    for k in ("mean", "std", "min", "max"):
        assert s[k] == pytest.approx(ref[k], rel=2e-6), k
    np.testing.assert_allclose(s["ci95"], ref["ci95"], rtol=2e-6)


def test_float32_state_is_stable_where_naive_sums_cancel():
    # Values 1000 + small noise: sum(d^2) - n mean^2 in float32 loses every digit of the
    # variance; the (count, mean, m2) state keeps it.
    rng = np.random.default_rng(3)
    v = (1000.0 + rng.normal(0.0, 0.01, 4096)).astype(np.float32)
    stats = DistanceStats.empty()
    for d, m in _batches(v, 64, seed=4):
        stats = stats.update(d, m)
    np.testing.assert_allclose(float(stats.compute()["std"]), np.std(v.astype(np.float64), ddof=1),
                               rtol=1e-3)
    naive = (np.sum(v ** 2, dtype=np.float32) - v.size * np.mean(v, dtype=np.float32) ** 2)
    assert abs(math.sqrt(abs(naive) / (v.size - 1)) - 0.01) > 0.01   # the naive way is off


def test_lax_scan_over_stacked_batches():
    v = _data(777, seed=5)
    bs = _batches(v, 32, seed=6)
    ds = np.stack([d for d, _ in bs])
    ms = np.stack([m for _, m in bs])

    @jax.jit
    def run(ds, ms):
        stats, _ = jax.lax.scan(lambda s, dm: (s.update(*dm), None), DistanceStats.empty(),
                                (ds, ms))
        return stats.compute()

    _assert_stats(jax.device_get(run(ds, ms)), v)


def test_merge_is_associative_commutative_and_empty_is_identity():
    parts = [DistanceStats.from_model_output(d, m) for d, m in _batches(_data(300), 50)][:6]
    a, b, c = parts[0].merge(parts[1]), parts[2], parts[3].merge(parts[4])
    _same_state(a.merge(b).merge(c), a.merge(b.merge(c)))
    _same_state(a.merge(b), b.merge(a))
    e = DistanceStats.empty()
    for x in (a, b):
        for y in (x.merge(e), e.merge(x)):
            assert jax.tree.all(jax.tree.map(lambda p, q: bool(jnp.array_equal(p, q)), x, y))
    assert int(e.merge(e).count) == 0


def test_reduce_of_a_stack_equals_sequential_merges():
    bs = _batches(_data(500, seed=7), 40, seed=8)
    parts = [DistanceStats.from_model_output(d, m) for d, m in bs]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *parts)
    seq = DistanceStats.empty()
    for p in parts:
        seq = seq.merge(p)
    _same_state(stacked.reduce(), seq)
    # vmap builds the same stack from the batches directly.
    vm = jax.vmap(DistanceStats.from_model_output)(np.stack([d for d, _ in bs]),
                                                   np.stack([m for _, m in bs]))
    _same_state(jax.jit(DistanceStats.reduce)(vm), seq)
    with pytest.raises(InputError, match="call .reduce"):
        stacked.summary()
    with pytest.raises(InputError, match="stack of states"):
        seq.reduce()


def test_masks_padding_and_special_values():
    d = np.array([[1.0, 2.0], [np.nan, np.inf], [3.0, 5.0]], np.float32)
    row_mask = np.array([True, False, True])           # a (batch,) mask over (batch, k) values
    got = jax.device_get(DistanceStats.from_model_output(d, row_mask).compute())
    _assert_stats(got, [1.0, 2.0, 3.0, 5.0])
    got = DistanceStats.from_model_output(d, np.array([1, 0, 1], np.int32)).summary()
    assert got["count"] == 4                              # 0/1 masks work too
    # Unmasked NaN propagates: a NaN distance is a bug to see, not to hide.
    assert math.isnan(float(DistanceStats.from_model_output(d).compute()["mean"]))
    none = DistanceStats.from_model_output(np.zeros((0,), np.float32)).summary()
    assert none["count"] == 0 and math.isnan(none["mean"]) and math.isnan(none["max"])
    all_masked = DistanceStats.from_model_output(d, np.zeros(3, bool))
    assert int(all_masked.count) == 0 and float(all_masked.min) == np.inf
    empty = DistanceStats.empty().compute()
    assert int(empty["count"]) == 0 and all(math.isnan(float(empty[k]))
                                            for k in ("mean", "std", "min", "max"))
    one = DistanceStats.from_model_output(np.float32(0.25)).summary()
    assert one["count"] == 1 and one["mean"] == one["min"] == one["max"] == 0.25
    assert math.isnan(one["std"]) and all(math.isnan(x) for x in one["ci95"])
    for bad_mask in (np.ones(4, bool), np.ones((3, 3), bool)):
        with pytest.raises(InputError, match="does not fit values of shape"):
            DistanceStats.from_model_output(d, bad_mask)
    with pytest.raises(InputError, match="real numbers"):
        DistanceStats.from_model_output(np.ones(3, np.complex64))
    with pytest.raises(InputError, match="array of real numbers"):
        DistanceStats.from_model_output(["a", "b"])


def test_summarize_definitions():
    v = _data(12, seed=9).astype(np.float64)
    s = summarize(v)
    assert s["count"] == 12
    assert s["std"] == pytest.approx(np.std(v, ddof=1), rel=1e-12)
    lo, hi = scipy.stats.t.interval(0.95, 11, loc=v.mean(), scale=scipy.stats.sem(v))
    np.testing.assert_allclose(s["ci95"], [lo, hi], rtol=1e-10)
    assert (s["min"], s["max"]) == (v.min(), v.max())
    assert all(type(s[k]) is float for k in ("mean", "std", "min", "max"))
    assert type(s["count"]) is int and all(type(x) is float for x in s["ci95"])
    json.dumps(s)                                          # plain Python numbers
    m = np.arange(12) % 3 != 0
    assert summarize(v, mask=m) == summarize(v[m])
    assert summarize(v.reshape(3, 4), mask=m.reshape(3, 4)) == summarize(v[m])
    e = summarize([])
    assert e["count"] == 0 and math.isnan(e["mean"]) and math.isnan(e["ci95"][0])
    with pytest.raises(InputError, match="real numbers"):
        summarize(["x", "y"])
    with pytest.raises(InputError, match="does not fit"):
        summarize(v, mask=np.ones(5, bool))


def test_student_t_quantile_and_cdf_against_scipy():
    worst = 0.0
    for df in (1, 2, 3, 4, 5, 7, 10, 19, 30, 99, 100, 101, 1000, 1e4, 1e5, 1e6, 1e8, 0.5, 2.5):
        for p in (1e-10, 0.001, 0.025, 0.3, 0.5001, 0.6, 0.9, 0.975, 0.995, 0.999999):
            want = scipy.stats.t.ppf(p, df)
            worst = max(worst, abs(student_t_quantile(p, df) - want) / abs(want))
        for t in (-40.0, -3.0, -0.1, 0.0, 0.5, 2.0, 40.0):
            assert student_t_cdf(t, df) == pytest.approx(scipy.stats.t.cdf(t, df), abs=1e-10)
    assert worst < 1e-8, worst
    # Closed forms: df = 1 (Cauchy) and df = 2.
    for p in (0.6, 0.975, 0.999):
        assert student_t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)),
                                                         rel=1e-12)
        assert student_t_quantile(p, 2) == pytest.approx(
            (2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-12)
    assert student_t_quantile(0.5, 3) == 0.0
    # Large df: the Cornish-Fisher expansion around the normal quantile z.
    z, df = 1.959963984540054, 1e6
    cf = z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
    assert student_t_quantile(0.975, df) == pytest.approx(cf, rel=1e-9)
    for bad in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(InputError, match="probability"):
            student_t_quantile(bad, 3)
    for bad_df in (0, -1, float("inf")):
        with pytest.raises(InputError, match="degrees of freedom"):
            student_t_quantile(0.9, bad_df)


def test_pad_batch():
    batch = {"x": np.ones((3, 2, 2), np.uint8), "y": np.arange(3.0)}
    padded, mask = pad_batch(batch, 5)
    assert padded["x"].shape == (5, 2, 2) and padded["x"].dtype == np.uint8
    np.testing.assert_array_equal(padded["y"], [0, 1, 2, 0, 0])
    np.testing.assert_array_equal(mask, [True, True, True, False, False])
    same, full = pad_batch(batch, 3)
    assert same["x"] is batch["x"] or np.array_equal(same["x"], batch["x"])
    assert full.all()
    with pytest.raises(InputError, match="same leading"):
        pad_batch({"x": np.ones(3), "y": np.ones(4)}, 5)
    with pytest.raises(InputError, match="cannot pad a batch of 3 rows to 2"):
        pad_batch(batch, 2)


def test_inside_a_clu_collection():
    import clu.metrics

    v = _data(200, seed=10)
    bs = _batches(v, 25, seed=11)
    Metrics = clu.metrics.Collection.create(dist=DistanceStats, loss=clu.metrics.Average)

    @jax.jit
    def step(col, d, m):
        return col.merge(Metrics.single_from_model_output(values=d, mask=m))

    col = Metrics.empty()
    for d, m in bs:
        col = step(col, d, m)
    out = jax.device_get(col.compute())
    _assert_stats(out["dist"], v)
    assert float(out["loss"]) == pytest.approx(float(np.mean(v)), rel=1e-5)   # CLU's own
    # from_output: the values arrive under another name, as in CLU.
    Named = clu.metrics.Collection.create(d=DistanceStats.from_output("distance"))
    col = Named.empty()
    for d, m in bs:
        col = col.merge(Named.single_from_model_output(distance=d, mask=m))
    _assert_stats(jax.device_get(col.compute())["d"], v)
    with pytest.raises(InputError, match="'distance' is missing"):
        Named.single_from_model_output(values=bs[0][0])


def test_merge_across_processes_is_the_identity_on_one_process():
    s = DistanceStats.from_model_output(_data(10))
    assert merge_across_processes(s) is s


# ------------------------------------------------------------------- devices and processes
def _env(devices):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _spawn(args, devices):
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], cwd=REPO,
                            env=_env(devices), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _wait(proc, timeout=300):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError("worker timed out:\n" + out[-4000:])
    assert proc.returncode == 0, out[-4000:]
    return out


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


N_GLOBAL = 4 * 16 * 5 + 4 * 7    # 5 full global batches of 64 and a short one of 28


def _global_values():
    return _data(N_GLOBAL, seed=12)


def test_shard_map_on_four_devices_equals_numpy(tmp_path):
    out = tmp_path / "devices.json"
    _wait(_spawn(["devices", str(out)], devices=4))
    r = json.loads(out.read_text())
    assert r["devices"] == 4
    v = _global_values()
    for key in ("all_reduce", "all_gather_reduce", "clu_gather"):
        _assert_stats(r[key], v)
    assert r["traces"] == 1
    # The model itself sharded over 4 devices gives the statistics of the 1-device distances.
    _assert_stats(r["model_sharded"], r["model_single"], rtol=1e-5, exact_extremes=False)
    assert r["replicated"]        # the result of all_reduce is the same on every device


def test_two_processes_with_gloo_equal_numpy(tmp_path):
    port = _free_port()
    procs = [_spawn(["processes", str(tmp_path / f"p{p}.json"), str(p), "2", str(port)],
                    devices=2) for p in range(2)]
    logs = [_wait(p) for p in procs]
    r0, r1 = (json.loads((tmp_path / f"p{p}.json").read_text()) for p in range(2))
    v = _global_values()
    for r in (r0, r1):
        assert r["processes"] == 2 and r["devices"] == 4, logs
        assert r["local_count"] < len(v)                       # each saw only its share
        _assert_stats(r["gathered"], v)
        _assert_stats(r["global_shard_map"], v)
    assert r0["gathered"] == r1["gathered"]                      # identical on both processes
    assert r0["global_shard_map"] == r1["global_shard_map"]
    assert r0["local_count"] + r1["local_count"] == len(v)
    assert r0["refused_global"] and r1["refused_global"]


# ------------------------------------------------------------------ README example (tested)
def test_readme_example_grain_dataset(metrics):
    import grain

    from shiftlpips_jax._src.streaming import DistanceStats, pad_batch

    rng = np.random.default_rng(13)
    targets = rng.integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    noise = rng.integers(-20, 21, targets.shape)
    outputs = np.clip(targets.astype(int) + noise, 0, 255).astype(np.uint8)

    # --- README: evaluating a model's outputs against ground truth over a grain dataset ---
    metric = metrics[("alex", "shift_tolerant")]     # README: sl.load("alex")
    batch_size = 4
    dataset = (grain.MapDataset.source(np.arange(len(outputs)))
               .map(lambda i: {"output": outputs[i], "target": targets[i]})
               .batch(batch_size))

    @jax.jit
    def eval_step(variables, stats, batch, mask):
        x = batch["output"].astype(jnp.float32) / 127.5 - 1.0      # uint8 -> [-1, 1]
        y = batch["target"].astype(jnp.float32) / 127.5 - 1.0
        d = metric.module.apply(variables, x, y)                    # (batch,)
        return stats.update(d, mask)

    stats = DistanceStats.empty()
    for batch in dataset:
        batch, mask = pad_batch(batch, batch_size)   # the last batch is short: pad and mask
        stats = eval_step(metric.variables, stats, batch, mask)
    summary = stats.summary()            # {"count", "mean", "std", "ci95", "min", "max"}
    # --- end of README example ---

    assert eval_step._cache_size() == 1
    want = np.asarray(metric(_to_unit(outputs), _to_unit(targets)), np.float64)
    ref = summarize(want)
    assert summary["count"] == 10
    for k in ("mean", "std", "min", "max"):
        assert summary[k] == pytest.approx(ref[k], rel=1e-5), k
    np.testing.assert_allclose(summary["ci95"], ref["ci95"], rtol=1e-4)


def test_readme_example_tfds_data_source(metrics, tmp_path):
    import grain

    from bapps_fixture import make_2afc
    from shiftlpips_jax import data
    from shiftlpips_jax._src.streaming import DistanceStats, pad_batch

    make_2afc(tmp_path / "manual" / "2afc", {"val/cnn": 7}, size=64, seed=14)
    builder = data.build_2afc_tfds(tmp_path / "manual", tmp_path / "tfds", load_size=64)
    metric = metrics[("alex", "shift_tolerant")]

    # --- README: the same over a TFDS data source (random access, ArrayRecord) ---
    source = builder.as_data_source()["val_cnn"]     # or tfds.data_source(name, split=...)
    batch_size = 4
    dataset = (grain.MapDataset.source(source)
               .map(lambda ex: {"output": ex["p0"], "target": ex["ref"]})
               .batch(batch_size))

    @jax.jit
    def eval_step(variables, stats, batch, mask):
        x = batch["output"].astype(jnp.float32) / 127.5 - 1.0
        y = batch["target"].astype(jnp.float32) / 127.5 - 1.0
        return stats.update(metric.module.apply(variables, x, y), mask)

    stats = DistanceStats.empty()
    for batch in dataset:
        batch, mask = pad_batch(batch, batch_size)
        stats = eval_step(metric.variables, stats, batch, mask)
    # --- end ---

    folder = data.read_2afc(tmp_path / "manual" / "2afc", ["val/cnn"], load_size=64)
    p0 = np.stack([folder[i]["p0"] for i in range(len(folder))])
    ref = np.stack([folder[i]["ref"] for i in range(len(folder))])
    want = summarize(np.asarray(metric(_to_unit(p0), _to_unit(ref))))
    got = stats.summary()
    assert got["count"] == 7
    for k in ("mean", "std", "min", "max"):
        assert got[k] == pytest.approx(want[k], rel=1e-5), k


# --------------------------------------------------------------------------------- workers
def _as_json(stats_dict):
    return {k: (int(v) if k == "count" else float(v)) for k, v in
            jax.device_get(stats_dict).items()}


def _global_batches(values, global_batch):
    out = []
    for i in range(0, len(values), global_batch):
        d, m = pad_batch(values[i:i + global_batch], global_batch)
        out.append((d.astype(np.float32), m))
    return out


def worker_devices(out_path):
    from jax import lax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import clu.metrics

    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    rows = NamedSharding(mesh, P("data"))
    report = {"devices": jax.device_count()}

    def per_device(stats, d, m):
        return stats.merge(DistanceStats.from_model_output(d, m).all_reduce("data"))

    step = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P("data"), P("data")),
                                 out_specs=P()))
    # The CLU way (lax.all_gather, then reduce): its output is not known to be replicated, so
    # shard_map's replication check must be off for out_specs=P().
    gather = jax.jit(jax.shard_map(
        lambda d, m: lax.all_gather(DistanceStats.from_model_output(d, m), "data").reduce(),
        mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P(), check_vma=False))
    Metrics = clu.metrics.Collection.create(dist=DistanceStats)
    clu_gather = jax.jit(jax.shard_map(
        lambda d, m: Metrics.gather_from_model_output(axis_name="data", values=d, mask=m),
        mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P(), check_vma=False))

    # The running state lives replicated on the mesh from the start: one input sharding, so
    # the step compiles once.
    stats = jax.device_put(DistanceStats.empty(), NamedSharding(mesh, P()))
    gathered, col = DistanceStats.empty(), Metrics.empty()
    # One collective program in flight at a time: this checks the statistics, not dispatch.
    # Dispatched asynchronously, the three independent programs hung once on XLA:CPU (CI,
    # 2026-12-02, 2-core EPYC: "all gather ... Expected 4 threads to join the rendezvous, but
    # only 2 of them arrived on time", then abort) -- a collective waits for a thread per
    # device, and the client's thread pool on 2 cores has little more than one per device.
    for d, m in _global_batches(_global_values(), 64):
        d, m = jax.device_put(d, rows), jax.device_put(m, rows)
        stats = jax.block_until_ready(step(stats, d, m))
        gathered = gathered.merge(jax.block_until_ready(gather(d, m)))
        col = col.merge(jax.block_until_ready(clu_gather(d, m)))
    report["traces"] = step._cache_size()
    report["replicated"] = all(
        len({float(s.data) for s in leaf.addressable_shards}) == 1 for leaf in
        jax.tree.leaves(stats) if leaf.dtype == jnp.float32)
    report["all_reduce"] = _as_json(stats.compute())
    report["all_gather_reduce"] = _as_json(gathered.compute())
    report["clu_gather"] = _as_json(col.compute()["dist"])

    # The whole evaluation step as a user writes it: the model inside shard_map, 10 image
    # pairs in global batches of 8 (the last one padded and masked).
    import shiftlpips_jax as sl
    metric = sl.load("alex")
    rng = np.random.default_rng(15)
    xs = rng.uniform(-1, 1, (10, 64, 64, 3)).astype(np.float32)
    ys = np.clip(xs + rng.normal(0, 0.2, xs.shape), -1, 1).astype(np.float32)

    def model_step(variables, stats, x, y, m):
        d = metric.module.apply(variables, x, y)
        return stats.merge(DistanceStats.from_model_output(d, m).all_reduce("data"))

    model_step = jax.jit(jax.shard_map(model_step, mesh=mesh,
                                       in_specs=(P(), P(), P("data"), P("data"), P("data")),
                                       out_specs=P()))
    variables = jax.device_put(metric.variables, NamedSharding(mesh, P()))
    stats = jax.device_put(DistanceStats.empty(), NamedSharding(mesh, P()))
    for i in range(0, 10, 8):
        (x, y), m = pad_batch((xs[i:i + 8], ys[i:i + 8]), 8)
        stats = model_step(variables, stats, jax.device_put(x, rows), jax.device_put(y, rows),
                           jax.device_put(m, rows))
    report["model_sharded"] = _as_json(stats.compute())
    report["model_single"] = np.asarray(metric(xs, ys), np.float64).tolist()
    with open(out_path, "w") as fh:
        json.dump(report, fh)


def worker_processes(out_path, pid, nproc, port):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", int(nproc), int(pid))
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    pid, nproc = jax.process_index(), jax.process_count()
    values = _global_values()
    report = {"processes": nproc, "devices": jax.device_count()}

    # (1) Each process evaluates its own share on its own devices, then the states meet.
    mine = values[pid::nproc]
    local = DistanceStats.empty()
    step = jax.jit(lambda s, d, m: s.update(d, m))
    for d, m in _global_batches(mine, 16):
        local = step(local, d, m)
    report["local_count"] = int(local.count)
    report["gathered"] = _as_json(merge_across_processes(local).compute())

    # (2) One global program over every device of every process: each process feeds its rows
    # of each global batch; all_reduce over "data" spans the processes.
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    rows = NamedSharding(mesh, P("data"))
    shard = jax.jit(jax.shard_map(
        lambda s, d, m: s.merge(DistanceStats.from_model_output(d, m).all_reduce("data")),
        mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=P()))
    stats = DistanceStats.empty()
    per = 64 // nproc
    for d, m in _global_batches(values, 64):
        d = jax.make_array_from_process_local_data(rows, d[pid * per:(pid + 1) * per])
        m = jax.make_array_from_process_local_data(rows, m[pid * per:(pid + 1) * per])
        stats = shard(stats, d, m)
    report["global_shard_map"] = {k: v for k, v in stats.summary().items() if k != "ci95"}
    try:
        merge_across_processes(stats)
        report["refused_global"] = False
    except InputError:
        report["refused_global"] = True
    with open(out_path, "w") as fh:
        json.dump(report, fh)
    jax.distributed.shutdown()


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    {"devices": worker_devices, "processes": worker_processes}[mode](*rest)
