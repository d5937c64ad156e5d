"""Training ST-LPIPS / LPIPS on BAPPS 2AFC: objective, state, data-parallel step, the loop.

Upstream's recipe (Zhang et al. CVPR 2018; Ghildyal & Liu ECCV 2022) in JAX: distances
d0 = d(ref, p0), d1 = d(ref, p1) -> a small rank network -> BCE against human judges; Adam
(1e-4, betas 0.5/0.999), 5 + 5 epochs with per-epoch linear decay, head dropout 0.5, 1x1 kernels
clamped >= 0 after each step. Data parallel over a ``("data",)`` mesh with ``jax.shard_map``;
Orbax checkpoints that resume by default; the result exports as a metric directory that
``sl.load(checkpoint=DIR)`` and ``shiftlpips eval`` read. The implementation lives in
``shiftlpips_jax/_src/training/`` (objective, optim, init, state, input pipeline, checkpoints,
loop) and ``shiftlpips_jax/training/step.py`` (the pure train/eval steps); the loop (Orbax,
grain) is imported on first use.

Example::

    from shiftlpips_jax import training
    result = training.train_and_evaluate(config, workdir="runs/alex_st")
"""

from shiftlpips_jax._src import lazy as _lazy
from shiftlpips_jax._src.training.objective import RankNet
from shiftlpips_jax._src.training.objective import bce_ranking_loss
from shiftlpips_jax._src.training.optim import make_optimizer
from shiftlpips_jax._src.training.optim import upstream_lr
from shiftlpips_jax._src.training.state import TrainState
from shiftlpips_jax.training.step import make_eval_step
from shiftlpips_jax.training.step import make_mesh
from shiftlpips_jax.training.step import make_train_step
from shiftlpips_jax.training.step import shard_batch

__getattr__, __dir__ = _lazy.attach(__name__, {
    "Checkpointer": "shiftlpips_jax._src.training.checkpointing",
    "build_model": "shiftlpips_jax._src.training.loop",
    "train_and_evaluate": "shiftlpips_jax._src.training.loop",
})

__all__ = (
    "Checkpointer",
    "RankNet",
    "TrainState",
    "bce_ranking_loss",
    "build_model",
    "make_eval_step",
    "make_mesh",
    "make_optimizer",
    "make_train_step",
    "shard_batch",
    "train_and_evaluate",
    "upstream_lr",
)
