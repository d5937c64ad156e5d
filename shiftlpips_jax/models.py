"""Model building blocks: the configurable backbones, the LPIPS head and the anti-aliasing layer.

ST-LPIPS (Ghildyal & Liu, ECCV 2022) puts LPIPS's learned linear heads (Zhang et al., CVPR 2018)
on anti-aliased backbones. Each backbone is one linen module whose fields are the paper's
ablation knobs (BlurPool, first-conv stride, reflection padding, blur placement); the presets in
``BACKBONE_PRESETS`` are field values (see :func:`make_backbone`). Images are NHWC in [-1, 1].

Example::

    from shiftlpips_jax import models
    net = models.make_backbone("alex", "shift_tolerant")
    model = models.LPIPS(net=net)                       # untrained heads on top
    models.min_input_size(net)                          # 21
"""

from shiftlpips_jax._src.backbones import AlexNet
from shiftlpips_jax._src.backbones import BACKBONE_PRESETS
from shiftlpips_jax._src.backbones import ResNet18
from shiftlpips_jax._src.backbones import SqueezeNet11
from shiftlpips_jax._src.backbones import VGG16
from shiftlpips_jax._src.backbones import make_backbone
from shiftlpips_jax._src.backbones import min_input_size
from shiftlpips_jax._src.layers import blur_pool
from shiftlpips_jax._src.lpips import LPIPS
from shiftlpips_jax._src.lpips import normalize_features

__all__ = (
    "AlexNet",
    "BACKBONE_PRESETS",
    "LPIPS",
    "ResNet18",
    "SqueezeNet11",
    "VGG16",
    "blur_pool",
    "make_backbone",
    "min_input_size",
    "normalize_features",
)
