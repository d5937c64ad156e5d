"""Image files in and out: safe RGB loading with clear errors, heat maps, atomic PNG writes.

Every image the command line or the BAPPS readers decode goes through :func:`load_rgb`, which
treats the file as untrusted: it must be a regular file (a FIFO, device or socket is refused
before it is opened, so nothing blocks), only the formats in :data:`IMAGE_FORMATS` are parsed,
the size declared in the header must not exceed ``max_pixels`` (checked before any pixel is
decoded; default :data:`DEFAULT_MAX_PIXELS`), and every Pillow mode is converted to 8-bit RGB
by scaling, never clipping (16-bit greyscale ``I;16`` and 32-bit ``I`` on the 0..65535 scale
Pillow's readers use, float ``F`` on [0, 1], palette, CMYK, ...). Transparency follows an
explicit policy (:data:`ALPHA_POLICIES`): by default the colour channels are used as stored
(as the PyTorch reference does) with a :class:`TransparencyWarning` naming the file whenever some
pixel is not opaque. Every failure raises :class:`~shiftlpips_jax._src.errors.InputError` (a
missing file :class:`~shiftlpips_jax._src.errors.PathNotFoundError`) naming the path.

Example::

    img = load_rgb("a.png")                                  # (H, W, 3) uint8
    img = load_rgb("logo.png", alpha="composite-white", max_pixels=100_000_000)
    save_png_atomic("map.png", heatmap(dist_map))
"""

from __future__ import annotations

import io
import os
import stat
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import outputs
from .errors import InputError, PathNotFoundError

__all__ = ["IMAGE_EXTENSIONS", "IMAGE_FORMATS", "DEFAULT_MAX_PIXELS", "ALPHA_POLICIES",
           "TransparencyWarning", "open_regular", "image_size", "load_rgb", "to_rgb8",
           "resize_rgb", "heatmap", "png_bytes", "save_png_atomic",
           "list_images", "example_path", "add_reading_args", "allow_large_images"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
# Pillow plugins allowed to parse a file, whatever its name. Leaving out the rest (EPS, which
# runs Ghostscript, and dozens of rarely used parsers) keeps the attack surface small. (Camera
# JPEGs that Pillow reports as MPO are opened by its JPEG plugin.)
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "PPM", "TIFF", "WEBP", "GIF")
# 4096 x 4096: every ordinary photo fits, absurd or hostile sizes do not. One float32 CPU
# comparison takes about 330 bytes of memory per input pixel with ST-LPIPS alex and 1.3 kB with
# vgg (peak RSS slopes between 1024^2 and 2048^2 / 512^2 and 1024^2 inputs), i.e. ~5 GiB / ~21
# GiB at this limit; --max-pixels raises it.
DEFAULT_MAX_PIXELS = 4096 * 4096
ALPHA_POLICIES = ("warn", "ignore", "composite-white", "composite-black", "error")


class TransparencyWarning(UserWarning):
    """An image has transparent pixels whose alpha was ignored (``alpha="warn"``)."""


def example_path(name: str) -> str:
    """Path of a bundled example image (``ex_ref``, ``ex_p0``, ``ex_p1``)."""
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", f"{name}.png")


_KIND = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
         (stat.S_ISDIR, "a directory"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KIND if test(mode)), "not a regular file")


def open_regular(path: str, what: str = "file"):
    """Opens ``path`` for binary reading if it is a regular file (symlinks to one are fine).

    A FIFO, device, socket or directory is refused before it is opened, and again on the open
    descriptor (opened non-blocking, so a file swapped for a FIFO in between cannot block).

    Args:
      path: the file.
      what: what the file is, for messages ("image", "judgement file").

    Returns:
      A binary file object; close it (``with open_regular(...) as fh``).

    Raises:
      PathNotFoundError: ``path`` does not exist (or is a broken symbolic link).
      InputError: not a regular file, or not readable.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        broken = " (a broken symbolic link)" if os.path.islink(path) else ""
        raise PathNotFoundError(f"{what} not found: {path}{broken}") from None
    except OSError as err:
        raise InputError(f"cannot read {what} {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} {path} is {_kind(st.st_mode)}, not a regular file; expected "
                         "an ordinary file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except OSError as err:
        raise InputError(f"cannot read {what} {path}: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{what} {path} is {_kind(st.st_mode)}, not a regular file; "
                             "expected an ordinary file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_max_pixels(max_pixels) -> int:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) \
            or max_pixels < 1:
        raise InputError(f"max_pixels must be a positive int; got {max_pixels!r}")
    return int(max_pixels)


def _formats() -> list[str]:
    """The allowed formats this Pillow build can read (WebP support is optional)."""
    Image.init()
    return [f for f in IMAGE_FORMATS if f in Image.OPEN]


def _too_big(path: str, w: int, h: int, max_pixels: int) -> InputError:
    return InputError(f"image {path} is {w}x{h} = {w * h:,} pixels, over the limit of "
                      f"{max_pixels:,} pixels (a guard against memory exhaustion); pass "
                      f"--max-pixels {w * h} (max_pixels=) to read it anyway, or downscale it")


def _open_image(path: str, fh, max_pixels: int) -> Image.Image:
    """Pillow image of an open file, header only; the declared size is within the limit."""
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own (larger) bomb threshold; our limit decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(fh, formats=_formats())
    except Image.DecompressionBombError as err:
        raise InputError(f"image {path} declares a size over Pillow's decompression-bomb "
                         f"limit ({err}); the limit here is {max_pixels:,} pixels (--max-pixels "
                         "raises both)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as err:
        raise InputError(f"cannot read image {path}: {err} (expected a "
                         f"{'/'.join(IMAGE_FORMATS)} file)") from None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise _too_big(path, w, h, max_pixels)
    if w < 1 or h < 1:
        im.close()
        raise InputError(f"image {path} is {w}x{h}; expected a non-empty image")
    return im


def image_size(path: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(H, W) of an image file from its header, with the checks of :func:`load_rgb`.

    Args:
      path: the image file.
      max_pixels: largest accepted H * W.

    Returns:
      ``(height, width)``.
    """
    max_pixels = _check_max_pixels(max_pixels)
    with open_regular(path, "image") as fh:
        im = _open_image(path, fh, max_pixels)
        with im:
            w, h = im.size
    return h, w


def _scale_to_uint8(arr: np.ndarray, top: float) -> np.ndarray:
    """[0, top] -> round(v * 255 / top), exactly k for 16-bit values 257 k."""
    if top == 65535:
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.rint(arr.astype(np.float64) * (255.0 / top)).astype(np.uint8)


def to_rgb8(im: Image.Image, name: str = "image", *, alpha: str = "warn") -> np.ndarray:
    """A decoded Pillow image of any mode as (H, W, 3) uint8 RGB.

    Args:
      im: the image (any mode).
      name: its path, for messages.
      alpha: what to do with transparency, one of :data:`ALPHA_POLICIES`: ``"warn"`` (default:
        use the colour channels as stored and warn when some pixel is not opaque), ``"ignore"``
        (the same, silently), ``"composite-white"`` / ``"composite-black"`` (blend onto that
        background), ``"error"`` (refuse images with a non-opaque pixel).

    Returns:
      (H, W, 3) uint8.

    Raises:
      InputError: an unsupported mode, float values outside [0, 1], 32-bit integers outside
        0..65535, or a transparent image under ``alpha="error"``.
    """
    if alpha not in ALPHA_POLICIES:
        raise InputError(f"alpha must be one of {ALPHA_POLICIES}; got {alpha!r}")
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im)
        if mode == "F":
            lo, hi = float(np.min(arr)), float(np.max(arr))
            if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0.0 and hi <= 1.0):
                raise InputError(f"float image {name} has values in [{lo:.4g}, {hi:.4g}]; "
                                 "expected [0, 1] (save it as 8- or 16-bit PNG instead)")
            grey = np.rint(arr.astype(np.float64) * 255.0).astype(np.uint8)
        else:
            lo, hi = int(np.min(arr)), int(np.max(arr))
            if lo < 0 or hi > 65535:
                raise InputError(f"{mode} image {name} has values in [{lo}, {hi}]; expected "
                                 "0..65535 (16-bit)")
            grey = _scale_to_uint8(arr, 65535)
        return np.repeat(grey[..., None], 3, axis=-1)
    transparent = "A" in im.getbands() or "a" in im.getbands() or "transparency" in im.info
    try:
        if not transparent:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
    except (ValueError, OSError) as err:
        raise InputError(f"cannot convert image {name} of mode {mode} to RGB: {err}") from None
    a = rgba[..., 3]
    rgb = np.ascontiguousarray(rgba[..., :3])
    opaque = a == 255
    if opaque.all():
        return rgb
    n = int(a.size - np.count_nonzero(opaque))
    if alpha == "error":
        raise InputError(f"image {name} has {n} of {a.size} pixels not fully opaque; pass "
                         "--alpha ignore / composite-white / composite-black to read it")
    if alpha in ("warn", "ignore"):
        if alpha == "warn":
            warnings.warn(f"{name}: {n} of {a.size} pixels are transparent; alpha is ignored "
                          "(colours used as stored; --alpha composite-white/composite-black "
                          "blends onto a background, --alpha ignore silences this)",
                          TransparencyWarning, stacklevel=3)
        return rgb
    bg = 255.0 if alpha == "composite-white" else 0.0
    w = a.astype(np.float64)[..., None] / 255.0
    return np.rint(rgb * w + bg * (1.0 - w)).astype(np.uint8)


def load_rgb(path: str, *, max_pixels: int = DEFAULT_MAX_PIXELS,
             alpha: str = "warn") -> np.ndarray:
    """Reads an untrusted image file as (H, W, 3) uint8 RGB.

    Args:
      path: the image file (a regular file in one of :data:`IMAGE_FORMATS`).
      max_pixels: largest accepted H * W, checked on the header before decoding.
      alpha: the transparency policy (see :func:`to_rgb8`).

    Returns:
      (H, W, 3) uint8; 16-bit and other modes are scaled to 8 bits.

    Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, about 179 Mpx before
    it refuses) applies as well; the command line raises it with ``--max-pixels``
    (:func:`allow_large_images`).

    Raises:
      PathNotFoundError: missing file. InputError: anything else that makes it unreadable
        (not a regular file, unknown format, truncated, too large, ...), naming ``path``.
    """
    max_pixels = _check_max_pixels(max_pixels)
    path = os.fspath(path)
    with open_regular(path, "image") as fh:
        im = _open_image(path, fh, max_pixels)
        with im:
            try:
                im.load()
            except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as err:
                raise InputError(f"cannot read image {path}: {err} (corrupt or truncated "
                                 "file?)") from None
            return to_rgb8(im, path, alpha=alpha)


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


def png_bytes(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 encoded as PNG."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def save_png_atomic(path: str, rgb: np.ndarray) -> None:
    """Writes ``rgb`` as a PNG file atomically (see :func:`outputs.atomic_write_bytes`)."""
    outputs.atomic_write_bytes(path, png_bytes(rgb))


def list_images(directory: str) -> list[str]:
    """Sorted image file names (not paths) directly inside ``directory``.

    Every non-directory entry with an image extension is listed, FIFOs and broken links
    included, so that reading it reports the problem instead of the file silently vanishing.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        if not os.path.lexists(directory):
            raise PathNotFoundError(f"directory not found: {directory}")
        raise InputError(f"{directory} is not a directory")
    try:
        names = os.listdir(directory)
    except OSError as err:
        raise InputError(f"cannot list directory {directory}: {err.strerror or err}") from None
    return sorted(f for f in names if f.lower().endswith(IMAGE_EXTENSIONS)
                  and not os.path.isdir(os.path.join(directory, f)))


def _positive_int(text: str) -> int:
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {value}")
    return value


def add_reading_args(parser, *, skip_errors: bool = True) -> None:
    """Adds ``--max-pixels``, ``--alpha`` (and ``--skip-errors``) to an argparse parser."""
    parser.add_argument("--max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS,
                        metavar="N",
                        help=f"refuse images larger than N pixels (H*W; default "
                             f"{DEFAULT_MAX_PIXELS}, i.e. 4096x4096), a guard against memory "
                             "exhaustion")
    parser.add_argument("--alpha", choices=ALPHA_POLICIES, default="warn",
                        help="transparent images: warn (default: use the colours as stored, "
                             "warn), ignore (the same, silently), composite-white / "
                             "composite-black (blend onto that background), error (refuse)")
    if skip_errors:
        parser.add_argument("--skip-errors", action="store_true",
                            help="folder jobs: skip unreadable or unusable files (listed and "
                                 "counted on stderr) instead of stopping at the first")


def allow_large_images(max_pixels: int) -> None:
    """Lets Pillow open images up to ``max_pixels`` (its own bomb check would refuse at 2x its
    ``MAX_IMAGE_PIXELS``); for command-line entry points that raised ``--max-pixels``."""
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = int(max_pixels)
