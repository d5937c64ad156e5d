"""Generates small BAPPS-layout folders from real photos with real distortions (for tests).

The photos come from ``skimage.data`` (public-domain / CC0 images bundled with scikit-image);
patches are random crops of a downscaled photo, and each distorted patch gets one or two real
distortions (Gaussian blur, sensor noise, JPEG compression, contrast/colour changes, down-up
sampling, a small translation). Folder layout and file formats follow BAPPS exactly:

* 2AFC: ``<root>/<split>/<set>/{ref,p0,p1}/NNNNNN.png`` and ``judge/NNNNNN.npy`` (a float array of
  shape (1,) in [0, 1]: the fraction of people who preferred p1).
* JND: ``<root>/<split>/<set>/{p0,p1}/NNNNNN.png`` and ``same/NNNNNN.npy`` (fraction who said
  "same").

``judge_fn(ref, p0, p1, rng) -> float`` imposes a hidden rule on the judges (a training test can
then check that a metric learns it); the default draws judges as k/5 like BAPPS val.

Example::

    from bapps_fixture import make_2afc, make_jnd
    make_2afc(tmp / "2afc", {"val/traditional": 6, "val/cnn": 4}, size=64, seed=0)
    make_jnd(tmp / "jnd", {"val/traditional": 6}, size=64, seed=1)
"""

from __future__ import annotations

import io
import os
from typing import Callable, Mapping

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

__all__ = ["make_2afc", "make_jnd", "photo_patch", "distort", "DISTORTIONS"]

# RGB and greyscale photos shipped inside scikit-image (no download needed).
_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "camera",
           "brick", "gravel", "hubble_deep_field", "colorwheel")
_photo_cache: dict[str, np.ndarray] = {}


def _photo(name: str) -> np.ndarray:
    if name not in _photo_cache:
        import skimage.data  # test-only dependency
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        # Downscale so a small patch still holds some structure.
        h, w = img.shape[:2]
        scale = 200.0 / min(h, w)
        img = np.asarray(Image.fromarray(img[..., :3]).resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS))
        _photo_cache[name] = img
    return _photo_cache[name]


def photo_patch(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A random (H, W, 3) uint8 crop of a real photo."""
    img = _photo(_PHOTOS[rng.integers(len(_PHOTOS))])
    h, w = size
    y = rng.integers(0, img.shape[0] - h + 1)
    x = rng.integers(0, img.shape[1] - w + 1)
    return np.ascontiguousarray(img[y:y + h, x:x + w])


def _blur(img, s, rng):
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(0.4 + 2.0 * s)))


def _noise(img, s, rng):
    noisy = img.astype(np.float64) + rng.normal(0.0, 3.0 + 30.0 * s, img.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def _jpeg(img, s, rng):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(round(60 - 55 * s)))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def _contrast(img, s, rng):
    factor = 1.0 + (0.8 * s if rng.random() < 0.5 else -0.6 * s)
    return np.asarray(ImageEnhance.Contrast(Image.fromarray(img)).enhance(factor))


def _colour(img, s, rng):
    out = np.asarray(ImageEnhance.Color(Image.fromarray(img)).enhance(1.0 + 1.5 * s * rng.choice(
        [-0.6, 1.0])))
    tint = rng.normal(0.0, 25.0 * s, 3)
    return np.clip(out.astype(np.float64) + tint, 0, 255).round().astype(np.uint8)


def _resample(img, s, rng):
    h, w = img.shape[:2]
    f = 1.0 + 3.0 * s
    small = Image.fromarray(img).resize((max(2, round(w / f)), max(2, round(h / f))),
                                        Image.BILINEAR)
    return np.asarray(small.resize((w, h), Image.NEAREST if rng.random() < 0.5 else Image.BICUBIC))


def _translate(img, s, rng):
    dx = 1 + int(3 * s)
    return np.roll(img, dx if rng.random() < 0.5 else -dx, axis=1)


DISTORTIONS: dict[str, Callable] = {
    "blur": _blur, "noise": _noise, "jpeg": _jpeg, "contrast": _contrast,
    "colour": _colour, "resample": _resample, "translate": _translate,
}


def distort(img: np.ndarray, rng: np.random.Generator, strength: float | None = None,
            kinds: int | None = None) -> np.ndarray:
    """Applies one or two random real distortions of the given strength in [0, 1]."""
    names = list(DISTORTIONS)
    count = kinds if kinds is not None else int(rng.integers(1, 3))
    out = img
    for name in rng.choice(names, size=count, replace=False):
        s = float(rng.uniform(0.05, 1.0)) if strength is None else strength
        out = DISTORTIONS[str(name)](out, s, rng)
    return np.ascontiguousarray(out, dtype=np.uint8)


def _size(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _save_png(path: str, img: np.ndarray) -> None:
    Image.fromarray(img).save(path, format="PNG")


def _default_judge(ref, p0, p1, rng) -> float:
    return float(rng.integers(0, 6)) / 5.0


def make_2afc(root, sets: Mapping[str, int], *, size=64, seed: int = 0,
              judge_fn: Callable | None = None, ties: int = 0) -> str:
    """Writes a BAPPS 2AFC folder; returns ``root``.

    Args:
      root: the folder that will hold ``train/`` and ``val/`` (BAPPS ``dataset/2afc``).
      sets: ``{"val/traditional": n_triplets, ...}``.
      size: patch size, int or (H, W) (BAPPS patches are 64x64; larger sizes exercise resizing).
      seed: everything is deterministic given the seed.
      judge_fn: ``judge_fn(ref, p0, p1, rng) -> float in [0, 1]`` (fraction preferring p1).
      ties: the last ``ties`` triplets of every set get ``p1`` identical to ``p0`` (a tie).
    """
    root = os.fspath(root)
    hw = _size(size)
    judge_fn = judge_fn or _default_judge
    for k, (name, n) in enumerate(sorted(sets.items())):
        rng = np.random.default_rng([seed, k])
        base = os.path.join(root, name)
        for sub in ("ref", "p0", "p1", "judge"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        for i in range(n):
            ref = photo_patch(rng, hw)
            p0 = distort(ref, rng)
            p1 = p0.copy() if i >= n - ties else distort(ref, rng)
            judge = float(judge_fn(ref, p0, p1, rng))
            if not 0.0 <= judge <= 1.0:
                raise ValueError(f"judge_fn returned {judge}, outside [0, 1]")
            stem = f"{i:06d}"
            _save_png(os.path.join(base, "ref", stem + ".png"), ref)
            _save_png(os.path.join(base, "p0", stem + ".png"), p0)
            _save_png(os.path.join(base, "p1", stem + ".png"), p1)
            np.save(os.path.join(base, "judge", stem + ".npy"), np.array([judge], np.float32))
    return root


def _default_same(p0, p1, strength, rng) -> float:
    # Weaker distortions are judged "same" more often (3 judges, as in BAPPS JND).
    votes = rng.random(3) < (1.0 - strength) ** 2
    return float(votes.sum()) / 3.0


def make_jnd(root, sets: Mapping[str, int], *, size=64, seed: int = 0,
             same_fn: Callable | None = None) -> str:
    """Writes a BAPPS JND folder (``p0``, ``p1``, ``same``); returns ``root``.

    ``same_fn(p0, p1, strength, rng) -> float in [0, 1]`` gives the "same" fraction; by default
    it falls with the distortion strength.
    """
    root = os.fspath(root)
    hw = _size(size)
    same_fn = same_fn or _default_same
    for k, (name, n) in enumerate(sorted(sets.items())):
        rng = np.random.default_rng([seed, 1000 + k])
        base = os.path.join(root, name)
        for sub in ("p0", "p1", "same"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        for i in range(n):
            p0 = photo_patch(rng, hw)
            strength = float(rng.uniform(0.0, 1.0)) ** 2  # many near-invisible distortions
            p1 = distort(p0, rng, strength=max(strength, 0.02), kinds=1)
            same = float(same_fn(p0, p1, strength, rng))
            stem = f"{i:06d}"
            _save_png(os.path.join(base, "p0", stem + ".png"), p0)
            _save_png(os.path.join(base, "p1", stem + ".png"), p1)
            np.save(os.path.join(base, "same", stem + ".npy"), np.array([same], np.float32))
    return root
