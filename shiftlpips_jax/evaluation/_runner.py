"""The evaluation runner: BAPPS 2AFC (+ crop-shift rank flips) and JND for any distance.

Images are decoded several batches ahead while the device works on the current batch (dispatch
is asynchronous; results are fetched one batch late): on a thread pool for small runs, and on a
pool of spawned processes (one per CPU but one) for runs of 4,000+ triplets, since PNG decoding
is largely Python-bound and threads top out near one core (on an H200 host: ~1-2k triplets/s
with 16 threads vs >3k with 15 processes, which keeps the GPU busy). Every batch runs one jitted program; the last batch of a set is padded to the batch
size so each image shape compiles once.

Per 2AFC triplet the program computes the reference's features once for the full image and once
for its crop, and reuses them for p0, p1 and every shift. The crop-shift follows upstream
``test_shiftedDataset_model.py``: with W the width after resizing and offset 3,
``ref -> ref[:, :, :W-3]`` and ``p -> p[:, :, n:W-3+n]`` for n = 0 (the comparison point) and
each requested shift.

Example::

    res = evaluate_2afc(read_2afc(root, ["val/cnn"]), get_distance("alex"), shifts=(1, 2, 3))
    res.to_json()      # {"2afc": {"val/cnn": %, "mean": %}, "r_rf": {"1": {...}}, ...}
    print(res.table())
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import math
import os
import sys
import time
import weakref
from typing import Any, Iterator, Sequence, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from shiftlpips_jax.data import _folder
from shiftlpips_jax.data._folder import BappsSource
from shiftlpips_jax.evaluation import _scores as scores
from shiftlpips_jax.evaluation._distances import Distance

__all__ = ["evaluate_2afc", "evaluate_jnd", "TwoAFCResult", "TwoAFCSetResult", "JNDResult",
           "JNDSetResult", "SHIFT_OFFSET", "Progress"]

SHIFT_OFFSET = 3  # upstream --shift_offset: crops lose 3 columns so shifts of up to 3 px fit


# ---------------------------------------------------------------------------------- progress
class Progress:
    """A one-line progress bar with rate and ETA on a text stream (no-op when disabled)."""

    def __init__(self, total: int, desc: str, *, unit: str = "triplets", stream: TextIO | None = None,
                 enabled: bool = True, min_interval: float = 0.25):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._min_interval = min_interval

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self._last >= self._min_interval or self.done >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        frac = self.done / self.total if self.total else 1.0
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        width = 24
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        self.stream.write(f"\r{self.desc} [{bar}] {self.done}/{self.total} {rate:7.1f} "
                          f"{self.unit}/s  elapsed {_clock(elapsed)}  ETA {_clock(eta)} ")
        self.stream.flush()

    def restart(self) -> None:
        """Restarts the clock (after compilation, so rate and ETA reflect steady state)."""
        self.start = time.perf_counter()

    def close(self) -> None:
        if self.enabled:
            if self.done < self.total or self._last == 0.0:
                self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60:02d}:{rem % 60:02d}"


# ---------------------------------------------------------------------------------- results
@dataclasses.dataclass
class TwoAFCSetResult:
    """Per-triplet distances of one 2AFC set; scores are derived properties.

    ``d0_shift[n]`` / ``d1_shift[n]`` are the crop-shifted distances for n = 0 and each shift.
    """
    name: str
    paths: list[str]
    judge: np.ndarray
    d0: np.ndarray
    d1: np.ndarray
    d0_shift: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)
    d1_shift: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.judge)

    @property
    def score(self) -> float:
        """2AFC agreement in [0, 1]."""
        return scores.twoafc_score(self.d0, self.d1, self.judge)

    def rank_flips(self, n: int) -> np.ndarray:
        return scores.rank_flips(self.d0_shift[0], self.d1_shift[0], self.d0_shift[n],
                                 self.d1_shift[n])

    def flips(self, n: int) -> int:
        return int(np.sum(self.rank_flips(n)))

    def r_rf(self, n: int) -> float:
        """Rank-flip rate in % at shift ``n``."""
        return scores.rank_flip_rate(self.d0_shift[0], self.d1_shift[0], self.d0_shift[n],
                                     self.d1_shift[n])


def _with_mean(values: dict[str, float]) -> dict[str, float]:
    out = dict(values)
    out["mean"] = float(np.mean(list(values.values())))
    return out


def _json_float(x: float):
    return None if not math.isfinite(x) else float(x)


@dataclasses.dataclass
class TwoAFCResult:
    """2AFC results of one distance over several sets (``to_json`` gives the CLI's JSON)."""
    model: str
    model_key: str
    load_size: int
    shifts: tuple[int, ...]
    sets: list[TwoAFCSetResult]
    seconds: float = 0.0
    data_wait_seconds: float = 0.0
    compile_seconds: float = 0.0

    @property
    def triplets(self) -> int:
        return sum(len(s) for s in self.sets)

    @property
    def triplets_per_second(self) -> float:
        return self.triplets / self.seconds if self.seconds > 0 else float("nan")

    def to_json(self) -> dict:
        """``{"2afc": {set: %, "mean": %}, "r_rf": {"n": {set: %, "mean": %}}, ...}``.

        Means are unweighted over sets (as the paper). Also ``rank_flips`` (counts per set and
        ``total``), ``triplets`` and the run's settings.
        """
        out = {"2afc": _with_mean({s.name: 100.0 * s.score for s in self.sets})}
        if self.shifts:
            out["r_rf"] = {str(n): _with_mean({s.name: s.r_rf(n) for s in self.sets})
                           for n in self.shifts}
            out["rank_flips"] = {}
            for n in self.shifts:
                counts = {s.name: s.flips(n) for s in self.sets}
                counts["total"] = sum(counts.values())
                out["rank_flips"][str(n)] = counts
        out["triplets"] = {s.name: len(s) for s in self.sets}
        out["model"] = self.model_key
        out["load_size"] = self.load_size
        return out

    def table(self) -> str:
        """Per-set rows and the mean, in the paper's layout (2AFC %, r_rf % per shift)."""
        head = f"{'Dataset':<18}{'2AFC %':>9}"
        for n in self.shifts:
            head += f"{f'r_rf {n}px %':>13}"
        for n in self.shifts:
            head += f"{f'flips {n}px':>11}"
        head += f"{'triplets':>10}"
        lines = [f"{self.model} -- BAPPS 2AFC, load_size {self.load_size}"
                 + (f", crop-shift offset {SHIFT_OFFSET}" if self.shifts else ""), head,
                 "-" * len(head)]
        js = self.to_json()

        def row(label, two, rrfs, flips, n):
            line = f"{label:<18}{two:>9.2f}"
            line += "".join(f"{v:>13.2f}" for v in rrfs)
            line += "".join(f"{v:>11d}" for v in flips)
            return line + f"{n:>10d}"

        for s in self.sets:
            lines.append(row(s.name, 100.0 * s.score, [s.r_rf(n) for n in self.shifts],
                             [s.flips(n) for n in self.shifts], len(s)))
        lines.append("-" * len(head))
        lines.append(row("mean", js["2afc"]["mean"],
                         [js["r_rf"][str(n)]["mean"] for n in self.shifts] if self.shifts else [],
                         [js["rank_flips"][str(n)]["total"] for n in self.shifts]
                         if self.shifts else [], self.triplets))
        return "\n".join(lines)


@dataclasses.dataclass
class JNDSetResult:
    name: str
    paths: list[str]
    same: np.ndarray
    d: np.ndarray

    def __len__(self) -> int:
        return len(self.same)

    @property
    def map(self) -> float:
        return scores.jnd_map(self.d, self.same)


@dataclasses.dataclass
class JNDResult:
    model: str
    model_key: str
    load_size: int
    sets: list[JNDSetResult]
    seconds: float = 0.0
    data_wait_seconds: float = 0.0
    compile_seconds: float = 0.0

    @property
    def pairs(self) -> int:
        return sum(len(s) for s in self.sets)

    def to_json(self) -> dict:
        """``{"jnd_map": {set: mAP, "mean": mAP}, ...}``; mAP as a fraction (as the paper)."""
        maps = {s.name: s.map for s in self.sets}
        finite = [v for v in maps.values() if math.isfinite(v)]
        out = {"jnd_map": {k: _json_float(v) for k, v in maps.items()}}
        out["jnd_map"]["mean"] = _json_float(float(np.mean(finite))) if finite else None
        out["pairs"] = {s.name: len(s) for s in self.sets}
        out["model"] = self.model_key
        out["load_size"] = self.load_size
        return out

    def table(self) -> str:
        js = self.to_json()["jnd_map"]
        head = f"{'Dataset':<18}{'JND mAP':>9}{'pairs':>8}"
        lines = [f"{self.model} -- BAPPS JND, load_size {self.load_size}", head, "-" * len(head)]

        def fmt(v):
            return f"{'n/a':>9}" if v is None else f"{v:>9.3f}"

        for s in self.sets:
            lines.append(f"{s.name:<18}{fmt(js[s.name])}{len(s):>8d}")
        lines.append("-" * len(head))
        lines.append(f"{'mean':<18}{fmt(js['mean'])}{self.pairs:>8d}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------- device side
def _to_unit(x):
    return x.astype(jnp.float32) / 127.5 - 1.0


def _tile(tree, k: int):
    return jax.tree.map(lambda a: jnp.concatenate([a] * k, axis=0), tree)


# Compiled programs live exactly as long as their Distance: each Distance's jitted steps are
# kept in a map with weak keys, and the steps close over the distance's two functions, never
# over the Distance (which holds the parameters). So evaluating many checkpoints in one process
# keeps only the Distances the caller still holds, not one parameter set and program per
# checkpoint ever evaluated.
_STEPS: "weakref.WeakKeyDictionary[Distance, dict]" = weakref.WeakKeyDictionary()


def _cached_step(dist: Distance, key: tuple, build):
    steps = _STEPS.get(dist)
    if steps is None:
        steps = _STEPS[dist] = {}
    if key not in steps:
        steps[key] = build(dist.features, dist.compare)
    return steps[key]


def make_2afc_step(dist: Distance, shifts: tuple[int, ...], offset: int = SHIFT_OFFSET,
                   precision: str = "highest"):
    """Jitted ``step(params, ref, p0, p1)`` on uint8 (B, H, W, 3) batches.

    ``precision`` is the matmul/conv precision traced into the program (``"highest"``: true
    float32 on GPUs, which otherwise use TF32 and move distances by ~0.1%).

    Returns a dict: ``d0``, ``d1`` (B,) and, with shifts, ``d0_shift``, ``d1_shift`` (S, B) for
    n in ``(0, *shifts)``. Reference features: one call on ``ref``, one on its crop. The step is
    cached for as long as ``dist`` is alive.
    """
    ns = (0,) + tuple(shifts) if shifts else ()

    def build(features, compare):
        def step(params, ref, p0, p1):
            with jax.default_matmul_precision(precision):
                return _step(params, ref, p0, p1)

        def _step(params, ref, p0, p1):
            b = ref.shape[0]
            ref, p0, p1 = _to_unit(ref), _to_unit(p0), _to_unit(p1)
            f_ref = features(params, ref)
            f_p = features(params, jnp.concatenate([p0, p1], axis=0))
            d = compare(params, _tile(f_ref, 2), f_p)
            out = {"d0": d[:b], "d1": d[b:]}
            if ns:
                w = ref.shape[2] - offset
                f_ref_crop = features(params, ref[:, :, :w])
                crops = jnp.concatenate([p[:, :, n:n + w] for n in ns for p in (p0, p1)], axis=0)
                ds = compare(params, _tile(f_ref_crop, 2 * len(ns)),
                             features(params, crops)).reshape(len(ns), 2, b)
                out["d0_shift"], out["d1_shift"] = ds[:, 0], ds[:, 1]
            return out

        return jax.jit(step)

    return _cached_step(dist, ("2afc", tuple(shifts), offset, precision), build)


def make_jnd_step(dist: Distance, precision: str = "highest"):
    """Jitted ``step(params, p0, p1) -> {"d": (B,)}`` on uint8 batches (cached while ``dist``
    is alive)."""

    def build(features, compare):
        def step(params, p0, p1):
            with jax.default_matmul_precision(precision):
                return _step(params, p0, p1)

        def _step(params, p0, p1):
            b = p0.shape[0]
            f = features(params, _to_unit(jnp.concatenate([p0, p1], axis=0)))
            f0 = jax.tree.map(lambda a: a[:b], f)
            f1 = jax.tree.map(lambda a: a[b:], f)
            return {"d": compare(params, f0, f1)}

        return jax.jit(step)

    return _cached_step(dist, ("jnd", precision), build)


# ---------------------------------------------------------------------------------- host side
def _pad(batch: dict, size: int) -> dict:
    n = len(next(iter(batch.values())))
    if n == size:
        return batch
    return {k: np.concatenate([v, np.repeat(v[-1:], size - n, axis=0)]) for k, v in batch.items()}


# Per compiled step, the (image shape, batch size) pairs already compiled; weak keys, so a step
# dropped with its Distance is not kept alive here.
_WARM: "weakref.WeakKeyDictionary[Any, set]" = weakref.WeakKeyDictionary()


class _Timer:
    def __init__(self):
        self.wait = 0.0
        self.compile = 0.0


class _Prefetcher:
    """Decodes batches ahead, in order, on threads or (``workers > 0``) spawned processes.

    Decoding a PNG is mostly Python-bound, so threads top out near one core's rate; a process
    pool scales with the cores (each worker receives the source once, then index lists).
    Started before compilation so the first batches decode while XLA compiles.
    """

    def __init__(self, source: BappsSource, chunks: list[list[int]], *, num_threads: int,
                 workers: int, timer: _Timer):
        self._timer = timer
        self._it = iter(chunks)
        if workers > 0:
            import multiprocessing
            self._ex = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_folder.init_worker, initargs=(source,))
            self._fn = _folder.load_batch_in_worker
            depth = 3 * workers
        else:
            self._ex = concurrent.futures.ThreadPoolExecutor(max(1, num_threads))
            self._fn = source.load_batch
            depth = max(2, 2 * num_threads)
        self._pending: collections.deque = collections.deque()
        for chunk in self._it:
            self._pending.append((chunk, self._ex.submit(self._fn, chunk)))
            if len(self._pending) >= depth:
                break

    def __iter__(self) -> Iterator[tuple[list[int], dict]]:
        try:
            while self._pending:
                chunk, fut = self._pending.popleft()
                t = time.perf_counter()
                batch = fut.result()
                self._timer.wait += time.perf_counter() - t
                nxt = next(self._it, None)
                if nxt is not None:
                    self._pending.append((nxt, self._ex.submit(self._fn, nxt)))
                yield chunk, batch
        finally:
            self.close()

    def close(self) -> None:
        for _, fut in self._pending:
            fut.cancel()
        self._pending.clear()
        self._ex.shutdown(wait=True, cancel_futures=True)


def _run(source: BappsSource, spans, step, params, keys, batch_size, num_threads, workers,
         limit, progress: Progress, timer: _Timer):
    """Runs ``step`` over the spans; returns {set name: (indices, {output: concatenated})}."""
    plan = []
    for span in spans:
        idx = list(span.indices)[: (limit if limit is not None else None)]
        plan.append((span, idx))
    chunks, owner = [], []
    for k, (_, idx) in enumerate(plan):
        for lo in range(0, len(idx), batch_size):
            chunks.append(idx[lo:lo + batch_size])
            owner.append(k)
    prefetch = _Prefetcher(source, chunks, num_threads=num_threads, workers=workers, timer=timer)
    try:
        # Compile (and run once) every distinct image shape before the clock starts.
        t0 = time.perf_counter()
        for shape in dict.fromkeys(source.image_shape(span.name) for span, idx in plan if idx):
            warm = _WARM.setdefault(step, set())
            if (shape, batch_size) in warm:
                continue
            dummy = np.zeros((batch_size, *shape, 3), np.uint8)
            jax.block_until_ready(step(params, *(dummy for _ in keys)))
            warm.add((shape, batch_size))
        timer.compile = time.perf_counter() - t0
    except BaseException:
        prefetch.close()
        raise
    progress.restart()
    outputs: list[list[dict]] = [[] for _ in plan]
    in_flight = None  # (set k, n valid, device outputs): fetched one batch late

    def collect(item):
        k, n, dev = item
        host = jax.tree.map(lambda a: np.asarray(a), dev)
        host = {name: (v[..., :n] if v.ndim > 1 else v[:n]) for name, v in host.items()}
        outputs[k].append(host)
        progress.update(n)

    for j, (chunk, batch) in enumerate(prefetch):
        n = len(chunk)
        padded = _pad({key: batch[key] for key in keys}, batch_size)
        dev = step(params, *(padded[key] for key in keys))  # async dispatch
        if in_flight is not None:
            collect(in_flight)
        in_flight = (owner[j], n, dev)
    if in_flight is not None:
        collect(in_flight)
    results = {}
    for k, (span, idx) in enumerate(plan):
        merged = {}
        if outputs[k]:
            for name in outputs[k][0]:
                axis = outputs[k][0][name].ndim - 1
                merged[name] = np.concatenate([o[name] for o in outputs[k]], axis=axis)
        results[span.name] = (idx, merged)
    return results


def _check_source(source: BappsSource, kind: str) -> None:
    if not isinstance(source, BappsSource) or source.kind != kind:
        raise TypeError(f"expected a {kind} BappsSource (from read_{kind}); got {source!r}")


def _check_common(batch_size: int, limit: int | None, num_threads: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1; got {limit}")
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1; got {num_threads}")


PRECISIONS = ("highest", "default")
AUTO_WORKERS_MIN = 4000  # below this, spawning decode processes costs more than it saves


def _check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    return precision


def _auto_workers(workers: int | None, total: int) -> int:
    if workers is not None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0; got {workers}")
        return workers
    cpus = os.cpu_count() or 1
    return min(16, cpus - 1) if cpus >= 4 and total >= AUTO_WORKERS_MIN else 0


def default_threads() -> int:
    return max(2, min(16, (os.cpu_count() or 2) * 2))


def evaluate_2afc(source: BappsSource, dist: Distance, *, shifts: Sequence[int] = (1, 2, 3),
                  batch_size: int = 50, limit: int | None = None, num_threads: int | None = None,
                  workers: int | None = None, precision: str = "highest", progress: bool = True,
                  stream: TextIO | None = None) -> TwoAFCResult:
    """2AFC scores (and crop-shift rank flips) of ``dist`` on every set of ``source``.

    Args:
      source: from :func:`shiftlpips_jax.data.read_2afc`.
      dist: from :func:`get_distance` / :func:`learned_distance`.
      shifts: pixel shifts for r_rf, each in 1..3 (empty: 2AFC only).
      batch_size: triplets per device batch.
      limit: only the first ``limit`` triplets of each set (a quick look).
      num_threads: image-decoding threads (default: twice the CPU count, at most 16).
      workers: image-decoding processes instead of threads (default: one per CPU but one, at
        most 16, for runs of at least 4,000 triplets on machines with 4+ CPUs; 0 = threads).
      precision: ``"highest"`` (float32 everywhere) or ``"default"`` (TF32 on recent GPUs).
      progress: draw a progress bar with ETA on ``stream`` (default stderr).

    Returns:
      :class:`TwoAFCResult` holding every distance; ``.to_json()`` / ``.table()``.
    """
    _check_source(source, "2afc")
    shifts = tuple(sorted(dict.fromkeys(int(n) for n in shifts)))
    for n in shifts:
        if not 1 <= n <= SHIFT_OFFSET:
            raise ValueError(f"shifts must be in 1..{SHIFT_OFFSET} (the crop offset); got {n}")
    num_threads = num_threads or default_threads()
    _check_common(batch_size, limit, num_threads)
    for span in source.sets:
        h, w = source.image_shape(span.name)
        need = dist.min_size + (SHIFT_OFFSET if shifts else 0)
        if min(h, w) < need:
            raise ValueError(f"{span.name}: images are {h}x{w} after resizing; {dist.name} "
                             f"needs at least {need} pixels" + (" (crop-shifts remove "
                             f"{SHIFT_OFFSET} columns)" if shifts else ""))
    step = make_2afc_step(dist, shifts, SHIFT_OFFSET, _check_precision(precision))
    total = sum(min(len(s), limit) if limit else len(s) for s in source.sets)
    bar = Progress(total, f"2afc {dist.name}", stream=stream, enabled=progress)
    timer = _Timer()
    raw = _run(source, source.sets, step, dist.params, ("ref", "p0", "p1"), batch_size,
               num_threads, _auto_workers(workers, total), limit, bar, timer)
    bar.close()
    sets = []
    for span in source.sets:
        idx, out = raw[span.name]
        ns = (0,) + shifts if shifts else ()
        sets.append(TwoAFCSetResult(
            name=span.name,
            paths=[os.path.relpath(source.paths["p0"][i], source.root) for i in idx],
            judge=source.labels[idx].astype(np.float64), d0=out["d0"], d1=out["d1"],
            d0_shift={n: out["d0_shift"][k] for k, n in enumerate(ns)},
            d1_shift={n: out["d1_shift"][k] for k, n in enumerate(ns)}))
    return TwoAFCResult(model=dist.name, model_key=dist.key, load_size=source.load_size,
                        shifts=shifts, sets=sets, seconds=time.perf_counter() - bar.start,
                        data_wait_seconds=timer.wait, compile_seconds=timer.compile)


def evaluate_jnd(source: BappsSource, dist: Distance, *, batch_size: int = 50,
                 limit: int | None = None, num_threads: int | None = None,
                 workers: int | None = None, precision: str = "highest", progress: bool = True,
                 stream: TextIO | None = None) -> JNDResult:
    """JND mAP of ``dist`` on every set of ``source`` (from :func:`read_jnd`); see
    :func:`evaluate_2afc` for the arguments."""
    _check_source(source, "jnd")
    num_threads = num_threads or default_threads()
    _check_common(batch_size, limit, num_threads)
    for span in source.sets:
        h, w = source.image_shape(span.name)
        if min(h, w) < dist.min_size:
            raise ValueError(f"{span.name}: images are {h}x{w} after resizing; {dist.name} "
                             f"needs at least {dist.min_size} pixels")
    step = make_jnd_step(dist, _check_precision(precision))
    total = sum(min(len(s), limit) if limit else len(s) for s in source.sets)
    bar = Progress(total, f"jnd {dist.name}", unit="pairs", stream=stream, enabled=progress)
    timer = _Timer()
    raw = _run(source, source.sets, step, dist.params, ("p0", "p1"), batch_size, num_threads,
               _auto_workers(workers, total), limit, bar, timer)
    bar.close()
    sets = []
    for span in source.sets:
        idx, out = raw[span.name]
        sets.append(JNDSetResult(
            name=span.name,
            paths=[os.path.relpath(source.paths["p0"][i], source.root) for i in idx],
            same=source.labels[idx].astype(np.float64), d=out["d"]))
    return JNDResult(model=dist.name, model_key=dist.key, load_size=source.load_size, sets=sets,
                     seconds=time.perf_counter() - bar.start, data_wait_seconds=timer.wait,
                     compile_seconds=timer.compile)
