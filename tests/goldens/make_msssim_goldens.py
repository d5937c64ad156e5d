"""Generate ``msssim.npz`` (MS-SSIM goldens) with the REAL ``pytorch-msssim`` 1.0.0 code.

Run from the repository root with a Python that has torch, ``pytorch-msssim==1.0.0`` and
scikit-image:

    /work/torchvenv/bin/python tests/goldens/make_msssim_goldens.py --out tests/goldens

Keys (images are uint8 NHWC; each value is for ``(images[a], images[b])`` of a pairs row):

* ``rgb256`` (20,): ``pytorch_msssim.ms_ssim(X, Y, data_range=255, size_average=False)`` on
  ``pretrained.npz`` ``images256[pairs256]`` as float32 8-bit values (NCHW).
* ``lab256`` (20,): the same on ``skimage.color.rgb2lab`` images (float64 -> float32),
  ``data_range=100``.
* ``rgb256x200`` (20,), ``rgb181x203`` (20,): the same pairs cropped to ``[:, :h, :w]``:
  non-square, and odd on both axes (exercises the padded 2x2 pooling).
* ``shrink64`` (26,): ``images64[pairs64]`` (64x64, below pytorch-msssim's minimum),
  ``shrinkshift64`` (24,): ``shift64_a`` vs ``shift64_b`` (64x61): the documented small-image
  rule (window at each scale = largest odd size <= min(11, shorter side), sigma 1.5) computed
  with pytorch-msssim's own parts: its ``_ssim`` with a ``_fspecial_gauss_1d`` window of that
  size, ReLU, ``avg_pool2d(2, padding=side % 2)``, the weighted product, the channel mean.
  The script asserts that this composition equals ``ms_ssim`` itself on the 256x256 pairs.

Nothing from the upstream project is copied here: its code is imported and run.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from pytorch_msssim import ms_ssim  # noqa: E402
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim  # noqa: E402
from skimage import color  # noqa: E402


WEIGHTS = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]


def to_t(a):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32).transpose(0, 3, 1, 2)))


def ref_msssim(a, b, data_range):
    with torch.no_grad():
        return ms_ssim(to_t(a), to_t(b), data_range=data_range, size_average=False).numpy()


def ref_shrink(a, b, data_range):
    """The small-image rule from pytorch-msssim's parts (see module docstring)."""
    X, Y = to_t(a), to_t(b)
    w = X.new_tensor(WEIGHTS)
    mcs = []
    with torch.no_grad():
        for i in range(len(WEIGHTS)):
            fit = min(X.shape[-2:])
            size = min(11, fit if fit % 2 else fit - 1)
            win = _fspecial_gauss_1d(size, 1.5).repeat([X.shape[1], 1, 1, 1])
            s, cs = _ssim(X, Y, data_range=data_range, win=win, size_average=False)
            if i < len(WEIGHTS) - 1:
                mcs.append(torch.relu(cs))
                pad = [n % 2 for n in X.shape[2:]]
                X = F.avg_pool2d(X, kernel_size=2, padding=pad)
                Y = F.avg_pool2d(Y, kernel_size=2, padding=pad)
        vals = torch.stack(mcs + [torch.relu(s)], dim=0)
        return torch.prod(vals ** w.view(-1, 1, 1), dim=0).mean(1).numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/goldens")
    args = ap.parse_args()
    pre = np.load(os.path.join(args.out, "pretrained.npz"))
    out = {}

    def over(images, pairs, fn, **kw):
        return np.concatenate([fn(images[[a]], images[[b]], **kw) for a, b in pairs])

    im256, p256 = pre["images256"], pre["pairs256"]
    out["rgb256"] = over(im256.astype(np.float32), p256, ref_msssim, data_range=255.0)
    lab = color.rgb2lab(im256).astype(np.float32)
    out["lab256"] = over(lab, p256, ref_msssim, data_range=100.0)
    check = over(im256.astype(np.float32), p256, ref_shrink, data_range=255.0)
    np.testing.assert_allclose(check, out["rgb256"], rtol=0, atol=1e-7)
    # Non-square and odd-sized views of the same photo pairs (no extra images stored).
    for h, w in ((256, 200), (181, 203)):
        out[f"rgb{h}x{w}"] = over(im256[:, :h, :w].astype(np.float32), p256, ref_msssim,
                                  data_range=255.0)
    try:
        ref_msssim(pre["images64"][:1], pre["images64"][1:2], 255.0)
        raise SystemExit("pytorch-msssim unexpectedly accepted 64x64 images")
    except AssertionError:
        pass
    out["shrink64"] = over(pre["images64"].astype(np.float32), pre["pairs64"], ref_shrink,
                           data_range=255.0)
    out["shrinkshift64"] = np.concatenate([
        ref_shrink(a[None].astype(np.float32), b[None].astype(np.float32), 255.0)
        for a, b in zip(pre["shift64_a"], pre["shift64_b"])])
    out = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in out.items()}
    path = os.path.join(args.out, "msssim.npz")
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)
    print("wrote", path, {k: v.shape for k, v in out.items()})
    print("rgb256[:3]", out["rgb256"][:3], "shrink64[:2]", out["shrink64"][:2])


if __name__ == "__main__":
    sys.exit(main())
