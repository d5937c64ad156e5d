"""Image files in and out: RGB loading with clear errors, heat maps, atomic writes.

Example::

    img = load_rgb("a.png")                     # (H, W, 3) uint8
    save_png_atomic("map.png", heatmap(dist_map))
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["IMAGE_EXTENSIONS", "load_rgb", "resize_rgb", "heatmap", "save_png_atomic",
           "write_text_atomic", "list_images", "example_path"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def example_path(name: str) -> str:
    """Path of a bundled example image (``ex_ref``, ``ex_p0``, ``ex_p1``)."""
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", f"{name}.png")


def load_rgb(path: str) -> np.ndarray:
    """Reads an image file as (H, W, 3) uint8 RGB (greyscale/alpha are converted)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ValueError(f"cannot read image {path}: {err} (expected a PNG/JPEG/BMP/... file)") \
            from err


def resize_rgb(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of (H, W, 3) uint8 to ``size`` = (H, W)."""
    if img.shape[:2] == tuple(size):
        return img
    return np.asarray(Image.fromarray(img).resize((size[1], size[0]), Image.BICUBIC))


# A compact perceptually ordered colour map (matplotlib's "magma" at 9 anchors, interpolated).
_MAGMA = np.array([
    [0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122],
    [229, 80, 100], [251, 135, 97], [254, 194, 135], [252, 253, 191]], dtype=np.float64)


def heatmap(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """(H, W) non-negative values -> (H, W, 3) uint8 colours (0 dark, ``vmax`` bright)."""
    v = np.asarray(values, dtype=np.float64)
    top = float(np.nanmax(v)) if vmax is None else float(vmax)
    t = np.clip(v / top, 0.0, 1.0) if top > 0 else np.zeros_like(v)
    t = np.nan_to_num(t) * (len(_MAGMA) - 1)
    lo = np.floor(t).astype(int).clip(0, len(_MAGMA) - 2)
    frac = (t - lo)[..., None]
    rgb = _MAGMA[lo] * (1 - frac) + _MAGMA[lo + 1] * frac
    return rgb.round().astype(np.uint8)


def _atomic_write(path: str, write) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_png_atomic(path: str, rgb: np.ndarray) -> None:
    _atomic_write(path, lambda fh: Image.fromarray(rgb).save(fh, format="PNG"))


def write_text_atomic(path: str, text: str) -> None:
    _atomic_write(path, lambda fh: fh.write(text.encode()))


def list_images(directory: str) -> list[str]:
    """Sorted image file names (not paths) directly inside ``directory``."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"directory not found: {directory}")
    return sorted(f for f in os.listdir(directory)
                  if f.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(directory, f)))
