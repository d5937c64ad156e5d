"""Reading extracted BAPPS folders: validated, random-access, lazily decoded sources.

BAPPS (Zhang et al., CVPR 2018) ships 2AFC triplets as ``2afc/{train,val}/<set>/{ref,p0,p1}``
image folders plus ``judge/*.npy`` (fraction of people who preferred p1), and JND pairs as
``jnd/val/<set>/{p0,p1}`` plus ``same/*.npy``. Files are paired by sorted path, as upstream
``data/image_folder.py`` does. Everything cheap is checked when a folder is read (subfolders,
counts, matching file names, judge files); images are decoded lazily, in parallel where the caller
asks, and a corrupt or wrong-size image raises an error naming its path when it is decoded (or up
front with ``verify_images=True``). Files are untrusted: images go through
:func:`shiftlpips_jax._src.images.load_rgb` (regular files only, a pixel limit checked on the
header, every mode scaled to 8-bit RGB, a transparency policy), and a judge file must be a small
regular ``.npy`` file whose header declares one number (read without pickle). With
``skip_errors=True`` the records whose files cannot be read are left out and listed in
``source.skipped`` instead (every image is then decoded once up front).

Images are loaded as RGB and resized like upstream ``transforms.Resize(load_size)``: the shorter
side becomes ``load_size`` (aspect kept; a no-op when it already is). Upstream uses bicubic for
2AFC and bilinear (``transforms.Scale``'s default) for JND; BAPPS patches are 64x64, so at the
default ``load_size=64`` both are the identity.

Example::

    src = read_2afc("dataset/2afc", ["val/traditional", "val/cnn"])
    len(src), src.sets                       # triplets, per-set index ranges
    ex = src[0]                              # {"ref","p0","p1": uint8 (64,64,3), "judge", ...}
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import os
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from shiftlpips_jax._src import images as images_lib
from shiftlpips_jax._src.errors import DataError, InputError, PathNotFoundError

__all__ = ["BAPPS_2AFC_SETS", "BAPPS_JND_SETS", "BappsSource", "SetSpan", "read_2afc",
           "read_jnd", "resize_shorter_side"]

# The sets BAPPS ships (2AFC val sizes: cnn 4720, color 4720, deblur 9440, frameinterp 1888,
# superres 10856, traditional 4720 = 36,344 triplets).
BAPPS_2AFC_SETS = ("train/traditional", "train/cnn", "train/mix", "val/traditional", "val/cnn",
                   "val/superres", "val/deblur", "val/color", "val/frameinterp")
BAPPS_JND_SETS = ("val/traditional", "val/cnn")

# Upstream data/image_folder.py IMG_EXTENSIONS (case-sensitive there; we accept any case).
_IMG_EXT = (".jpg", ".jpeg", ".png", ".ppm", ".bmp")
_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def resize_shorter_side(img: np.ndarray, load_size: int, *, resample: str = "bicubic") -> np.ndarray:
    """torchvision ``Resize(load_size)`` on a PIL image: shorter side -> ``load_size``.

    The longer side becomes ``int(load_size * long / short)``; the image is returned unchanged when
    its shorter side already equals ``load_size``.

    Args:
      img: (H, W, 3) uint8.
      load_size: the shorter side after resizing.
      resample: ``"bicubic"`` or ``"bilinear"``.

    Returns:
      The resized (H', W', 3) uint8 image.
    """
    h, w = img.shape[:2]
    short, long = (w, h) if w <= h else (h, w)
    if short == load_size:
        return img
    new_long = int(load_size * long / short)
    new_w, new_h = (load_size, new_long) if w <= h else (new_long, load_size)
    return np.asarray(Image.fromarray(img).resize((new_w, new_h), _RESAMPLE[resample]))


def _resized_shape(h: int, w: int, load_size: int) -> tuple[int, int]:
    short, long = (w, h) if w <= h else (h, w)
    if short == load_size:
        return h, w
    new_long = int(load_size * long / short)
    return (new_long, load_size) if w <= h else (load_size, new_long)


@dataclasses.dataclass(frozen=True)
class SetSpan:
    """One BAPPS set inside a source: records ``start:stop`` come from ``directory``."""
    name: str
    directory: str
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def indices(self) -> range:
        return range(self.start, self.stop)


def _walk_error(err: OSError) -> None:
    raise InputError(f"cannot list {err.filename}: {err.strerror or err}")


def _list_files(directory: str, exts: tuple[str, ...]) -> list[str]:
    """Sorted paths of matching files under ``directory`` (recursive, like upstream)."""
    found = []
    for dirpath, _, fnames in sorted(os.walk(directory, onerror=_walk_error)):
        for fname in fnames:
            if fname.lower().endswith(exts):
                found.append(os.path.join(dirpath, fname))
    return sorted(found)


# A judge / same file holds one number: ~130 bytes. Anything much larger is not one.
MAX_LABEL_BYTES = 64 * 1024
_LABEL_FORM = "expected a .npy float array holding one value in [0, 1]"


def _load_label(path: str) -> np.float32:
    """One judgement from an untrusted .npy file: size and header checked before the data."""
    try:
        with images_lib.open_regular(path, "judgement file") as fh:
            raw = fh.read(MAX_LABEL_BYTES + 1)
    except InputError as err:
        raise DataError(str(err)) from None
    if len(raw) > MAX_LABEL_BYTES:
        raise DataError(f"judgement file {path} is over {MAX_LABEL_BYTES} bytes; {_LABEL_FORM}")
    buf = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except Exception as err:  # noqa: BLE001 - any header failure means "not a judgement file"
        raise DataError(f"cannot read judgement file {path}: {err} ({_LABEL_FORM})") from None
    # Refuse on the header alone: no absurd shape or object array is ever allocated.
    if dtype.hasobject or dtype.kind not in "biuf" or int(np.prod(shape, dtype=object)) != 1:
        raise DataError(f"judgement file {path} declares a {dtype} array of shape "
                        f"{tuple(shape)}; {_LABEL_FORM}")
    need = buf.tell() + dtype.itemsize
    if len(raw) < need:
        raise DataError(f"judgement file {path} is truncated ({len(raw)} of {need} bytes); "
                        f"{_LABEL_FORM}")
    buf.seek(0)
    try:
        arr = np.load(buf, allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"cannot read judgement file {path}: {err} ({_LABEL_FORM})") from None
    value = float(np.asarray(arr).reshape(()))
    if not np.isfinite(value) or not 0.0 <= value <= 1.0:
        raise DataError(f"judgement file {path} holds {value}; expected a value in [0, 1]")
    return np.float32(value)


class BappsSource:
    """A random-access BAPPS source (grain ``RandomAccessDataSource`` protocol).

    ``source[i]`` decodes record ``i``: a dict with the image fields (uint8 (H, W, 3), resized to
    ``load_size``), the label (``judge`` for 2AFC, ``same`` for JND; float32 scalar in [0, 1]),
    ``path`` (the p0 path relative to ``root``, e.g. ``val/cnn/p0/000001.png``) and ``set``.
    Picklable, so grain worker processes can use it.

    Attributes:
      kind: ``"2afc"`` or ``"jnd"``.
      root: the folder holding ``train/`` and ``val/``.
      image_keys: ``("ref", "p0", "p1")`` or ``("p0", "p1")``.
      label_key: ``"judge"`` or ``"same"``.
      paths: ``{key: [path, ...]}`` for every image key.
      labels: float32 (N,) judges / same-fractions, read eagerly.
      sets: one :class:`SetSpan` per requested set, in request order.
      load_size, resample: resizing (shorter side -> ``load_size``).
      max_pixels, alpha: image reading limits (see :func:`shiftlpips_jax._src.images.load_rgb`).
      skipped: ``((path, reason), ...)`` of the records left out by ``skip_errors=True``.
    """

    def __init__(self, *, kind, root, image_keys, label_key, paths, label_paths, labels, sets,
                 load_size, resample, set_shapes, max_pixels=images_lib.DEFAULT_MAX_PIXELS,
                 alpha="warn", skipped=()):
        self.kind = kind
        self.root = root
        self.image_keys = tuple(image_keys)
        self.label_key = label_key
        self.paths = paths
        self.label_paths = label_paths
        self.labels = labels
        self.sets = tuple(sets)
        self.load_size = load_size
        self.resample = resample
        self._set_shapes = set_shapes  # set name -> (H, W) after resizing
        self.max_pixels = max_pixels
        self.alpha = alpha
        self.skipped = tuple(skipped)
        self._set_of = np.zeros(len(labels), np.int32)
        for k, span in enumerate(self.sets):
            self._set_of[span.start:span.stop] = k

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        sets = ", ".join(f"{s.name}: {len(s)}" for s in self.sets)
        return (f"BappsSource({self.kind}, root={self.root!r}, load_size={self.load_size}, "
                f"{len(self)} records; {sets})")

    def span(self, name: str) -> SetSpan:
        for s in self.sets:
            if s.name == name:
                return s
        raise KeyError(f"set {name!r} not in this source (sets: {[s.name for s in self.sets]})")

    def image_shape(self, name: str) -> tuple[int, int]:
        """(H, W) of set ``name``'s images after resizing."""
        self.span(name)
        return self._set_shapes[name]

    def load_image(self, key: str, index: int) -> np.ndarray:
        """Decodes one image (RGB, resized); errors name the path."""
        path = self.paths[key][index]
        img = images_lib.load_rgb(path, max_pixels=self.max_pixels, alpha=self.alpha)
        span = self.sets[self._set_of[index]]
        want = self._set_shapes[span.name]
        got = _resized_shape(img.shape[0], img.shape[1], self.load_size)
        if got != want:
            raise DataError(
                f"wrong-size image {path}: {img.shape[0]}x{img.shape[1]} resizes to "
                f"{got[0]}x{got[1]} at load_size={self.load_size}, but the images of "
                f"{span.name} resize to {want[0]}x{want[1]}")
        return resize_shorter_side(img, self.load_size, resample=self.resample)

    def __getitem__(self, index) -> dict:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"record {index} out of range for {len(self)} records")
        index %= len(self)
        out = {key: self.load_image(key, index) for key in self.image_keys}
        out[self.label_key] = self.labels[index]
        out["path"] = os.path.relpath(self.paths["p0"][index], self.root)
        out["set"] = self.sets[self._set_of[index]].name
        return out

    def load_batch(self, indices: Sequence[int], *,
                   executor: concurrent.futures.Executor | None = None) -> dict:
        """Stacked uint8 images and labels for ``indices``, decoded on ``executor``'s threads."""
        indices = [int(i) for i in indices]
        jobs = [(key, i) for key in self.image_keys for i in indices]
        if executor is None:
            imgs = [self.load_image(key, i) for key, i in jobs]
        else:
            imgs = list(executor.map(lambda job: self.load_image(*job), jobs))
        out, n = {}, len(indices)
        for k, key in enumerate(self.image_keys):
            out[key] = np.stack(imgs[k * n:(k + 1) * n])
        out[self.label_key] = self.labels[indices]
        return out

    def verify(self, *, num_threads: int = 8) -> None:
        """Decodes every image once (raises on the first corrupt or wrong-size one)."""
        jobs = [(key, i) for i in range(len(self)) for key in self.image_keys]
        with concurrent.futures.ThreadPoolExecutor(num_threads) as ex:
            for _ in ex.map(lambda job: self.load_image(*job), jobs):
                pass

    def failures(self, *, num_threads: int = 8) -> dict[int, tuple[str, str]]:
        """Decodes every image once; returns {record: (path, reason)} of those that fail."""
        def check(job):
            key, i = job
            try:
                self.load_image(key, i)
            except (InputError, DataError) as err:
                return i, self.paths[key][i], str(err)
            return None

        jobs = [(key, i) for i in range(len(self)) for key in self.image_keys]
        bad: dict[int, tuple[str, str]] = {}
        with concurrent.futures.ThreadPoolExecutor(num_threads) as ex:
            for hit in ex.map(check, jobs):
                if hit is not None and hit[0] not in bad:
                    bad[hit[0]] = hit[1:]
        return bad

    def without(self, bad: dict[int, tuple[str, str]]) -> "BappsSource":
        """A copy without the records in ``bad`` (listed in its ``skipped``)."""
        keep = [i for i in range(len(self)) if i not in bad]
        sets, start = [], 0
        for span in self.sets:
            n = sum(1 for i in span.indices if i not in bad)
            if n == 0:
                raise DataError(f"no record of {span.name} ({span.directory}) could be read "
                                f"({len(span)} skipped; first: {bad[span.start][0]}: "
                                f"{bad[span.start][1]})")
            sets.append(SetSpan(span.name, span.directory, start, start + n))
            start += n
        skipped = self.skipped + tuple(bad[i] for i in sorted(bad))
        return BappsSource(
            kind=self.kind, root=self.root, image_keys=self.image_keys,
            label_key=self.label_key,
            paths={k: [v[i] for i in keep] for k, v in self.paths.items()},
            label_paths=[self.label_paths[i] for i in keep], labels=self.labels[keep],
            sets=sets, load_size=self.load_size, resample=self.resample,
            set_shapes=self._set_shapes, max_pixels=self.max_pixels, alpha=self.alpha,
            skipped=skipped)


def _read(kind: str, root, datasets: Iterable[str] | None, load_size: int, resample: str,
          image_keys: tuple[str, ...], label_key: str, known: tuple[str, ...],
          verify_images: bool, num_threads: int, skip_errors: bool = False,
          max_pixels: int = images_lib.DEFAULT_MAX_PIXELS, alpha: str = "warn") -> BappsSource:
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise PathNotFoundError(f"BAPPS {kind} folder not found: {root} (expected the folder "
                                f"holding train/ and val/, e.g. dataset/{kind})")
    if isinstance(load_size, bool) or not isinstance(load_size, (int, np.integer)) \
            or load_size < 1:
        raise InputError(f"load_size must be a positive int; got {load_size!r}")
    if resample not in _RESAMPLE:
        raise InputError(f"resample must be one of {sorted(_RESAMPLE)}; got {resample!r}")
    if alpha not in images_lib.ALPHA_POLICIES:
        raise InputError(f"alpha must be one of {images_lib.ALPHA_POLICIES}; got {alpha!r}")
    max_pixels = images_lib._check_max_pixels(max_pixels)
    if datasets is None:
        datasets = [d for d in known if os.path.isdir(os.path.join(root, d))]
        if not datasets:
            raise PathNotFoundError(f"no BAPPS {kind} sets under {root} (looked for "
                                    f"{', '.join(known)})")
    elif isinstance(datasets, str):
        datasets = [datasets]
    datasets = list(dict.fromkeys(d.strip("/") for d in datasets))

    paths = {key: [] for key in image_keys}
    label_paths: list[str] = []
    sets, set_shapes = [], {}
    bad: dict[int, tuple[str, str]] = {}  # record -> (path, reason), with skip_errors
    for name in datasets:
        base = os.path.join(root, name)
        if not os.path.isdir(base):
            present = [d for d in known if os.path.isdir(os.path.join(root, d))]
            raise PathNotFoundError(f"BAPPS set folder not found: {base} (sets present under "
                                    f"{root}: {present or 'none'})")
        listing = {}
        for sub in image_keys + (label_key,):
            d = os.path.join(base, sub)
            if not os.path.isdir(d):
                raise PathNotFoundError(f"missing subfolder {d} (a BAPPS {kind} set holds "
                                        f"{', '.join(image_keys + (label_key,))})")
            listing[sub] = _list_files(d, (".npy",) if sub == label_key else _IMG_EXT)
        counts = {sub: len(v) for sub, v in listing.items()}
        if len(set(counts.values())) != 1:
            detail = ", ".join(f"{sub}/ {c}" for sub, c in counts.items())
            raise DataError(f"count mismatch in {base}: {detail} files")
        if counts[label_key] == 0:
            raise DataError(f"{base} holds no images (expected "
                            f"{', '.join(image_keys)} images and {label_key}/*.npy)")
        # Files pair by sorted order upstream; insist their names agree so a stray or missing
        # file cannot silently shift every later pairing.
        stems = {sub: [os.path.splitext(os.path.relpath(p, os.path.join(base, sub)))[0]
                       for p in v] for sub, v in listing.items()}
        first = image_keys[0]
        for sub in listing:
            for a, b, pa, pb in zip(stems[first], stems[sub], listing[first], listing[sub]):
                if a != b:
                    raise DataError(f"file names do not pair up in {base}: {pa} is matched "
                                    f"with {pb} (sorted order); rename or remove the odd file")
        start = len(label_paths)
        for key in image_keys:
            paths[key].extend(listing[key])
        label_paths.extend(listing[label_key])
        sets.append(SetSpan(name, base, start, len(label_paths)))
        # The set's image size after resizing, from its first (readable) image, header only.
        for k, probe in enumerate(listing[image_keys[0]]):
            try:
                h, w = images_lib.image_size(probe, max_pixels=max_pixels)
            except InputError as err:
                if not skip_errors:
                    raise
                bad.setdefault(start + k, (probe, str(err)))
                continue
            set_shapes[name] = _resized_shape(h, w, load_size)
            break
        else:
            raise DataError(f"no image of {os.path.join(base, image_keys[0])} could be read "
                            f"(first: {bad[start][0]}: {bad[start][1]})")

    def label(path):
        try:
            return _load_label(path), None
        except DataError as err:
            if not skip_errors:
                raise
            return np.float32(np.nan), str(err)

    with concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as ex:
        got = list(ex.map(label, label_paths))
    labels = np.array([v for v, _ in got], dtype=np.float32)
    for i, (_, err) in enumerate(got):
        if err is not None:
            bad.setdefault(i, (label_paths[i], err))
    source = BappsSource(kind=kind, root=root, image_keys=image_keys, label_key=label_key,
                         paths=paths, label_paths=label_paths, labels=labels, sets=sets,
                         load_size=int(load_size), resample=resample, set_shapes=set_shapes,
                         max_pixels=max_pixels, alpha=alpha)
    if skip_errors:
        for i, why in source.failures(num_threads=max(1, num_threads)).items():
            bad.setdefault(i, why)
        return source.without(bad) if bad else source
    if verify_images:
        source.verify(num_threads=num_threads)
    return source


def read_2afc(root, datasets: Iterable[str] | None = None, load_size: int = 64, *,
              resample: str = "bicubic", verify_images: bool = False,
              num_threads: int = 8, skip_errors: bool = False,
              max_pixels: int = images_lib.DEFAULT_MAX_PIXELS,
              alpha: str = "warn") -> BappsSource:
    """Reads BAPPS 2AFC sets from an extracted folder.

    Args:
      root: the folder holding ``train/`` and ``val/`` (BAPPS ``dataset/2afc``).
      datasets: sets such as ``["val/traditional", "val/cnn"]``; ``None`` = every BAPPS 2AFC set
        present under ``root``.
      load_size: the shorter image side after resizing (upstream default 64).
      resample: ``"bicubic"`` (upstream 2AFC) or ``"bilinear"``.
      verify_images: decode every image now (slower) instead of on access.
      num_threads: threads for reading judges (and verifying).
      skip_errors: leave out every record with an unreadable, unusable or wrong-size file (its
        judge or any of its images; every image is decoded once here) and list them in the
        source's ``skipped``; structural problems (missing folders, counts, names) still raise.
      max_pixels: largest accepted image (H * W), checked on the header before decoding.
      alpha: transparency policy of :func:`shiftlpips_jax._src.images.load_rgb` (``"warn"``).

    Returns:
      A :class:`BappsSource` whose records hold ``ref``, ``p0``, ``p1`` (uint8 (H, W, 3)),
      ``judge`` (float32, fraction of people preferring p1), ``path`` and ``set``.

    Raises:
      PathNotFoundError (a ``FileNotFoundError``): missing root, set or subfolder.
      DataError / InputError (both ``ValueError``) naming the path: count mismatch between
      ref/p0/p1/judge, unpaired file names, an unreadable, oversized or out-of-range judge, a
      FIFO or other non-regular file; corrupt, too large or wrong-size images when decoded (or
      here with ``verify_images``).
    """
    return _read("2afc", root, datasets, load_size, resample, ("ref", "p0", "p1"), "judge",
                 BAPPS_2AFC_SETS, verify_images, num_threads, skip_errors, max_pixels, alpha)


def read_jnd(root, datasets: Iterable[str] | None = None, load_size: int = 64, *,
             resample: str = "bilinear", verify_images: bool = False,
             num_threads: int = 8, skip_errors: bool = False,
             max_pixels: int = images_lib.DEFAULT_MAX_PIXELS,
             alpha: str = "warn") -> BappsSource:
    """Reads BAPPS JND sets (``p0``, ``p1``, ``same``); see :func:`read_2afc`.

    ``root`` holds ``val/`` (BAPPS ``dataset/jnd``); records hold ``p0``, ``p1`` and ``same``
    (float32, fraction of people who judged the pair identical). Upstream resizes JND images with
    ``transforms.Scale`` (bilinear), hence the default ``resample``.

    Args:
      root: the folder holding ``val/`` (BAPPS ``dataset/jnd``).
      datasets, load_size, resample, verify_images, num_threads, skip_errors, max_pixels,
        alpha: as :func:`read_2afc` (``resample`` defaults to ``"bilinear"``).

    Returns:
      A :class:`BappsSource` of JND pairs.
    """
    return _read("jnd", root, datasets, load_size, resample, ("p0", "p1"), "same",
                 BAPPS_JND_SETS, verify_images, num_threads, skip_errors, max_pixels, alpha)


# Process-pool decoding (used by the evaluation runner): each worker gets the source once.
_WORKER_SOURCE: BappsSource | None = None


def init_worker(source: BappsSource) -> None:
    """``ProcessPoolExecutor`` initializer: keeps ``source`` for :func:`load_batch_in_worker`."""
    global _WORKER_SOURCE
    _WORKER_SOURCE = source


def load_batch_in_worker(indices: Sequence[int]) -> dict:
    """``source.load_batch(indices)`` in a worker set up by :func:`init_worker`."""
    if _WORKER_SOURCE is None:
        raise RuntimeError("load_batch_in_worker called in a process without init_worker")
    return _WORKER_SOURCE.load_batch(indices)
