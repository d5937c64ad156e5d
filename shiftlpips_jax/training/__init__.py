"""Training ST-LPIPS / LPIPS on BAPPS 2AFC: objective, state, data-parallel step, the loop.

Upstream's recipe (Zhang et al. CVPR 2018; Ghildyal & Liu ECCV 2022) in JAX: distances
d0 = d(ref, p0), d1 = d(ref, p1) -> a small rank network -> BCE against human judges; Adam
(1e-4, betas 0.5/0.999), 5 + 5 epochs with per-epoch linear decay, head dropout 0.5, 1x1 kernels
clamped >= 0 after each step. Data parallel over a ``("data",)`` mesh with ``jax.shard_map``;
Orbax checkpoints that resume by default; the result exports as a metric directory that
``sl.load(checkpoint=DIR)`` and ``shiftlpips eval`` read.

Modules: :mod:`.objective` (rank net, BCE, 2AFC), :mod:`.optim` (Adam, schedule, clamp),
:mod:`.init` (PyTorch-style init, pretrained trunks), :mod:`.state`, :mod:`.step` (mesh, pure
train/eval steps), :mod:`.input_pipeline`, :mod:`.checkpointing`, :mod:`.loop`
(``train_and_evaluate``).

Example::

    from shiftlpips_jax import training
    result = training.train_and_evaluate(config, workdir="runs/alex_st")
"""

from shiftlpips_jax._src.training.objective import RankNet
from shiftlpips_jax._src.training.objective import bce_ranking_loss
from shiftlpips_jax._src.training.objective import two_afc_score
from shiftlpips_jax._src.training.optim import make_optimizer
from shiftlpips_jax._src.training.optim import upstream_lr
from shiftlpips_jax._src.training.state import TrainState
from shiftlpips_jax.training.step import make_eval_step
from shiftlpips_jax.training.step import make_mesh
from shiftlpips_jax.training.step import make_train_step
from shiftlpips_jax.training.step import shard_batch


def train_and_evaluate(config, workdir: str):
    """Runs (or resumes) training as configured; see :func:`loop.train_and_evaluate`."""
    from shiftlpips_jax._src.training import loop

    return loop.train_and_evaluate(config, workdir)


__all__ = (
    "RankNet",
    "TrainState",
    "bce_ranking_loss",
    "make_eval_step",
    "make_mesh",
    "make_optimizer",
    "make_train_step",
    "shard_batch",
    "train_and_evaluate",
    "two_afc_score",
    "upstream_lr",
)
