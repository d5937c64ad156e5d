"""``train_and_evaluate(config, workdir)``: the whole run, resumable, multi-host.

Order of initialisation: resume from ``WORKDIR/checkpoints`` if a checkpoint exists
(state, optimiser, data position, rng); else build the model and load ``config.init_from`` (a
pretrained trunk); else start from scratch with PyTorch-style init. Then, every step: a host-local
batch from grain -> a global array sharded on ``"data"`` -> the pure train step. Metrics stay on
device until a log step; log steps write ``WORKDIR/metrics.jsonl`` and a progress line with
triplets/s and ETA; checkpoint steps save asynchronously; validation steps score 2AFC on the val
sets. A non-finite loss stops the run (:class:`NonFiniteLossError`) before anything past it is
saved. At the end the metric is exported to ``WORKDIR/metric`` (``sl.weights.save_metric``), which
``sl.load(checkpoint=...)`` and ``shiftlpips eval ROOT --checkpoint ...`` read.

Example::

    from train.configs import alex_shift_tolerant
    result = train_and_evaluate(alex_shift_tolerant.get_config(), "runs/alex_st")
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shiftlpips_jax._src import outputs
from shiftlpips_jax._src.backbones import make_backbone
from shiftlpips_jax._src.data.pipeline import make_loader
from shiftlpips_jax._src.errors import DataError, InputError, NonFiniteLossError
from shiftlpips_jax._src.lpips import LPIPS
from shiftlpips_jax._src.progress import format_interval, progress_bar, write_line
from shiftlpips_jax._src.training import checkpointing, init as init_lib, input_pipeline
from shiftlpips_jax._src.training import objective, optim
from shiftlpips_jax._src.training import state as state_lib
from shiftlpips_jax._src.weights.checkpoint import save_metric
from shiftlpips_jax.training import step as step_lib

__all__ = ["train_and_evaluate", "build_model", "MetricsLog"]


class MetricsLog:
    """Append-only JSONL log (``WORKDIR/metrics.jsonl``), written by process 0 only.

    On resume, entries past the restored step are dropped (they belong to the lost tail of the
    interrupted run, which is recomputed identically).
    """

    def __init__(self, workdir: str, *, enabled: bool, resume_step: int = 0):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.enabled = enabled
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        if os.path.exists(self.path):
            kept = []
            with open(self.path) as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut by a crash
                    if entry.get("step", 0) <= resume_step:
                        kept.append(line if line.endswith("\n") else line + "\n")
            outputs.atomic_write_text(self.path, "".join(kept), user_error=False)

    def write(self, entry: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")


def build_model(config) -> LPIPS:
    """The LPIPS module of a training config.

    Args:
      config: the run's config (``net``, ``variant``, ``knobs``, ``dtype``, ``dropout``).

    Returns:
      The (untrained) :class:`LPIPS` module.
    """
    knobs = dict(config.get("knobs", {}) or {})
    dtype = jnp.dtype(config.get("dtype", "float32"))
    backbone = make_backbone(config.net, config.variant, dtype=dtype, **knobs)
    return LPIPS(net=backbone, use_dropout=bool(config.dropout))


def _validate(config, per_host: int):
    n_dev, n_proc = jax.device_count(), jax.process_count()
    if config.batch_size % n_dev:
        raise InputError(f"batch_size {config.batch_size} must divide evenly over the "
                         f"{n_dev} devices of the mesh")
    if config.eval_batch_size % n_dev:
        raise InputError(f"eval_batch_size {config.eval_batch_size} must divide over {n_dev} "
                         "devices")
    if per_host * n_proc != config.batch_size:
        raise InputError(f"batch_size {config.batch_size} must divide over {n_proc} processes")
    if not config.train_trunk and not config.init_from:
        raise InputError("train_trunk=False freezes the trunk: give a pretrained one with "
                         "init_from=<metric dir> or init_from='registry:alex'")
    if config.clamp not in optim.CLAMP_RULES:
        raise InputError(f"clamp must be one of {optim.CLAMP_RULES}, got {config.clamp!r}")


def _fresh_state(config, model, rank_model, key):
    """Initial variables: PyTorch-style random init, then ``init_from``'s trunk if given."""
    k_metric, k_rank = jax.random.split(jax.random.fold_in(key, 0x1417))
    variables = init_lib.init_metric_variables(model, config.net, k_metric,
                                               image_size=config.image_size)
    if config.init_from:
        trunk = init_lib.load_trunk(config.init_from)
        variables = init_lib.merge_trunk(variables, trunk, source=config.init_from)
    rank_params = rank_model.init(k_rank, jnp.zeros((1,)), jnp.zeros((1,)))["params"]
    params = {"metric": variables["params"], "rank": rank_params}
    return params, variables.get("batch_stats", {})


def _log(primary: bool, msg: str) -> None:
    if primary:  # above the progress bar, if one is drawn
        write_line(msg)


def _meta(config, num_train: int) -> dict:
    return {"global_batch": int(config.batch_size), "num_train": int(num_train),
            "net": config.net, "variant": config.variant, "train_trunk": bool(config.train_trunk),
            "process_count": jax.process_count()}


def evaluate(eval_step, mesh, variables, val_sources: dict, *, per_host_batch: int,
             shard_by_process: bool) -> dict[str, float]:
    """2AFC score per validation set (upstream ``score_2afc_dataset``) and their mean."""
    scores = {}
    for name, source in val_sources.items():
        total = count = 0.0
        pending = None
        shard = {} if shard_by_process else {"shard_index": 0, "shard_count": 1}
        for batch in make_loader(source, batch_size=per_host_batch, shuffle=False,
                                 pad_remainder=True, **shard):
            inputs = step_lib.shard_batch(mesh, batch) | {"mask": _shard(mesh, batch["mask"])}
            # One eval step in flight at a time (the next batch is read while it runs). The
            # steps do not depend on each other, and independent collective programs dispatched
            # together can deadlock on XLA:CPU: each waits for a thread per device, and the
            # client's pool on a small machine has little more than one per device
            # (tests/test_streaming.py saw it: a rendezvous where 2 of 4 threads arrived).
            if pending is not None:
                total, count = _add_scores(pending, total, count)
            pending = eval_step(variables, inputs)
        if pending is not None:
            total, count = _add_scores(pending, total, count)
        scores[f"val/2afc/{name}"] = total / max(count, 1.0)
    if scores:
        scores["val/2afc/mean"] = float(np.mean(list(scores.values())))
    return scores


def _add_scores(out, total: float, count: float) -> tuple[float, float]:
    s, c = jax.device_get((out["score_sum"], out["count"]))
    return total + float(s), count + float(c)


def _shard(mesh, x):
    from jax.sharding import NamedSharding, PartitionSpec as P
    return jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), x)


def _save_metric_single_process(export_dir, model, host_vars, kwargs):
    """Runs ``sl.weights.save_metric`` in a fresh single-process JAX (CPU only)."""
    import jax as jax_child

    jax_child.config.update("jax_platforms", "cpu")
    save_metric(export_dir, model, host_vars, overwrite=True, **kwargs)


def _export(config, workdir: str, model, variables, step: int, val: dict, primary: bool):
    export_dir = config.export_dir or os.path.join(workdir, "metric")
    extra = {"training": {"step": int(step), "config": json.loads(config.to_json_best_effort())
                          if hasattr(config, "to_json_best_effort") else {},
                          "val": val}}
    host_vars = jax.device_get(variables)
    kwargs = dict(net=config.net, variant=config.variant, extra=extra)
    if jax.process_count() == 1:
        save_metric(export_dir, model, host_vars, overwrite=True, **kwargs)
        return export_dir
    # Multi-host: the parameters are replicated, one writer suffices. Orbax's checkpointer would
    # synchronise with every process of this JAX cluster, so process 0 writes from a separate
    # single-process interpreter while the others wait at a barrier.
    from jax.experimental import multihost_utils

    if primary:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=_save_metric_single_process,
                           args=(export_dir, model, host_vars, kwargs))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"exporting the metric to {export_dir} failed "
                               f"(exit code {proc.exitcode}); the checkpoints are intact")
    multihost_utils.sync_global_devices("shiftlpips_export")
    return export_dir


def train_and_evaluate(config, workdir: str, *, train_source=None,
                       val_sources: dict | None = None) -> dict[str, Any]:
    """Trains (or resumes) the metric of ``config`` in ``workdir``.

    Args:
      config: an ``ml_collections.ConfigDict`` as returned by ``train/configs/*.py``.
      workdir: run directory (checkpoints, ``metrics.jsonl``, exported ``metric/``).
      train_source, val_sources: random-access 2AFC sources overriding ``config.data`` (tests,
        synthetic benchmarks); ``val_sources`` maps set names to sources.

    Returns:
      ``{"state", "step", "val", "export_dir", "history"}`` (``history``: logged train metrics).

    Raises:
      NonFiniteLossError: the loss or gradient became NaN/inf (last good checkpoint kept).
      CheckpointError, DataError, InputError (a ValueError: bad config).
    """
    primary = jax.process_index() == 0
    n_proc = jax.process_count()
    per_host = config.batch_size // n_proc
    _validate(config, per_host)
    shard_by_process = bool(config.data.shard_by_process)
    mesh = step_lib.make_mesh()

    if train_source is None:
        train_source = input_pipeline.open_2afc(config.data, config.data.train_sets)
    if val_sources is None:
        val_sources = ({s: input_pipeline.open_2afc(config.data, [s])
                        for s in config.data.val_sets} if config.val_every else {})
    num_train = len(train_source) * (1 if shard_by_process else n_proc)
    epochs = config.nepoch + config.nepoch_decay
    total_steps = (epochs * num_train) // config.batch_size
    if total_steps < 1:
        raise InputError(f"{num_train} training triplets give no full batch of "
                         f"{config.batch_size}")
    stop_at = min(total_steps, config.max_steps) if config.max_steps > 0 else total_steps

    model = build_model(config)
    rank_model = objective.RankNet()
    key = jax.random.key(config.seed)
    params, batch_stats = _fresh_state(config, model, rank_model, key)
    schedule = optim.make_schedule(base_lr=config.lr, global_batch=config.batch_size,
                                   num_train=num_train, nepoch=config.nepoch,
                                   nepoch_decay=config.nepoch_decay)
    tx = optim.make_optimizer(params, train_trunk=config.train_trunk, schedule=schedule,
                              b1=config.b1, b2=config.b2)
    state = step_lib.replicate(mesh, state_lib.TrainState.create(
        params=params, batch_stats=batch_stats, tx=tx))
    data_it = input_pipeline.train_iterator(
        train_source, per_host_batch=per_host, seed=config.seed, shard_by_process=shard_by_process,
        shuffle=config.data.get("shuffle", True), worker_count=config.data.worker_count,
        read_threads=config.data.read_threads)

    ckpt = checkpointing.Checkpointer(workdir, keep=config.keep_checkpoints,
                                      async_save=config.async_checkpoints)
    meta_now = _meta(config, num_train)
    resumed_from = None
    if ckpt.latest_step() is not None:
        state, saved_key, meta = ckpt.restore(state, data_it)
        for k in ("global_batch", "num_train", "net", "variant", "train_trunk"):
            if meta.get(k) != meta_now[k]:
                raise checkpointing.CheckpointError(
                    f"{ckpt.directory} holds a run with {k}={meta.get(k)!r}; this config has "
                    f"{meta_now[k]!r}. Use a new --workdir (or the original settings).")
        key = step_lib.replicate(mesh, saved_key)
        resumed_from = int(meta["step"])
        _log(primary, f"resumed from step {resumed_from} in {ckpt.directory} "
                      + ("(digests verified)" if meta["verified"] else
                         "(not verified: written without digests)"))
    else:
        key = step_lib.replicate(mesh, key)
        _log(primary, f"starting {'from ' + config.init_from if config.init_from else 'from scratch'}"
                      f": {config.net}/{config.variant}, {num_train} triplets, "
                      f"{total_steps} steps of {config.batch_size} ({epochs} epochs) on "
                      f"{jax.device_count()} device(s) / {n_proc} process(es)")
    step = int(jax.device_get(state.step))

    train_step = step_lib.make_train_step(
        model, rank_model, tx, mesh, clamp=optim.clamp_mask(params, config.clamp),
        trainable=optim.trainable_labels(params, train_trunk=config.train_trunk),
        dropout=config.dropout, schedule=schedule)
    eval_step = step_lib.make_eval_step(model, mesh)
    log = MetricsLog(workdir, enabled=primary, resume_step=step)
    history: list[dict] = []
    val_scores: dict = {}
    pending: list = []
    t_start, step_at_start = None, step
    bar = None  # steps done and ETA on a terminal (stderr), from the step after compilation

    def check_finite():
        bad = int(jax.device_get(state.bad_step))
        if bad >= 0:
            # Only a checkpoint this run wrote (after the same check) or restored and verified
            # is called good; the pending one, if any, is waited for first.
            good = ckpt.good_step()
            if good is not None:
                kept = f"the last good checkpoint is step {good} in {ckpt.directory}"
            elif ckpt.latest_step() is not None:
                kept = (f"the latest checkpoint, step {ckpt.latest_step()} in {ckpt.directory}, "
                        "is not verified (written without digests)")
            else:
                kept = "no checkpoint was written before it"
            start = (f"this run resumed from step {resumed_from}" if resumed_from is not None
                     else "this run started fresh")
            raise NonFiniteLossError(
                f"loss or gradient became non-finite (NaN/inf) at step {bad + 1}; stopped "
                f"(that update was not applied), {kept}. Possible causes: a learning rate too "
                f"high for this model (lr={config.lr}), bad data around that step, or a bad "
                f"initial state ({start}).")

    def run_validation():
        nonlocal val_scores
        variables = state_lib.metric_variables(state)
        val_scores = evaluate(eval_step, mesh, variables, val_sources,
                              per_host_batch=config.eval_batch_size // n_proc,
                              shard_by_process=shard_by_process)
        if val_scores:
            log.write({"step": step, **val_scores})
            _log(primary, f"[step {step}] " + " ".join(f"{k[9:]} {v:.4f}"
                                                       for k, v in val_scores.items()))

    try:
        while step < stop_at:
            try:
                batch = next(data_it)
            except StopIteration as err:
                raise DataError("the training iterator ended") from err
            except Exception as err:  # noqa: BLE001 - name the step; the data module names the file
                raise DataError(
                    f"reading the training batch for step {step + 1} failed: "
                    f"{type(err).__name__}: {err}") from err
            batch = input_pipeline.check_batch(batch, per_host_batch=per_host, step=step + 1)
            state, metrics = train_step(state, step_lib.shard_batch(mesh, batch), key)
            step += 1
            pending.append(metrics)
            if t_start is None:  # the first step includes compilation
                jax.block_until_ready(metrics["loss"])
                t_start, step_at_start = time.perf_counter(), step
                bar = progress_bar(total=stop_at, initial=step, desc="train", unit="step",
                                   file=sys.stderr, enabled=None if primary else False)
            if step % config.log_every == 0 or step == stop_at:
                fetched = jax.device_get(pending)
                pending = []
                if not all(bool(m["finite"]) for m in fetched):
                    check_finite()
                elapsed = time.perf_counter() - t_start
                # The first step includes compilation: rates count from the step after it.
                rate = ((step - step_at_start) / elapsed if step > step_at_start and elapsed > 0
                        else float("nan"))
                entry = {"step": step, "epoch": step * config.batch_size / num_train,
                         "loss": float(np.mean([m["loss"] for m in fetched])),
                         "acc": float(np.mean([m["acc"] for m in fetched])),
                         "lr": float(fetched[-1]["lr"]),
                         "grad_norm": float(np.mean([m["grad_norm"] for m in fetched])),
                         "triplets_per_s": (rate * config.batch_size
                                            if math.isfinite(rate) else None),
                         "eta_s": (stop_at - step) / rate if rate > 0 else None}
                history.append(entry)
                log.write(entry)
                bar.update(step - bar.n)
                rate_text = ("-" if entry["triplets_per_s"] is None
                             else f"{entry['triplets_per_s']:.1f}")
                eta_text = "-" if entry["eta_s"] is None else format_interval(entry["eta_s"])
                _log(primary, f"[step {step}/{stop_at}] epoch {entry['epoch']:.2f} "
                              f"loss {entry['loss']:.4f} acc {entry['acc']:.3f} "
                              f"lr {entry['lr']:.2e} | {rate_text} triplets/s | ETA {eta_text}")
            if step % config.checkpoint_every == 0 or step == stop_at:
                check_finite()
                ckpt.save(step, state, key, data_it,
                          meta={**meta_now, "examples_seen": step * config.batch_size})
            if config.val_every and val_sources and (step % config.val_every == 0
                                                     or step == stop_at):
                run_validation()
        check_finite()
        ckpt.wait()
    finally:
        if bar is not None:
            bar.close()
        try:
            ckpt.close()
        except checkpointing.CheckpointError as err:
            print(f"warning: {err}", file=sys.stderr)
    if val_sources and not val_scores:
        run_validation()  # resumed after the last step: score once more
    export_dir = None
    if config.export:
        export_dir = _export(config, workdir, model, state_lib.metric_variables(state), step,
                             val_scores, primary)
        _log(primary, f"exported the metric to {export_dir} "
                      f"(sl.load(checkpoint=...) / shiftlpips eval --checkpoint ...)")
    return {"state": state, "step": step, "val": val_scores, "export_dir": export_dir,
            "history": history}
