"""TFDS builders for BAPPS 2AFC and JND, written as ArrayRecord (no TensorFlow needed).

The builders read an extracted BAPPS folder given as a manual download directory, decode and
resize every image exactly as :func:`read_2afc` / :func:`read_jnd` do (so any corrupt, wrong-size
or unpaired file fails the build with its path, and TFDS removes the partial output), and store
each image as a lossless PNG at ``load_size``. Reading back with ``builder.as_data_source()``
gives random-access splits whose records decode to uint8 (H, W, 3) arrays identical to the
folder source's, in the same (sorted) order. One split per BAPPS set, named with ``_`` for ``/``:
``train_traditional``, ``val_cnn``, ...

Example::

    builder = build_2afc_tfds("~/BAPPS/dataset", "~/tfds", sets=["val/cnn"])
    val_cnn = builder.as_data_source()["val_cnn"]
    ex = val_cnn[0]        # {"ref","p0","p1": uint8 (64,64,3), "judge": float32, "path": bytes}
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import io
import os
import shutil
from typing import Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from shiftlpips_jax._src.data import folder as _folder

__all__ = ["Bapps2afc", "BappsJnd", "BappsConfig", "split_name", "bapps_2afc_builder",
           "bapps_jnd_builder", "build_2afc_tfds", "build_jnd_tfds"]

_CHUNK = 256  # records decoded ahead by the thread pool while the writer consumes


def split_name(dataset: str) -> str:
    """``"val/cnn"`` -> ``"val_cnn"`` (the TFDS split holding that BAPPS set).

    Args:
      dataset: a BAPPS set such as ``"val/cnn"``.

    Returns:
      The split name.
    """
    return dataset.strip("/").replace("/", "_")


@dataclasses.dataclass(eq=False)
class BappsConfig(tfds.core.BuilderConfig):
    """``load_size`` (shorter side after resizing) and ``sets`` (``None`` = all present)."""
    load_size: int = 64
    sets: tuple[str, ...] | None = None


def _config(load_size: int, sets: Iterable[str] | None) -> BappsConfig:
    if not isinstance(load_size, (int, np.integer)) or load_size < 1:
        raise ValueError(f"load_size must be a positive int; got {load_size!r}")
    if isinstance(sets, str):
        sets = [sets]
    sets = None if sets is None else tuple(dict.fromkeys(s.strip("/") for s in sets))
    return _make_config(int(load_size), sets)


# One instance per configuration: TFDS compares a requested config with BUILDER_CONFIGS by
# identity, so "64px" must be the very object listed there.
@functools.lru_cache(maxsize=None)
def _make_config(load_size: int, sets: tuple[str, ...] | None) -> BappsConfig:
    name = f"{int(load_size)}px"
    if sets:
        name += "-" + "+".join(split_name(s) for s in sets)
    return BappsConfig(name=name, load_size=int(load_size), sets=sets,
                       description=f"BAPPS at load_size={load_size}; sets: {sets or 'all present'}")


def _mode_root(manual_dir: str, mode: str) -> str:
    """Accepts the extracted ``dataset/`` folder (holding ``2afc/``, ``jnd/``) or the mode folder."""
    manual_dir = os.path.expanduser(os.fspath(manual_dir))
    candidate = os.path.join(manual_dir, mode)
    return candidate if os.path.isdir(candidate) else manual_dir


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _examples(source: _folder.BappsSource, span: _folder.SetSpan, num_threads: int):
    """(key, example) for one set, decoded and PNG-encoded on a thread pool, in order."""

    def encode(i):
        out = {key: _png(source.load_image(key, i)) for key in source.image_keys}
        out[source.label_key] = np.float32(source.labels[i])
        out["path"] = os.path.relpath(source.paths["p0"][i], source.root)
        return out["path"], out

    with concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as ex:
        for lo in range(span.start, span.stop, _CHUNK):
            yield from ex.map(encode, range(lo, min(lo + _CHUNK, span.stop)))


_INSTRUCTIONS = """\
Download BAPPS (Zhang et al., CVPR 2018) with the upstream script
(PerceptualSimilarity/scripts/download_dataset.sh) and extract it, then pass the folder holding
`2afc/` and `jnd/` (or the `2afc/` / `jnd/` folder itself) as the manual directory:
`tfds.download.DownloadConfig(manual_dir=...)`, or `build_2afc_tfds(manual_dir, data_dir)`.
"""


class _BappsBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "BAPPS images as PNG at load_size, judges as float32."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    BUILDER_CONFIGS = [_config(64, None)]
    _MODE = ""
    _IMAGE_KEYS: tuple[str, ...] = ()
    _LABEL_KEY = ""
    _LABEL_DOC = ""

    # TFDS locates a builder's source file through `importlib_resources`, which it does not
    # declare as a dependency; naming the file here avoids that lookup.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(__file__)

    def num_threads(self) -> int:
        return getattr(self, "_num_threads", 8)

    def _info(self) -> tfds.core.DatasetInfo:
        feats = {k: tfds.features.Image(shape=(None, None, 3), dtype=np.uint8,
                                        encoding_format="png") for k in self._IMAGE_KEYS}
        feats[self._LABEL_KEY] = tfds.features.Scalar(dtype=np.float32, doc=self._LABEL_DOC)
        feats["path"] = tfds.features.Text(doc="p0 image path relative to the BAPPS mode folder")
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"BAPPS {self._MODE} (Zhang et al., CVPR 2018), images resized so the "
                        f"shorter side is {self.builder_config.load_size}.",
            features=tfds.features.FeaturesDict(feats),
            homepage="https://github.com/richzhang/PerceptualSimilarity",
            disable_shuffling=True,  # keep BAPPS's sorted order (index i == folder record i)
        )

    def _read(self, root: str) -> _folder.BappsSource:
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        source = self._read(_mode_root(dl_manager.manual_dir, self._MODE))
        return {split_name(span.name): self._generate_examples(source, span)
                for span in source.sets}

    def _generate_examples(self, source, span):
        yield from _examples(source, span, self.num_threads())


class Bapps2afc(_BappsBuilder):
    """BAPPS 2AFC: ``ref``, ``p0``, ``p1`` (uint8 PNG), ``judge`` (float32), ``path`` (text)."""
    name = "bapps_2afc"
    _MODE = "2afc"
    _IMAGE_KEYS = ("ref", "p0", "p1")
    _LABEL_KEY = "judge"
    _LABEL_DOC = "fraction of people who judged p1 closer to ref, in [0, 1]"

    def _read(self, root):
        cfg = self.builder_config
        return _folder.read_2afc(root, cfg.sets, cfg.load_size, num_threads=self.num_threads())


class BappsJnd(_BappsBuilder):
    """BAPPS JND: ``p0``, ``p1`` (uint8 PNG), ``same`` (float32), ``path`` (text)."""
    name = "bapps_jnd"
    _MODE = "jnd"
    _IMAGE_KEYS = ("p0", "p1")
    _LABEL_KEY = "same"
    _LABEL_DOC = "fraction of people who judged p0 and p1 identical, in [0, 1]"

    def _read(self, root):
        cfg = self.builder_config
        return _folder.read_jnd(root, cfg.sets, cfg.load_size, num_threads=self.num_threads())


def bapps_2afc_builder(data_dir, load_size: int = 64,
                       sets: Sequence[str] | None = None) -> Bapps2afc:
    """The 2AFC builder for ``data_dir`` (reads a prepared dataset; no building).

    Args:
      data_dir: the TFDS data directory holding ``bapps_2afc``.
      load_size: the build's image size.
      sets: the build's sets (default all).

    Returns:
      The :class:`Bapps2afc` builder (``.as_data_source()``).
    """
    return Bapps2afc(data_dir=os.path.expanduser(os.fspath(data_dir)),
                     config=_config(load_size, sets), file_format="array_record")


def bapps_jnd_builder(data_dir, load_size: int = 64,
                      sets: Sequence[str] | None = None) -> BappsJnd:
    """The JND builder for ``data_dir`` (reads a prepared dataset; no building).

    Args:
      data_dir: the TFDS data directory holding ``bapps_jnd``.
      load_size: the build's image size.
      sets: the build's sets (default all).

    Returns:
      The :class:`BappsJnd` builder (``.as_data_source()``).
    """
    return BappsJnd(data_dir=os.path.expanduser(os.fspath(data_dir)),
                    config=_config(load_size, sets), file_format="array_record")


def _prepare(builder, manual_dir, num_threads):
    manual_dir = os.path.expanduser(os.fspath(manual_dir))
    if not os.path.isdir(manual_dir):
        raise FileNotFoundError(f"BAPPS manual directory not found: {manual_dir}\n"
                                + _INSTRUCTIONS)
    builder._num_threads = num_threads  # pylint: disable=protected-access
    # TFDS writes the data into a temporary folder that it renames only on success, but it also
    # leaves bookkeeping (`<name>/.config`, `downloads/`) behind; remove what this call created.
    data_dir = os.fspath(builder.data_dir_root)
    created = [p for p in (os.path.join(data_dir, builder.name), os.path.join(data_dir,
               "downloads"), data_dir) if not os.path.exists(p)]
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except BaseException:
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    return builder


def build_2afc_tfds(manual_dir, data_dir, load_size: int = 64,
                    sets: Sequence[str] | None = None, *, num_threads: int = 8) -> Bapps2afc:
    """Builds (once; a no-op when already built) the BAPPS 2AFC TFDS dataset.

    Args:
      manual_dir: the extracted BAPPS ``dataset/`` folder (holding ``2afc/``) or ``2afc/`` itself.
      data_dir: where TFDS writes ``bapps_2afc/<config>/1.0.0/*.array_record``.
      load_size: shorter image side after (bicubic) resizing.
      sets: e.g. ``["train/traditional", "val/cnn"]``; ``None`` = every set present.
      num_threads: decode/encode threads.

    Returns:
      The prepared builder; ``builder.as_data_source()[split_name("val/cnn")]`` is a random-access
      source for :func:`make_2afc_loader`.
    """
    return _prepare(bapps_2afc_builder(data_dir, load_size, sets), manual_dir, num_threads)


def build_jnd_tfds(manual_dir, data_dir, load_size: int = 64,
                   sets: Sequence[str] | None = None, *, num_threads: int = 8) -> BappsJnd:
    """Builds the BAPPS JND TFDS dataset (see :func:`build_2afc_tfds`).

    Args:
      manual_dir: the extracted BAPPS ``dataset`` folder (holding ``jnd/``).
      data_dir: the TFDS data directory to write.
      load_size: image size stored.
      sets: JND sets to build (default all).
      num_threads: decoding threads.

    Returns:
      The built :class:`BappsJnd` builder.
    """
    return _prepare(bapps_jnd_builder(data_dir, load_size, sets), manual_dir, num_threads)
