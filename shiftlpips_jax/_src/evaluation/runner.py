"""The evaluation runner: BAPPS 2AFC (+ crop-shift rank flips) and JND for any distance.

Images come through the package's one input path, :func:`~shiftlpips_jax._src.data.pipeline.
make_loader` (ordered, every record once, the last batch of each set padded to the batch size so
each image shape compiles once), decoded several batches ahead while the device works on the
current batch (dispatch is asynchronous; results are fetched one batch late): on grain's reader
threads for small runs, and on grain worker processes (one per CPU but one) for runs of 4,000+
triplets, since PNG decoding is largely Python-bound and threads top out near one core (on an
H200 host: ~1-2k triplets/s with 16 threads vs >3k with 15 processes, which keeps the GPU
busy). A progress bar (tqdm) shows the rate and ETA.

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

import dataclasses
import math
import os
import time
import weakref
from typing import Any, Sequence, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from shiftlpips_jax._src.data.folder import BappsSource
from shiftlpips_jax._src.data.pipeline import make_loader
from shiftlpips_jax._src.errors import InputError
from shiftlpips_jax._src.evaluation import scores
from shiftlpips_jax._src.evaluation.distances import Distance
from shiftlpips_jax._src.pixels import to_unit_range
from shiftlpips_jax._src.progress import progress_bar

__all__ = ["evaluate_2afc", "evaluate_jnd", "TwoAFCResult", "TwoAFCSetResult", "JNDResult",
           "JNDSetResult", "SHIFT_OFFSET", "PRECISIONS", "make_2afc_step", "make_jnd_step",
           "tile_features", "check_image_sizes", "default_threads", "auto_workers"]

SHIFT_OFFSET = 3  # upstream --shift_offset: crops lose 3 columns so shifts of up to 3 px fit


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
def tile_features(tree, k: int):
    """Each leaf of a feature pytree repeated ``k`` times along the batch axis (a reference's
    features, computed once, compared with ``k`` batches of images).

    Args:
      tree: feature pytree with a leading batch axis B.
      k: repeats.

    Returns:
      The pytree with leading axis ``k * B``.
    """
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


def make_2afc_step(dist: Distance, *, shifts: tuple[int, ...], offset: int = SHIFT_OFFSET,
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
            ref, p0, p1 = to_unit_range(ref), to_unit_range(p0), to_unit_range(p1)
            f_ref = features(params, ref)
            f_p = features(params, jnp.concatenate([p0, p1], axis=0))
            d = compare(params, tile_features(f_ref, 2), f_p)
            out = {"d0": d[:b], "d1": d[b:]}
            if ns:
                w = ref.shape[2] - offset
                f_ref_crop = features(params, ref[:, :, :w])
                crops = jnp.concatenate([p[:, :, n:n + w] for n in ns for p in (p0, p1)], axis=0)
                ds = compare(params, tile_features(f_ref_crop, 2 * len(ns)),
                             features(params, crops)).reshape(len(ns), 2, b)
                out["d0_shift"], out["d1_shift"] = ds[:, 0], ds[:, 1]
            return out

        return jax.jit(step)

    return _cached_step(dist, ("2afc", tuple(shifts), offset, precision), build)


def make_jnd_step(dist: Distance, *, precision: str = "highest"):
    """Jitted ``step(params, p0, p1) -> {"d": (B,)}`` on uint8 batches (cached while ``dist``
    is alive)."""

    def build(features, compare):
        def step(params, p0, p1):
            with jax.default_matmul_precision(precision):
                return _step(params, p0, p1)

        def _step(params, p0, p1):
            b = p0.shape[0]
            f = features(params, to_unit_range(jnp.concatenate([p0, p1], axis=0)))
            f0 = jax.tree.map(lambda a: a[:b], f)
            f1 = jax.tree.map(lambda a: a[b:], f)
            return {"d": compare(params, f0, f1)}

        return jax.jit(step)

    return _cached_step(dist, ("jnd", precision), build)


# ---------------------------------------------------------------------------------- host side
# Per compiled step, the (image shape, batch size) pairs already compiled; weak keys, so a step
# dropped with its Distance is not kept alive here.
_WARM: "weakref.WeakKeyDictionary[Any, set]" = weakref.WeakKeyDictionary()


def _run(source: BappsSource, step, params, keys, *, batch_size: int, num_threads: int,
         workers: int, limit: int | None, bar_args: dict):
    """Runs ``step`` over every set of ``source``.

    Returns ``({set name: (indices, {output: concatenated})}, seconds, data wait, compile)``.
    """
    plan = [(span, list(span.indices)[:limit]) for span in source.sets]

    def loader(idx):
        return make_loader(source, batch_size=batch_size, shuffle=False, pad_remainder=True,
                           indices=idx, shard_index=0, shard_count=1, worker_count=workers,
                           read_threads=num_threads)

    # Start decoding the first set while the programs compile.
    loaders = {0: loader(plan[0][1])} if plan and plan[0][1] else {}
    # Compile (and run once) every distinct image shape before the clock starts.
    t0 = time.perf_counter()
    for shape in dict.fromkeys(source.image_shape(span.name) for span, idx in plan if idx):
        warm = _WARM.setdefault(step, set())
        if (shape, batch_size) in warm:
            continue
        dummy = np.zeros((batch_size, *shape, 3), np.uint8)
        jax.block_until_ready(step(params, *(dummy for _ in keys)))
        warm.add((shape, batch_size))
    compile_seconds = time.perf_counter() - t0
    outputs: list[list[dict]] = [[] for _ in plan]
    in_flight = None  # (set k, n valid, device outputs): fetched one batch late
    wait = 0.0
    bar = progress_bar(**bar_args)
    start = time.perf_counter()

    def collect(item):
        k, n, dev = item
        host = jax.tree.map(lambda a: np.asarray(a), dev)
        host = {name: (v[..., :n] if v.ndim > 1 else v[:n]) for name, v in host.items()}
        outputs[k].append(host)
        bar.update(n)

    try:
        for k, (span, idx) in enumerate(plan):
            if not idx:
                continue
            it = iter(loaders.pop(k, None) or loader(idx))
            while True:
                t = time.perf_counter()
                batch = next(it, None)
                wait += time.perf_counter() - t
                if batch is None:
                    break
                n = int(batch["mask"].sum())
                dev = step(params, *(batch[key] for key in keys))  # async dispatch
                if in_flight is not None:
                    collect(in_flight)
                in_flight = (k, n, dev)
        if in_flight is not None:
            collect(in_flight)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    results = {}
    for k, (span, idx) in enumerate(plan):
        merged = {}
        if outputs[k]:
            for name in outputs[k][0]:
                axis = outputs[k][0][name].ndim - 1
                merged[name] = np.concatenate([o[name] for o in outputs[k]], axis=axis)
        results[span.name] = (idx, merged)
    return results, seconds, wait, compile_seconds


def _check_source(source: BappsSource, kind: str) -> None:
    if not isinstance(source, BappsSource) or source.kind != kind:
        raise TypeError(f"expected a {kind} BappsSource (from read_{kind}); got {source!r}")


def _check_common(batch_size: int, limit: int | None, num_threads: int) -> None:
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1; got {batch_size}")
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1; got {limit}")
    if num_threads < 1:
        raise InputError(f"num_threads must be >= 1; got {num_threads}")


PRECISIONS = ("highest", "default")
AUTO_WORKERS_MIN = 4000  # below this, spawning decode processes costs more than it saves


def _check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    return precision


def auto_workers(workers: int | None, *, total: int) -> int:
    """Decoding processes for a run of ``total`` records (``workers`` if given).

    Args:
      workers: the caller's choice (``None``: decide; 0: threads only).
      total: records in the run.

    Returns:
      One per CPU but one (at most 16) for runs of 4,000+ records on 4+ CPUs, else 0.
    """
    if workers is not None:
        if workers < 0:
            raise InputError(f"workers must be >= 0; got {workers}")
        return workers
    cpus = os.cpu_count() or 1
    return min(16, cpus - 1) if cpus >= 4 and total >= AUTO_WORKERS_MIN else 0


def default_threads() -> int:
    """Image-decoding threads: twice the CPU count, between 2 and 16.

    Returns:
      The thread count.
    """
    return max(2, min(16, (os.cpu_count() or 2) * 2))


def check_image_sizes(source: BappsSource, dist: Distance, *, shifts: Sequence[int]) -> None:
    """Refuses sets whose images (after resizing) are too small for ``dist`` and the shifts.

    Args:
      source: the records.
      dist: the distance (its ``min_size``).
      shifts: crop-shifts to be scored (each removes ``SHIFT_OFFSET`` columns).

    Raises:
      InputError: naming the set, its size after resizing and the size needed.
    """
    need = dist.min_size + (SHIFT_OFFSET if shifts else 0)
    for span in source.sets:
        h, w = source.image_shape(span.name)
        if min(h, w) < need:
            raise InputError(f"{span.name}: images are {h}x{w} after resizing; {dist.name} "
                             f"needs at least {need} pixels" + (" (crop-shifts remove "
                             f"{SHIFT_OFFSET} columns)" if shifts else "")
                             + "; raise the load size (--load-size)")


def _bar(progress: bool, total: int, desc: str, unit: str, stream) -> dict:
    return dict(total=total, desc=desc, unit=unit, file=stream, enabled=progress)


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
      progress: draw a progress bar with rate and ETA on ``stream``.
      stream: where the bar goes (default stderr).

    Returns:
      :class:`TwoAFCResult` holding every distance; ``.to_json()`` / ``.table()``.
    """
    _check_source(source, "2afc")
    shifts = tuple(sorted(dict.fromkeys(int(n) for n in shifts)))
    for n in shifts:
        if not 1 <= n <= SHIFT_OFFSET:
            raise InputError(f"shifts must be in 1..{SHIFT_OFFSET} (the crop offset); got {n}")
    num_threads = num_threads or default_threads()
    _check_common(batch_size, limit, num_threads)
    check_image_sizes(source, dist, shifts=shifts)
    step = make_2afc_step(dist, shifts=shifts, precision=_check_precision(precision))
    total = sum(min(len(s), limit) if limit else len(s) for s in source.sets)
    raw, seconds, wait, compile_s = _run(
        source, step, dist.params, ("ref", "p0", "p1"), batch_size=batch_size,
        num_threads=num_threads, workers=auto_workers(workers, total=total), limit=limit,
        bar_args=_bar(progress, total, f"2afc {dist.name}", "triplets", stream))
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
                        shifts=shifts, sets=sets, seconds=seconds, data_wait_seconds=wait,
                        compile_seconds=compile_s)


def evaluate_jnd(source: BappsSource, dist: Distance, *, batch_size: int = 50,
                 limit: int | None = None, num_threads: int | None = None,
                 workers: int | None = None, precision: str = "highest", progress: bool = True,
                 stream: TextIO | None = None) -> JNDResult:
    """JND mAP of ``dist`` on every set of ``source``.

    Args:
      source: from :func:`shiftlpips_jax.data.read_jnd`.
      dist, batch_size, limit, num_threads, workers, precision, progress, stream: as
        :func:`evaluate_2afc`.

    Returns:
      :class:`JNDResult` holding every distance; ``.to_json()`` / ``.table()``.
    """
    _check_source(source, "jnd")
    num_threads = num_threads or default_threads()
    _check_common(batch_size, limit, num_threads)
    check_image_sizes(source, dist, shifts=())
    step = make_jnd_step(dist, precision=_check_precision(precision))
    total = sum(min(len(s), limit) if limit else len(s) for s in source.sets)
    raw, seconds, wait, compile_s = _run(
        source, step, dist.params, ("p0", "p1"), batch_size=batch_size,
        num_threads=num_threads, workers=auto_workers(workers, total=total), limit=limit,
        bar_args=_bar(progress, total, f"jnd {dist.name}", "pairs", stream))
    sets = []
    for span in source.sets:
        idx, out = raw[span.name]
        sets.append(JNDSetResult(
            name=span.name,
            paths=[os.path.relpath(source.paths["p0"][i], source.root) for i in idx],
            same=source.labels[idx].astype(np.float64), d=out["d"]))
    return JNDResult(model=dist.name, model_key=dist.key, load_size=source.load_size, sets=sets,
                     seconds=seconds, data_wait_seconds=wait, compile_seconds=compile_s)
