"""Hostile and malformed checkpoints for the torch-free reader, built from bytes (no torch needed).

Every case is a function that returns a file's bytes, registered with :func:`case` together with
the error the reader must raise (``CheckpointFormatError`` or ``UnsafeCheckpointError``, plus a
message fragment), or ``None`` for a positive control whose loaded content is given. Pickles are
written by hand from opcodes (``g``, ``v``, ``tup``, ``call``, ...), zips with ``zipfile`` or, where
a header has to lie, with :func:`raw_zip`.

Run as a script it is the worker that the tests start: it writes the named cases into a folder,
caps its own address space, loads each one under ``tracemalloc`` and prints one JSON line per case
(error class, message, peak traced bytes, seconds)::

    python tests/hostile_checkpoints.py --dir /tmp/hostile zero_stride_8gib deep_list
    python tests/hostile_checkpoints.py --fuzz 400 --seed 0     # mutants of legitimate files
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import json
import os
import pickle
import random
import resource
import signal
import struct
import time
import tracemalloc
import warnings
import zipfile
import zlib
from typing import Any, Callable

import numpy as np

FORMAT = "CheckpointFormatError"
UNSAFE = "UnsafeCheckpointError"

MAGIC = 0x1950A86A20F9469CFC6C
MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    category: str
    build: Callable[[], bytes]
    error: str | None          # expected error class name, None for a positive control
    match: str                 # substring of the message (or, for controls, unused)
    loader: str                # "torch" or "array"
    expect: Any = None         # summary of the loaded object (positive controls)
    peak_mib: float = 16       # bound on tracemalloc's peak while loading


CASES: dict[str, Case] = {}


def case(category: str, error: str | None, match: str = "", *, loader: str = "torch",
         expect: Any = None, peak_mib: float = 16):
    def register(fn):
        assert fn.__name__ not in CASES, fn.__name__
        CASES[fn.__name__] = Case(fn.__name__, category, fn, error, match, loader, expect,
                                  peak_mib)
        return fn
    return register


# ---------------------------------------------------------------------------------------------
# A small pickle assembler (protocol 2 opcodes unless noted).

def g(module: str, name: str) -> bytes:
    """GLOBAL: pushes the named global."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def v(value) -> bytes:
    """Any plain value, as pickle writes it (its memo puts are harmless: nothing reads them)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def call(func: bytes, *args: bytes) -> bytes:
    return func + tup(*args) + b"R"


def pkl(body: bytes, proto: int = 2) -> bytes:
    return b"\x80" + bytes([proto]) + body + b"."


def odict(*pairs: tuple[bytes, bytes]) -> bytes:
    body = call(g("collections", "OrderedDict"))
    if pairs:
        body += b"(" + b"".join(k + val for k, val in pairs) + b"u"
    return body


def storage(key="0", numel=4, stype="FloatStorage", location="cpu", *, view=None,
            legacy=False, parts: tuple | None = None) -> bytes:
    """A persistent id for a storage (zip: 5 items; legacy: a 6th, the view or None)."""
    if parts is None:
        parts = (v("storage"), g("torch", stype), v(key), v(location), v(numel))
        if legacy:
            parts += (v(view),)
    return tup(*parts) + b"Q"


def tensor(pid: bytes, offset=0, size=(4,), stride=(1,)) -> bytes:
    return call(g("torch._utils", "_rebuild_tensor_v2"), pid, v(offset), v(size), v(stride),
                v(False), odict())


def state_dict(**tensors: bytes) -> bytes:
    return pkl(odict(*((v(k), t) for k, t in tensors.items())))


F4 = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)


# ---------------------------------------------------------------------------------------------
# File layouts.

def torch_zip(data_pkl: bytes, storages: dict[str, bytes] | None = None, *,
              byteorder: bytes | None = b"little", archive: str = "archive",
              extra: tuple = (), compress: int = zipfile.ZIP_STORED) -> bytes:
    """The layout torch.save writes: <archive>/data.pkl, byteorder, data/<key>, version."""
    storages = {"0": F4} if storages is None else storages
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are written on purpose
        with zipfile.ZipFile(buf, "w", compress) as zf:
            zf.writestr(f"{archive}/data.pkl", data_pkl)
            if byteorder is not None:
                zf.writestr(f"{archive}/byteorder", byteorder)
            for key, data in storages.items():
                zf.writestr(f"{archive}/data/{key}", data)
            zf.writestr(f"{archive}/version", b"3\n")
            for name, data, *method in extra:
                zf.writestr(name, data, compress_type=method[0] if method else None)
    return buf.getvalue()


def raw_zip(entries: list[dict], *, cd_size: int | None = None) -> bytes:
    """A zip whose headers say what each entry dict says, true or not.

    Keys: name, payload (the stored bytes), raw (the content, for the default CRC and size),
    method, crc, file_size, compress_size, flags.
    """
    out, central = bytearray(), bytearray()
    for e in entries:
        name, payload = e["name"].encode(), e["payload"]
        raw = e.get("raw", payload)
        method, flags = e.get("method", 0), e.get("flags", 0)
        crc = e.get("crc", zlib.crc32(raw))
        fsize, csize = e.get("file_size", len(raw)), e.get("compress_size", len(payload))
        offset = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc,
                           csize, fsize, len(name), 0) + name + payload
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, flags, method, 0,
                               0x21, crc, csize, fsize, len(name), 0, 0, 0, 0, 0, offset) + name
    start = len(out)
    out += central
    n = min(len(entries), 0xFFFE)  # zipfile reads the directory by its size, not its count
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n,
                       len(central) if cd_size is None else cd_size, start, 0)
    return bytes(out)


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


@functools.lru_cache(maxsize=4)
def deflated_zeros(nbytes: int) -> tuple[bytes, int]:
    """Raw deflate of ``nbytes`` zero bytes, built in 1 MiB pieces; and the CRC of the zeros."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk, out, crc = bytes(MIB), [], 0
    for _ in range(nbytes // MIB):
        out.append(c.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    out.append(c.flush())
    return b"".join(out), crc


def torch_legacy(obj_pkl: bytes, keys: list, blobs: list[tuple[int, bytes]], *,
                 magic: bytes | None = None, protocol: bytes | None = None,
                 sys_info: bytes | None = None, keys_pkl: bytes | None = None) -> bytes:
    """The pre-1.6 layout: magic, protocol, sys_info, object, key list, then (count, bytes)*."""
    info = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return (pickle.dumps(MAGIC, 2) if magic is None else magic) + \
        (pickle.dumps(1001, 2) if protocol is None else protocol) + \
        (pickle.dumps(info, 2) if sys_info is None else sys_info) + obj_pkl + \
        (pickle.dumps(keys, 2) if keys_pkl is None else keys_pkl) + \
        b"".join(struct.pack("<q", n) + data for n, data in blobs)


def legacy_tensor_file(size=(4,), stride=(1,), offset=0, numel=4, count=None,
                       data=F4, view=None) -> bytes:
    obj = state_dict(w=tensor(storage("0", numel, legacy=True, view=view), offset, size, stride))
    return torch_legacy(obj, ["0"], [(numel if count is None else count, data)])


def zip_tensor_file(size=(4,), stride=(1,), offset=0, numel=4, data=F4, **kw) -> bytes:
    return torch_zip(state_dict(w=tensor(storage("0", numel), offset, size, stride)),
                     {"0": data}, **kw)


def array_tree(body: bytes, proto: int = 2) -> bytes:
    return pkl(body, proto)


def np_array(shape=(2,), dtype=b"", state=None, spec="f8") -> bytes:
    """numpy's own pickle of an array: _reconstruct + BUILD (version, shape, dtype, F, data)."""
    dt = call(g("numpy", "dtype"), v(spec), v(False), v(True)) + \
        v((3, "<", None, None, None, -1, -1, 0)) + b"b"
    if state is None:
        state = tup(v(1), v(shape), dt, v(False), v(np.arange(int(np.prod(shape)),
                                                             dtype=spec).tobytes()))
    return call(g("numpy.core.multiarray", "_reconstruct"), g("numpy", "ndarray"), v((0,)),
                v(b"b")) + state + b"b"


def _summary_of_array(values, dtype="float32", shape=None):
    a = np.asarray(values, dtype=np.float64)
    return {"dtype": dtype, "shape": list(a.shape if shape is None else shape),
            "head": a.ravel()[:8].tolist(), "sum": float(a.sum())}


def summarize(obj, _budget=None):
    """A JSON-able digest of a loaded object (what positive controls are compared with); stops
    after 10,000 nodes, so a tree that a broken reader expanded cannot stall the worker."""
    budget = [10_000] if _budget is None else _budget
    budget[0] -= 1
    if budget[0] < 0:
        return "<truncated>"
    if isinstance(obj, np.ndarray) and obj.dtype.kind not in "biuf":
        return {"dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, np.ndarray):
        return {"dtype": str(obj.dtype), "shape": list(obj.shape),
                "head": obj.astype(np.float64).ravel()[:8].tolist(),
                "sum": float(obj.astype(np.float64).sum())}
    if isinstance(obj, dict):
        return {str(k): summarize(x, budget) for k, x in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [summarize(x, budget) for x in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return f"<{type(obj).__name__}>"


W22 = {"w": _summary_of_array([[1, 2], [3, 4]])}


# ---------------------------------------------------------------------------------------------
# Positive controls: the builders above make files the reader loads.

@case("control", None, expect=W22)
def valid_zip():
    return zip_tensor_file(size=(2, 2), stride=(2, 1))


@case("control", None, expect=W22)
def valid_zip_deflated():
    return zip_tensor_file(size=(2, 2), stride=(2, 1), compress=zipfile.ZIP_DEFLATED)


@case("control", None, expect=W22)
def valid_zip_big_endian():
    return zip_tensor_file(size=(2, 2), stride=(2, 1), data=struct.pack(">4f", 1, 2, 3, 4),
                           byteorder=b"big")


@case("control", None, expect={"w": _summary_of_array([[1, 3], [2, 4]])})
def valid_legacy_transposed():
    return legacy_tensor_file(size=(2, 2), stride=(1, 2))


@case("control", None, expect={"w": _summary_of_array([3, 4])})
def valid_legacy_view():
    return legacy_tensor_file(size=(2,), view=("v", 2, 2))


@case("control", None, peak_mib=24, expect={"w": {
    "dtype": "float32", "shape": [1024, 1024], "head": [0, 1, 2, 3, 4, 5, 6, 7],
    "sum": 1024.0 * 523776}})
def valid_zero_stride_within_cap():
    # 4 MiB of view over a 4 KiB storage: inside the 64 MiB allowance.
    data = np.arange(1024, dtype="<f4").tobytes()
    return zip_tensor_file(size=(1024, 1024), stride=(0, 1), numel=1024, data=data)


@case("control", None, expect={"w": {"dtype": "float32", "shape": [0, 5], "head": [],
                                     "sum": 0.0}})
def valid_empty_tensor():
    return zip_tensor_file(size=(0, 5), stride=(5, 1))


@case("control", None, loader="array", expect={"a": _summary_of_array(np.arange(6), "float64"),
                                               "b": [1, "x"]})
def valid_array_pickle():
    return pickle.dumps({"a": np.arange(6, dtype="f8"), "b": [1, "x"]}, protocol=3)


@case("control", None, loader="array", expect={"a": {"dtype": ">i4", "shape": [2, 3],
                                                     "head": [0, 1, 2, 3, 4, 5], "sum": 15.0}})
def valid_array_pickle_fortran_big_endian():
    return pickle.dumps({"a": np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3))},
                        protocol=2)


# ---------------------------------------------------------------------------------------------
# Tensors whose size, stride or offset do not fit their storage.

@case("tensor-bounds", FORMAT, "64 MiB allowed for views")
def zero_stride_8gib():
    return zip_tensor_file(size=(2 ** 15, 2 ** 16), stride=(0, 0), numel=1, data=F4[:4])


@case("tensor-bounds", FORMAT, "64 MiB allowed for views")
def zero_stride_256mib():
    return zip_tensor_file(size=(2 ** 13, 2 ** 13), stride=(0, 0), numel=1, data=F4[:4])


@case("tensor-bounds", FORMAT, "64 MiB allowed for views")
def zero_stride_8gib_legacy():
    return legacy_tensor_file(size=(2 ** 15, 2 ** 16), stride=(0, 0), numel=1, data=F4[:4])


@case("tensor-bounds", FORMAT, "64 MiB allowed for views")
def overlapping_stride_square():
    n = 16384
    return zip_tensor_file(size=(8192, 8192), stride=(1, 1), numel=n,
                           data=bytes(4 * n))


@case("tensor-bounds", FORMAT, "64 MiB allowed for views", peak_mib=80)
def many_views_of_one_storage():
    # 100 distinct, nearly full views of one 1 MiB storage: 100 MiB of copies from a 1 MiB file.
    n = 262144
    pid = storage("0", n)
    body = odict(*((v(f"t{i}"), tensor(pid, i, (n - i,), (1,))) for i in range(100)))
    return torch_zip(pkl(body), {"0": bytes(4 * n)})


@case("tensor-bounds", FORMAT, "reaches element 9 of storage '0', which holds 4")
def size_past_storage():
    return zip_tensor_file(size=(10,))


@case("tensor-bounds", FORMAT, "reaches element 4")
def offset_past_storage():
    return zip_tensor_file(size=(1,), offset=4)


@case("tensor-bounds", FORMAT, "reaches element 5")
def stride_past_storage():
    return zip_tensor_file(size=(2, 2), stride=(3, 2))


@case("tensor-bounds", FORMAT, "non-negative ints")
def negative_size():
    return zip_tensor_file(size=(-1,))


@case("tensor-bounds", FORMAT, "non-negative ints")
def negative_stride():
    return zip_tensor_file(size=(2,), stride=(-1,))


@case("tensor-bounds", FORMAT, "storage offset must be a non-negative int")
def negative_offset():
    return zip_tensor_file(size=(2,), offset=-1)


@case("tensor-bounds", FORMAT, "non-negative ints below 2**62, got 4.0")
def float_size():
    return zip_tensor_file(size=(4.0,))


@case("tensor-bounds", FORMAT, "got '4'")
def string_size():
    return zip_tensor_file(size=("4",))


@case("tensor-bounds", FORMAT, "got True")
def bool_size():
    return zip_tensor_file(size=(True,))


@case("tensor-bounds", FORMAT, "storage offset must be a non-negative int, got 0.0")
def float_offset():
    return zip_tensor_file(offset=0.0)


@case("tensor-bounds", FORMAT, "got '1'")
def string_stride():
    return zip_tensor_file(stride=("1",))


@case("tensor-bounds", FORMAT, "disagree in length")
def size_stride_rank_mismatch():
    return zip_tensor_file(size=(4,), stride=(1, 1))


@case("tensor-bounds", FORMAT, "at most 64")
def ndim_65():
    return zip_tensor_file(size=(1,) * 65, stride=(1,) * 65)


@case("tensor-bounds", FORMAT, "must be a tuple")
def size_is_an_int():
    return zip_tensor_file(size=4)


@case("tensor-bounds", FORMAT, "too large for NumPy")
def empty_tensor_with_huge_dims():
    return zip_tensor_file(size=(0, 2 ** 61, 2 ** 61), stride=(1, 1, 1))


@case("tensor-bounds", FORMAT, "below 2**62")
def dim_of_2_64():
    return zip_tensor_file(size=(2 ** 64,))


# ---------------------------------------------------------------------------------------------
# Zip storages and zip structure.

@case("zip", FORMAT, "holds 16 bytes, but the checkpoint declares 4000")
def count_exceeds_entry():
    return zip_tensor_file(numel=1000)


@case("zip", FORMAT, "holds 1048576 bytes, but the checkpoint declares 4")
def entry_exceeds_count():
    return zip_tensor_file(size=(1,), numel=1, data=bytes(MIB))


@case("zip", FORMAT, "decompression bomb")
def deflate_bomb_storage():
    # 128 MiB of zeros deflated to ~130 KB, and a storage that declares all of it.
    packed, crc = deflated_zeros(128 * MIB)
    n = 32 * MIB
    return raw_zip([
        {"name": "archive/data.pkl", "payload": state_dict(w=tensor(storage("0", n), 0, (n,)))},
        {"name": "archive/data/0", "payload": packed, "method": 8, "crc": crc,
         "file_size": 128 * MIB},
    ])


@case("zip", FORMAT, "CRC")
def deflate_bomb_lying_size():
    # The header says 16 bytes; the deflate stream holds 128 MiB. Only 16 bytes are inflated.
    packed, crc = deflated_zeros(128 * MIB)
    return raw_zip([
        {"name": "archive/data.pkl", "payload": state_dict(w=tensor(storage("0", 4)))},
        {"name": "archive/data/0", "payload": packed, "method": 8, "crc": crc,
         "file_size": 16},
    ])


@case("zip", FORMAT, "decompression bomb")
def deflate_bomb_data_pkl():
    packed, crc = deflated_zeros(64 * MIB)
    return raw_zip([{"name": "archive/data.pkl", "payload": packed, "method": 8, "crc": crc,
                     "file_size": 64 * MIB}])


@case("zip", FORMAT, "entries overlap or lie about their sizes")
def compress_size_beyond_file():
    # Claims 2 GiB of compressed data (the file has a few hundred bytes) inflating to 3.75 GiB.
    n = 0xF0000000 // 4
    return raw_zip([
        {"name": "archive/data.pkl", "payload": state_dict(w=tensor(storage("0", n), 0, (n,)))},
        {"name": "archive/data/0", "payload": deflate(bytes(64)), "method": 8,
         "compress_size": 0x7FFFFFFF, "file_size": 0xF0000000},
    ])


def _local_header(name: bytes, crc: int, size: int) -> bytes:
    return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc, size, size,
                       len(name), 0) + name


def _central_header(name: bytes, crc: int, size: int, offset: int) -> bytes:
    return struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, crc, size,
                       size, len(name), 0, 0, 0, 0, 0, offset) + name


@case("zip", FORMAT, "verlap")
def overlapping_entries():
    # Stored entries nested like dolls: entry i's data is entry i+1's header and data, so 400
    # storages of ~256 KiB each (100 MiB) come from one 256 KiB region of the file.
    count = 400
    names = [f"archive/data/{i}".encode() for i in range(count)]
    data, meta = bytes(256 << 10), []
    for name in reversed(names):
        meta.append((name, zlib.crc32(data), len(data)))
        data = _local_header(*meta[-1]) + data
    meta.reverse()
    body = state_dict(**{f"t{i}": tensor(storage(str(i), size, "ByteStorage"), 0, (1,))
                         for i, (_, _, size) in enumerate(meta)})
    pkl_name = b"archive/data.pkl"
    out = _local_header(pkl_name, zlib.crc32(body), len(body)) + body
    central = _central_header(pkl_name, zlib.crc32(body), len(body), 0)
    offset = len(out)
    for name, crc, size in meta:
        central += _central_header(name, crc, size, offset)
        offset += 30 + len(name)
    start = len(out) + len(data)
    n = count + 1
    return out + data + central + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n,
                                              len(central), start, 0)


@case("zip", FORMAT, "compression method 12")
def bzip2_entry():
    return torch_zip(state_dict(w=tensor(storage("0", 4))), {},
                     extra=(("archive/data/0", F4, zipfile.ZIP_BZIP2),))


@case("zip", FORMAT, "compression method 14")
def lzma_entry():
    return torch_zip(state_dict(w=tensor(storage("0", 4))), {},
                     extra=(("archive/data/0", F4, zipfile.ZIP_LZMA),))


@case("zip", FORMAT, "encrypted")
def encrypted_entry():
    return raw_zip([
        {"name": "archive/data.pkl", "payload": state_dict(w=tensor(storage("0", 4)))},
        {"name": "archive/data/0", "payload": F4, "flags": 1},
    ])


@case("zip", FORMAT, "stored zip entry")
def stored_sizes_disagree():
    return raw_zip([
        {"name": "archive/data.pkl", "payload": state_dict(w=tensor(storage("0", 4)))},
        {"name": "archive/data/0", "payload": F4[:8], "raw": F4, "compress_size": 8},
    ])


@case("zip", FORMAT, "zip directory")
def huge_central_directory():
    data = raw_zip([{"name": "archive/data.pkl", "payload": state_dict()}],
                   cd_size=0x7FFFFFFF)
    return data


@case("control", None, peak_mib=24, expect={})
def valid_zip_with_a_large_directory():
    # 38,000 entries (a 2 MB directory), just inside the 2 MiB cap: zipfile's own parse of it is
    # the most memory a zip's directory can cost.
    return raw_zip([{"name": "archive/data.pkl", "payload": state_dict()}]
                   + [{"name": f"x/{i}", "payload": b""} for i in range(38_000)])


@case("zip", FORMAT, "zip directory")
def two_hundred_thousand_entries():
    return raw_zip([{"name": "archive/data.pkl", "payload": state_dict()}]
                   + [{"name": f"x/{i}", "payload": b""} for i in range(200_000)])


@case("zip", FORMAT, "'archive/data/0' appears twice")
def duplicate_storage_entry():
    return torch_zip(state_dict(w=tensor(storage("0", 4))), extra=(("archive/data/0", F4),))


@case("zip", FORMAT, "'archive/data.pkl' appears twice")
def duplicate_data_pkl():
    return torch_zip(state_dict(w=tensor(storage("0", 4))),
                     extra=(("archive/data.pkl", state_dict()),))


@case("zip", FORMAT, "without a single '<archive>/data.pkl' (found 2)")
def two_archives():
    return torch_zip(state_dict(), extra=(("other/data.pkl", state_dict()),))


@case("zip", FORMAT, "found 0")
def no_data_pkl():
    return raw_zip([{"name": "archive/byteorder", "payload": b"little"}])


@case("zip", FORMAT, "bad archive name '..'")
def archive_name_parent_dir():
    return torch_zip(state_dict(w=tensor(storage("0", 4))), archive="..")


@case("zip", FORMAT, "bad archive name ''")
def archive_name_absolute():
    return raw_zip([{"name": "/data.pkl", "payload": state_dict()}])


@case("zip", FORMAT, "bad archive name")
def archive_name_backslash():
    return torch_zip(state_dict(), archive="..\\..\\evil")


@case("zip", FORMAT, "bad storage key '../../etc/passwd'")
def storage_key_traversal():
    return torch_zip(state_dict(w=tensor(storage("../../etc/passwd", 4))))


@case("zip", FORMAT, "storage entry 'archive/data/1' is missing")
def missing_storage_entry():
    return torch_zip(state_dict(w=tensor(storage("1", 4))))


@case("zip", FORMAT, "not a readable PyTorch checkpoint")
def truncated_zip():
    data = zip_tensor_file()
    return data[: len(data) // 2]


@case("zip", FORMAT, "not a readable PyTorch checkpoint")
def zip_magic_then_garbage():
    return b"PK\x03\x04" + bytes(random.Random(1).randrange(256) for _ in range(500))


@case("zip", FORMAT, "reads b'LITTLE'; expected exactly 'little' or 'big'")
def byteorder_upper_case():
    return zip_tensor_file(byteorder=b"LITTLE")


@case("zip", FORMAT, "expected exactly 'little' or 'big'")
def byteorder_with_newline():
    return zip_tensor_file(byteorder=b"little\n")


@case("zip", FORMAT, "byteorder entry is 1048576 bytes")
def byteorder_huge():
    return zip_tensor_file(byteorder=bytes(MIB))


@case("zip", FORMAT, "storage '0' is declared twice")
def storage_declared_twice():
    return torch_zip(state_dict(a=tensor(storage("0", 4)), b=tensor(storage("0", 8))))


@case("zip", FORMAT, "declared twice")
def storage_dtype_conflict():
    return torch_zip(state_dict(a=tensor(storage("0", 4)),
                                b=tensor(storage("0", 4, "IntStorage"))))


# ---------------------------------------------------------------------------------------------
# Pickle structure: sharing, nesting, cycles, the memo, the stack, opcodes and their arguments.

def _shared_lists(levels: int) -> bytes:
    # x0 = []; x{k+1} = [x_k, x_k]: 795 bytes at 24 levels, 2**25 nodes as a tree.
    body = b"]q\x00"
    for _ in range(levels):
        body += b"0(h\x00h\x00lq\x00"
    return body


@case("pickle-structure", FORMAT, "more than 1048576 nodes")
def shared_references_24_levels():
    return torch_zip(pkl(_shared_lists(24)), {})


@case("pickle-structure", FORMAT, "more than 1048576 nodes", loader="array")
def shared_references_64_levels_array():
    return pkl(_shared_lists(64))


@case("pickle-structure", FORMAT, "more than 1048576 nodes", loader="array")
def shared_dict_references():
    body = b"}q\x00"
    for _ in range(40):
        body += b"0(X\x01\x00\x00\x00ah\x00X\x01\x00\x00\x00bh\x00dq\x00"
    return pkl(body)


@case("pickle-structure", FORMAT, "nested more than 100 deep", peak_mib=24)
def deep_list():
    n = 100_000
    return torch_zip(pkl(b"]" * n + b"a" * (n - 1)), {})


@case("pickle-structure", FORMAT, "nested more than 100 deep", loader="array", peak_mib=24)
def deep_dict():
    n = 50_000
    return pkl((b"}X\x01\x00\x00\x00k") * n + b"}" + b"s" * n)


@case("pickle-structure", FORMAT, "nested more than 100 deep", loader="array", peak_mib=24)
def deep_tuple():
    return pkl(b")" + b"\x85" * 200_000)


@case("pickle-structure", FORMAT, "a dict key must be a number, string or flat tuple",
      loader="array", peak_mib=24)
def deep_tuple_as_dict_key():
    # Hashing a 200k-deep tuple would recurse in C; keys must be flat.
    return pkl(b"}" + b")" + b"\x85" * 200_000 + b"Ns")


@case("pickle-structure", FORMAT, "a dict key must be")
def list_as_dict_key():
    return torch_zip(pkl(b"}]Ns"), {})


@case("pickle-structure", FORMAT, "a set item must be", loader="array")
def frozenset_of_lists():
    return pkl(b"(]\x91", proto=4)


@case("pickle-structure", FORMAT, "refers to itself")
def self_referencing_list():
    return torch_zip(pkl(b"]q\x00h\x00a"), {})


@case("pickle-structure", FORMAT, "refers to itself", loader="array")
def self_referencing_dict():
    return pkl(b"}q\x00X\x01\x00\x00\x00kh\x00s")


@case("pickle-structure", FORMAT, "refers to itself")
def self_referencing_ordered_dict():
    return torch_zip(pkl(call(g("collections", "OrderedDict")) + b"q\x00X\x01\x00\x00\x00kh\x00s"),
                     {})


@case("pickle-structure", FORMAT, "bad memo index 4294967295")
def memo_index_2_32():
    return torch_zip(pkl(b"N" + b"r" + struct.pack("<I", 2 ** 32 - 1)), {})


@case("pickle-structure", FORMAT, "memo entry 5 is read before it is written", loader="array")
def memo_read_undefined():
    return pkl(b"h\x05")


@case("pickle-structure", FORMAT, "bad memo index", loader="array")
def memo_put_text_negative():
    return b"(lp-1\n."


@case("pickle-structure", FORMAT, "too few items on its stack")
def stack_underflow():
    return torch_zip(pkl(b"R"), {})


@case("pickle-structure", FORMAT, "unbalanced stack", loader="array")
def stop_with_two_items():
    return pkl(b"NN")


@case("pickle-structure", FORMAT, "unbalanced stack", loader="array")
def stop_inside_mark():
    return pkl(b"(N")


@case("pickle-structure", FORMAT, "without a MARK", loader="array")
def appends_without_mark():
    return pkl(b"]Ne")


@case("pickle-structure", FORMAT, "opcode b'\\xff' unknown", loader="array")
def unknown_opcode():
    return pkl(b"\xff")


@case("pickle-structure", FORMAT, "pickle exhausted before seeing STOP", loader="array")
def no_stop():
    return b"\x80\x02N"


@case("pickle-structure", FORMAT, "unsupported pickle protocol 6", loader="array")
def protocol_6():
    return pkl(b"N", proto=6)


@case("pickle-structure", FORMAT, "more than 262144 opcodes", loader="array")
def opcode_flood():
    return pkl(b"N0" * (1 << 17) + b"N")


@case("pickle-structure", FORMAT, "more than 262144 opcodes", loader="array", peak_mib=32)
def object_flood():
    # The most objects the cap lets live at once: 2**18 empty dicts on the stack.
    return pkl(b"}" * ((1 << 18) + 1))


@case("pickle-structure", FORMAT, "not a readable array pickle (ValueError", loader="array")
def long_text_million_digits():
    return b"L" + b"9" * 1_000_000 + b"L\n."


@case("pickle-structure", FORMAT, "long4", loader="array")
def long4_length_lies():
    return pkl(b"\x8b" + struct.pack("<i", 2 ** 31 - 1) + b"\x01\x02")


@case("pickle-structure", FORMAT, "byte count > sys.maxsize", loader="array")
def binunicode8_length_2_63():
    return pkl(b"\x8d" + struct.pack("<Q", 2 ** 63 + 1) + b"abc", proto=4)


@case("pickle-structure", FORMAT, "bytes in a bytes8", loader="array")
def binbytes8_length_lies():
    return pkl(b"\x8e" + struct.pack("<Q", 2 ** 40) + b"abc", proto=4)


@case("pickle-structure", FORMAT, "UnicodeDecodeError", loader="array")
def invalid_utf8():
    return pkl(b"X\x02\x00\x00\x00\xff\xfe")


@case("pickle-structure", FORMAT, "not ASCII", loader="array")
def python2_string_not_ascii():
    return pkl(b"U\x01\xe9")


@case("pickle-structure", FORMAT, "out-of-band buffers", loader="array")
def next_buffer():
    return pkl(b"\x97", proto=5)


# ---------------------------------------------------------------------------------------------
# Globals: nothing outside the allow-list, and allowed ones only where a weight file uses them.

@case("globals", UNSAFE, "refusing to load global 'os.system'")
def global_os_system():
    return torch_zip(pkl(call(g("os", "system"), v("echo pwned"))), {})


@case("globals", UNSAFE, "refusing to load global 'builtins.eval'", loader="array")
def stack_global_eval():
    return pkl(v("builtins") + v("eval") + b"\x93" + tup(v("1")) + b"R", proto=4)


@case("globals", UNSAFE, "refusing pickle opcode INST", loader="array")
def inst_opcode():
    return b"(S'echo pwned'\nios\nsystem\n."


@case("globals", UNSAFE, "refusing pickle opcode OBJ")
def obj_opcode_allowed_class():
    return torch_zip(pkl(b"(" + g("collections", "OrderedDict") + b"o"), {})


@case("globals", UNSAFE, "refusing pickle opcode NEWOBJ")
def newobj_allowed_class():
    return torch_zip(pkl(g("collections", "OrderedDict") + b")\x81"), {})


@case("globals", UNSAFE, "refusing pickle opcode NEWOBJ_EX", loader="array")
def newobj_ex():
    return pkl(g("collections", "OrderedDict") + b")}\x92", proto=4)


@case("globals", UNSAFE, "extension registry", loader="array")
def ext1_code():
    return pkl(b"\x82\x01")


@case("globals", UNSAFE, "refusing to load global")
def global_name_with_space():
    return torch_zip(pkl(b"ccollections OrderedDict\nx\n"), {})


@case("globals", UNSAFE, "refusing to load global 'collections.OrderedDict.fromkeys'")
def global_attribute_path():
    return torch_zip(pkl(call(g("collections", "OrderedDict.fromkeys"), v([1]))), {})


@case("globals", UNSAFE, "'torch._utils._rebuild_tensor_v2.__globals__'")
def global_dunder():
    return torch_zip(pkl(g("torch._utils", "_rebuild_tensor_v2.__globals__")), {})


@case("globals", UNSAFE, "refusing to load global 'torch._utils._rebuild_tensor_v2'",
      loader="array")
def torch_global_in_array_pickle():
    return pkl(g("torch._utils", "_rebuild_tensor_v2"))


@case("globals", UNSAFE, "it may appear only as an argument")
def call_storage_type():
    return torch_zip(pkl(call(g("torch", "FloatStorage"), v(4))), {})


@case("globals", UNSAFE, "it may appear only as an argument")
def call_tensor_type():
    return torch_zip(pkl(call(g("torch", "Tensor"))), {})


@case("globals", UNSAFE, "refusing to call a dict")
def call_a_dict():
    return torch_zip(pkl(b"})R"), {})


@case("globals", FORMAT, "must be a tuple")
def reduce_args_not_a_tuple():
    return torch_zip(pkl(g("collections", "OrderedDict") + b"NR"), {})


@case("globals", FORMAT, "OrderedDict must be called with () or a list of pairs")
def ordered_dict_odd_args():
    return torch_zip(pkl(call(g("collections", "OrderedDict"), v(5))), {})


@case("globals", FORMAT, "(key, value) pairs")
def ordered_dict_bad_pairs():
    return torch_zip(pkl(call(g("collections", "OrderedDict"), v([[1, 2, 3]]))), {})


@case("globals", UNSAFE, "may only call a tensor rebuild function")
def rebuild_from_type_calls_ordered_dict():
    return torch_zip(pkl(call(g("torch._tensor", "_rebuild_from_type_v2"),
                              g("collections", "OrderedDict"), g("torch", "Tensor"), v(()),
                              v(None))), {})


@case("globals", UNSAFE, "may only make a Tensor or Parameter")
def rebuild_from_type_wrong_type():
    return torch_zip(pkl(call(g("torch._tensor", "_rebuild_from_type_v2"),
                              g("torch._utils", "_rebuild_tensor_v2"),
                              g("torch", "FloatStorage"), v(()), v(None))), {})


@case("globals", UNSAFE, "which is not a storage")
def rebuild_tensor_from_a_dict():
    return torch_zip(pkl(call(g("torch._utils", "_rebuild_tensor_v2"), b"}", v(0), v((1,)),
                              v((1,)), v(False), odict())), {})


@case("globals", FORMAT, "got 2 arguments")
def rebuild_tensor_too_few_args():
    return torch_zip(pkl(call(g("torch._utils", "_rebuild_tensor_v2"), storage(), v(0))))


@case("globals", UNSAFE, "which is not a tensor")
def rebuild_parameter_from_an_int():
    return torch_zip(pkl(call(g("torch._utils", "_rebuild_parameter"), v(1), v(False),
                              odict())), {})


@case("globals", UNSAFE, "refusing to call numpy.ndarray", loader="array")
def numpy_ndarray_called_then_setitems():
    # numpy.ndarray((3,), 'O') would make an object array that SETITEMS fills with anything.
    return pkl(call(g("numpy", "ndarray"), v((3,)), v("O")) + b"(K\x00" + v("any object") +
               b"u")


@case("globals", UNSAFE, "object arrays are refused", loader="array")
def numpy_object_dtype():
    return pkl(call(g("numpy", "dtype"), v("O8"), v(False), v(True)))


@case("globals", UNSAFE, "object arrays are refused", loader="array")
def numpy_real_object_array():
    return pickle.dumps({"a": np.array([1, "x"], dtype=object)}, protocol=2)


@case("globals", FORMAT, "data must be bytes", loader="array")
def numpy_array_data_is_a_list():
    dt = call(g("numpy", "dtype"), v("f8"), v(False), v(True))
    return pkl(np_array(state=tup(v(1), v((2,)), dt, v(False), v([1.0, 2.0]))))


@case("globals", FORMAT, "'f3' is not a numpy dtype", loader="array")
def numpy_dtype_that_does_not_exist():
    return pkl(call(g("numpy", "dtype"), v("f3"), v(False), v(True)))


@case("globals", FORMAT, "unsupported numpy dtype 'q99'", loader="array")
def numpy_dtype_unknown_name():
    return pkl(call(g("numpy", "dtype"), v("q99"), v(False), v(True)))


@case("globals", FORMAT, "unsupported numpy dtype 'M8'", loader="array")
def numpy_datetime_dtype():
    return pkl(call(g("numpy", "dtype"), v("M8"), v(False), v(True)))


@case("globals", FORMAT, "structured and sub-array numpy dtypes", loader="array")
def numpy_structured_dtype():
    return pkl(call(g("numpy", "dtype"), v("f8"), v(False), v(True)) +
               v((3, "|", None, ("a",), {"a": 1}, 8, 1, 16)) + b"b")


@case("globals", FORMAT, "needs 8000 bytes, the file holds 16", loader="array")
def numpy_data_shorter_than_shape():
    dt = call(g("numpy", "dtype"), v("f8"), v(False), v(True))
    return pkl(np_array(state=tup(v(1), v((1000,)), dt, v(False), v(bytes(16)))))


@case("globals", FORMAT, "the file holds 16", loader="array")
def numpy_huge_shape():
    dt = call(g("numpy", "dtype"), v("f8"), v(False), v(True))
    return pkl(np_array(state=tup(v(1), v((2 ** 40, 2 ** 20)), dt, v(False), v(bytes(16)))))


@case("globals", FORMAT, "never received its data", loader="array")
def numpy_array_without_build():
    return pkl(call(g("numpy.core.multiarray", "_reconstruct"), g("numpy", "ndarray"), v((0,)),
                    v(b"b")))


@case("globals", UNSAFE, "_codecs.encode may only turn text into latin-1 bytes", loader="array")
def codecs_encode_other_codec():
    return pkl(call(g("_codecs", "encode"), v("x"), v("rot13")))


@case("globals", UNSAFE, "refusing to load global '_codecs.encode'")
def codecs_encode_in_torch_file():
    return torch_zip(pkl(call(g("_codecs", "encode"), v("x"), v("latin1"))), {})


@case("globals", UNSAFE, "only plain numpy.ndarray", loader="array")
def numpy_reconstruct_other_type():
    return pkl(call(g("numpy.core.multiarray", "_reconstruct"), g("collections", "OrderedDict"),
                    v((0,)), v(b"b")))


@case("globals", FORMAT, "needs 8 bytes", loader="array")
def numpy_scalar_wrong_length():
    return pkl(call(g("numpy.core.multiarray", "scalar"),
                    call(g("numpy", "dtype"), v("f8"), v(False), v(True)), v(b"\x00")))


# ---------------------------------------------------------------------------------------------
# State and items set on objects: never on the allow-listed names, only on what BUILD may fill.

@case("mutation", UNSAFE, "refusing to set the state of the global torch.FloatStorage")
def build_on_storage_type():
    return torch_zip(pkl(g("torch", "FloatStorage") + v({"dtype": "bogus", "name": "x"}) + b"b"),
                     {})


@case("mutation", UNSAFE, "refusing to set the state of the global torch._utils._rebuild_tensor_v2")
def build_setstate_on_rebuild_function():
    return torch_zip(pkl(g("torch._utils", "_rebuild_tensor_v2") + b"(X\x0c\x00\x00\x00__setstate__"
                         + g("collections", "OrderedDict") + b"db"), {})


@case("mutation", UNSAFE, "refusing to set the state of the global torch.Tensor")
def build_slot_state_on_tensor_type():
    return torch_zip(pkl(g("torch", "Tensor") + v((None, {"x": 1})) + b"b"), {})


@case("mutation", UNSAFE, "the global numpy.core.multiarray._reconstruct", loader="array")
def build_on_numpy_reconstruct():
    return pkl(g("numpy.core.multiarray", "_reconstruct") + v({"__call__": 1}) + b"b")


@case("mutation", UNSAFE, "refusing to set items on the global collections.OrderedDict")
def setitems_on_global():
    return torch_zip(pkl(g("collections", "OrderedDict") + b"(X\x01\x00\x00\x00aK\x01u"), {})


@case("mutation", UNSAFE, "refusing to append to the global numpy.dtype", loader="array")
def append_on_global():
    return pkl(g("numpy", "dtype") + b"Na")


@case("mutation", UNSAFE, "refusing to add items to the global torch.FloatStorage")
def additems_on_global():
    return torch_zip(pkl(g("torch", "FloatStorage") + b"(K\x01\x90", proto=4), {})


@case("mutation", UNSAFE, "refusing to set the state of a tensor")
def build_on_tensor():
    return torch_zip(pkl(tensor(storage("0", 4)) + v({"x": 1}) + b"b"))


@case("mutation", UNSAFE, "refusing to set the state of a dict")
def build_on_plain_dict():
    return torch_zip(pkl(b"}" + v({"x": 1}) + b"b"), {})


@case("mutation", FORMAT, "OrderedDict attributes must be a dict of names")
def build_ordered_dict_with_a_list():
    return torch_zip(pkl(odict() + v([1, 2]) + b"b"), {})


@case("mutation", FORMAT, "a numpy dtype receives its state twice", loader="array")
def build_dtype_twice():
    st = v((3, "<", None, None, None, -1, -1, 0))
    return pkl(call(g("numpy", "dtype"), v("f8"), v(False), v(True)) + st + b"b" + st + b"b")


# ---------------------------------------------------------------------------------------------
# Persistent ids (the storage references) of the wrong shape.

@case("persistent-id", FORMAT, "unknown persistent id 'storage'")
def persistent_id_text_string():
    return torch_zip(b"\x80\x02Pstorage\n.")


@case("persistent-id", FORMAT, "unknown persistent id a tuple of 4 items")
def persistent_id_four_items():
    return torch_zip(pkl(storage(parts=(v("storage"), g("torch", "FloatStorage"), v("0"),
                                        v("cpu")))))


@case("persistent-id", FORMAT, "unknown persistent id a tuple of 6 items")
def persistent_id_legacy_shape_in_zip():
    return torch_zip(pkl(storage(legacy=True)))


@case("persistent-id", FORMAT, "unknown persistent id")
def persistent_id_wrong_tag():
    return torch_zip(pkl(storage(parts=(v("module"), g("torch", "FloatStorage"), v("0"),
                                        v("cpu"), v(4)))))


@case("persistent-id", UNSAFE, "storage of unknown type 'FloatStorage'")
def persistent_id_type_is_a_string():
    return torch_zip(pkl(storage(parts=(v("storage"), v("FloatStorage"), v("0"), v("cpu"),
                                        v(4)))))


@case("persistent-id", UNSAFE, "storage of unknown type the global collections.OrderedDict")
def persistent_id_type_is_ordered_dict():
    return torch_zip(pkl(storage(parts=(v("storage"), g("collections", "OrderedDict"), v("0"),
                                        v("cpu"), v(4)))))


@case("persistent-id", FORMAT, "element count -4")
def persistent_id_negative_count():
    return torch_zip(pkl(storage(numel=-4)))


@case("persistent-id", FORMAT, "element count 4.0")
def persistent_id_float_count():
    return torch_zip(pkl(storage(numel=4.0)))


@case("persistent-id", FORMAT, "element count an int of 71 bits")
def persistent_id_count_2_70():
    return torch_zip(pkl(storage(numel=2 ** 70)))


@case("persistent-id", FORMAT, "bad storage key 0")
def persistent_id_key_not_a_string():
    return torch_zip(pkl(storage(key=0)))


@case("persistent-id", FORMAT, "bad storage location")
def persistent_id_location_not_a_string():
    return torch_zip(pkl(storage(location=None)))


@case("persistent-id", UNSAFE, "unexpected persistent id in an array pickle", loader="array")
def persistent_id_in_array_pickle():
    return pkl(tup(v("storage")) + b"Q")


# ---------------------------------------------------------------------------------------------
# The legacy layout.

@case("legacy", FORMAT, "needs 1099511627776 bytes, 16 remain")
def legacy_count_2_38():
    return legacy_tensor_file(size=(1,), numel=2 ** 38)


@case("legacy", FORMAT, "records 1152921504606846976 elements, its tensors declare 4")
def legacy_count_2_60():
    return legacy_tensor_file(count=2 ** 60)


@case("legacy", FORMAT, "records -1 elements")
def legacy_count_negative():
    return legacy_tensor_file(count=-1)


@case("legacy", FORMAT, "file is truncated (storage '0' needs 16 bytes, 8 remain)")
def legacy_truncated_storage():
    return legacy_tensor_file(data=F4[:8])


@case("legacy", FORMAT, "bad magic number")
def legacy_bad_magic():
    return torch_legacy(state_dict(), [], [], magic=pickle.dumps(12345, 2))


@case("legacy", FORMAT, "bad magic number", peak_mib=24)
def legacy_magic_megabyte_long():
    return torch_legacy(state_dict(), [], [],
                        magic=pkl(b"\x8b" + struct.pack("<i", MIB) + b"\x07" * MIB))


@case("legacy", FORMAT, "unsupported legacy protocol 1002")
def legacy_wrong_protocol():
    return torch_legacy(state_dict(), [], [], protocol=pickle.dumps(1002, 2))


@case("legacy", FORMAT, "big-endian legacy checkpoints are not supported")
def legacy_big_endian():
    return torch_legacy(state_dict(), [], [],
                        sys_info=pickle.dumps({"little_endian": False}, 2))


@case("legacy", FORMAT, "legacy system info is not a dict")
def legacy_sys_info_list():
    return torch_legacy(state_dict(), [], [], sys_info=pickle.dumps([1], 2))


@case("legacy", FORMAT, "storage key list missing")
def legacy_keys_not_a_list():
    return torch_legacy(state_dict(), [], [], keys_pkl=pickle.dumps("0", 2))


@case("legacy", FORMAT, "a storage key is listed twice")
def legacy_duplicate_keys():
    obj = state_dict(w=tensor(storage("0", 4, legacy=True)))
    return torch_legacy(obj, ["0", "0"], [(4, F4), (4, F4)])


@case("legacy", FORMAT, "data for unknown storage '7'")
def legacy_unknown_key():
    return torch_legacy(state_dict(), ["7"], [(4, F4)])


@case("legacy", FORMAT, "whose data is missing")
def legacy_storage_without_data():
    return torch_legacy(state_dict(w=tensor(storage("0", 4, legacy=True))), [], [])


@case("legacy", FORMAT, "does not fit in storage '0' of 4 elements")
def legacy_view_beyond_root():
    return legacy_tensor_file(size=(2,), view=("v", 3, 2))


@case("legacy", FORMAT, "bad storage view")
def legacy_view_wrong_shape():
    return legacy_tensor_file(size=(2,), view=("v", 2))


@case("legacy", FORMAT, "storage view 'v' is declared twice")
def legacy_view_declared_twice():
    obj = state_dict(a=tensor(storage("0", 4, legacy=True, view=("v", 0, 2)), 0, (2,)),
                     b=tensor(storage("0", 4, legacy=True, view=("v", 1, 2)), 0, (2,)))
    return torch_legacy(obj, ["0"], [(4, F4)])


# ---------------------------------------------------------------------------------------------
# Files that are not checkpoints at all.

@case("files", FORMAT, "pickle exhausted before seeing STOP")
def empty_file():
    return b""


@case("files", FORMAT, "not a readable PyTorch checkpoint")
def random_junk():
    return bytes(random.Random(2).randrange(256) for _ in range(4096))


@case("files", FORMAT, "not a readable PyTorch checkpoint")
def zip_magic_only():
    return b"PK\x03\x04"


@case("files", FORMAT, "not a readable array pickle", loader="array")
def zip_checkpoint_given_to_array_reader():
    return zip_tensor_file()  # 'P' of 'PK' is the text PERSID opcode: a line of binary


@case("files", FORMAT, "bytes after the end of the pickle", loader="array")
def legacy_checkpoint_given_to_array_reader():
    return legacy_tensor_file()  # a pickled magic number, then more


# ---------------------------------------------------------------------------------------------
# The worker.

def _loaders():
    from shiftlpips_jax._src.weights.torch_pickle import load_array_pickle, load_torch_checkpoint
    return {"torch": load_torch_checkpoint, "array": load_array_pickle}


def _limit_address_space(extra: int) -> None:
    if not os.path.exists("/proc/self/statm"):  # not Linux: tracemalloc's peak still bounds
        return
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[0])
    current = pages * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (current + extra, resource.RLIM_INFINITY))


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout("case ran past its time limit")


def _load_once(loader, path: str, seconds: int, traced: bool) -> dict:
    signal.signal(signal.SIGALRM, _alarm)
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    signal.alarm(seconds)
    result: dict = {"error": None, "message": ""}
    try:
        obj = loader(path)
        result["seconds"] = time.perf_counter() - t0
        result["summary"] = summarize(obj)
        signal.alarm(0)
        del obj
    except BaseException as err:  # noqa: BLE001 - the worker reports everything
        signal.alarm(0)
        result["error"], result["message"] = type(err).__name__, str(err)[:2000]
    result.setdefault("seconds", time.perf_counter() - t0)
    if traced:
        result["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result


def _measure(loader, path: str, seconds: int) -> dict:
    """Time from a plain load (tracing slows pure-Python code ~8x), peak from a traced one."""
    timed = _load_once(loader, path, seconds, traced=False)
    traced = _load_once(loader, path, seconds, traced=True)
    timed["peak"] = traced["peak"]
    timed["traced_seconds"] = traced["seconds"]
    if (traced["error"], traced["message"]) != (timed["error"], timed["message"]):
        timed["error"] = "Nondeterministic"
        timed["message"] = f"{timed['message']} | traced: {traced['error']}: {traced['message']}"
    return timed


def run_cases(folder: str, names: list[str], limit_gib: float, seconds: int) -> None:
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name in names:
        c = CASES[name]
        paths[name] = os.path.join(folder, name + (".pth" if c.loader == "torch" else ".ckpt"))
        with open(paths[name], "wb") as fh:
            fh.write(c.build())
    loaders = _loaders()
    _limit_address_space(int(limit_gib * (1 << 30)))
    for name in names:
        c = CASES[name]
        result = _measure(loaders[c.loader], paths[name], seconds)
        result.update(name=name, size=os.path.getsize(paths[name]))
        print(json.dumps(result), flush=True)


def _fuzz_sources() -> dict[str, tuple[str, bytes]]:
    here = os.path.dirname(os.path.abspath(__file__))
    pth = os.path.join(here, "goldens", "pth")
    out = {n: ("torch", open(os.path.join(pth, n), "rb").read())
           for n in ("conv_state_zip.pth", "conv_state_legacy.pth", "zip_mixed.pth",
                     "legacy_mixed.pth")}
    out["tree.ckpt"] = ("array", pickle.dumps(
        {"a": {"k": np.arange(6, dtype="f4").reshape(2, 3)}, "b": [np.int64(3), "x", 1.5]},
        protocol=3))
    out["valid_legacy_view.pth"] = ("torch", valid_legacy_view())
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:                                   # flip bits
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:                                 # set a byte to an extreme
        b[rng.randrange(len(b))] = rng.choice((0, 0x7F, 0x80, 0xFF))
    elif kind == 2:                                 # cut
        del b[rng.randrange(1, len(b)):]
    elif kind == 3:                                 # drop a slice
        i = rng.randrange(len(b))
        del b[i:i + rng.randint(1, 16)]
    else:                                           # write a large little-endian int
        i = rng.randrange(max(len(b) - 8, 1))
        b[i:i + 8] = struct.pack("<Q", rng.choice((2 ** 31 - 1, 2 ** 32 - 1, 2 ** 62, 2 ** 64 - 1)))
    return bytes(b)


def run_fuzz(folder: str, count: int, seed: int, limit_gib: float, seconds: int) -> None:
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    sources = sorted(_fuzz_sources().items())
    jobs = []
    for i in range(count):
        name, (loader, data) = sources[i % len(sources)]
        path = os.path.join(folder, f"m{i}-{name}")
        with open(path, "wb") as fh:
            fh.write(mutate(data, rng))
        jobs.append((f"m{i}-{name}", loader, path))
    loaders = _loaders()
    _limit_address_space(int(limit_gib * (1 << 30)))
    for name, loader, path in jobs:
        result = _measure(loaders[loader], path, seconds)
        result.pop("summary", None)
        result.update(name=name)
        print(json.dumps(result), flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="cases to run (default: all)")
    ap.add_argument("--dir", default="/tmp/hostile_checkpoints")
    ap.add_argument("--fuzz", type=int, default=0, help="run this many mutants instead")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit-gib", type=float, default=2.0,
                    help="address space allowed beyond what the worker uses after imports")
    ap.add_argument("--seconds", type=int, default=60, help="per-case alarm")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # e.g. NaN casts while summarising a mutant
    if args.fuzz:
        run_fuzz(args.dir, args.fuzz, args.seed, args.limit_gib, args.seconds)
    else:
        run_cases(args.dir, args.names or sorted(CASES), args.limit_gib, args.seconds)


if __name__ == "__main__":
    main()
