"""BAPPS data: folder reading with validation, TFDS builders (ArrayRecord) and the grain loader.

BAPPS (Zhang et al., CVPR 2018) is the perceptual-similarity dataset ST-LPIPS (Ghildyal & Liu,
ECCV 2022) trains and evaluates on. Three ways in, all giving the same decoded records:

1. **Folder** -- ``read_2afc(root, datasets=None, load_size=64)`` reads an extracted
   ``dataset/2afc`` folder (``{train,val}/<set>/{ref,p0,p1,judge}``) and returns a
   :class:`BappsSource`: a picklable random-access source. Judges are read and checked eagerly;
   images are decoded on access (``verify_images=True`` decodes all now). ``source[i]`` is::

       {"ref", "p0", "p1": uint8 (H, W, 3) RGB, shorter side resized to load_size (bicubic),
        "judge": float32 scalar in [0, 1] (fraction of people who preferred p1),
        "path": str, the p0 path relative to root ("val/cnn/p0/000001.png"),
        "set": str ("val/cnn")}

   ``source.sets`` lists one :class:`SetSpan` (``name``, ``start``, ``stop``) per set, in the
   requested order; records are in BAPPS's sorted file order. ``read_jnd(root, ...)`` does the
   same for ``dataset/jnd`` (``p0``, ``p1``, ``same``). Bad data raises ``FileNotFoundError`` /
   ``ValueError`` naming the path: missing set or subfolder, ref/p0/p1/judge count mismatch,
   unpaired file names, unreadable or out-of-range judge, corrupt or wrong-size image.

2. **TFDS** -- ``build_2afc_tfds(manual_dir, data_dir, load_size=64, sets=None)`` builds the
   ``bapps_2afc`` dataset (``file_format="array_record"``, no TensorFlow needed) from the
   extracted folder (``MANUAL_DOWNLOAD_INSTRUCTIONS``; ``DownloadConfig(manual_dir=...)``) and
   returns the builder. Splits are named after the sets with ``_``: ``train_traditional``,
   ``train_cnn``, ``train_mix``, ``val_traditional``, ``val_cnn``, ``val_superres``,
   ``val_deblur``, ``val_color``, ``val_frameinterp`` (``split_name("val/cnn")``). Images are
   stored as lossless PNG at ``load_size``; ``builder.as_data_source()[split]`` decodes records to
   ``{"ref","p0","p1": uint8 (H, W, 3), "judge": float32, "path": bytes}``, identical to the
   folder source's and in the same order. A failed build leaves nothing behind.
   ``bapps_2afc_builder(data_dir, load_size, sets)`` opens a built one; ``build_jnd_tfds`` /
   ``bapps_jnd_builder`` do JND (``p0``, ``p1``, ``same``).

3. **Grain** -- ``make_loader(source, *, batch_size, shuffle=True, seed=0, num_epochs=1,
   shard_index=None, shard_count=None, drop_remainder=True, pad_remainder=False, indices=None,
   worker_count=0)`` takes any of these sources (and the in-memory :class:`ArraySource`,
   :func:`synthetic_2afc`, :class:`ConcatSource`) and returns grain's DataLoader iterator of
   host-local NumPy batches ``{"ref","p0","p1": uint8 (B, H, W, 3), "judge": float32 (B,)}``
   (JND sources: ``p0``, ``p1``, ``same``), sharded by ``jax.process_index()`` (unless given);
   ``it.get_state()`` / ``it.set_state(state)`` resume exactly. It is the package's one input
   path: training reads shuffled full batches, validation and ``evaluation`` read every record
   in order with ``pad_remainder=True`` (padded last batch plus a ``mask``). Convert to [-1, 1]
   with ``x / 127.5 - 1`` (or pass uint8 straight to ``Metric``).

Example::

    from shiftlpips_jax import data
    src = data.read_2afc("BAPPS/dataset/2afc", ["train/traditional", "train/cnn"])
    # or: src = data.build_2afc_tfds("BAPPS/dataset", "~/tfds").as_data_source()["train_cnn"]
    it = data.make_loader(src, batch_size=50, seed=0, num_epochs=None)
    batch = next(it); state = it.get_state()     # ... later: it.set_state(state)
"""

from shiftlpips_jax._src import lazy as _lazy
from shiftlpips_jax._src.data.folder import BAPPS_2AFC_SETS
from shiftlpips_jax._src.data.folder import BAPPS_JND_SETS
from shiftlpips_jax._src.data.folder import BappsSource
from shiftlpips_jax._src.data.folder import SetSpan
from shiftlpips_jax._src.data.folder import read_2afc
from shiftlpips_jax._src.data.folder import read_jnd
from shiftlpips_jax._src.data.folder import resize_shorter_side
from shiftlpips_jax._src.data.sources import ArraySource
from shiftlpips_jax._src.data.sources import ConcatSource
from shiftlpips_jax._src.data.sources import synthetic_2afc

# The TFDS and grain halves import heavy libraries (about 2 s): loaded on first use.
_PIPELINE = "shiftlpips_jax._src.data.pipeline"
_TFDS = "shiftlpips_jax._src.data.tfds"
__getattr__, __dir__ = _lazy.attach(__name__, {
    "JND_KEYS": _PIPELINE,
    "TWOAFC_KEYS": _PIPELINE,
    "make_loader": _PIPELINE,
    "Bapps2afc": _TFDS,
    "BappsConfig": _TFDS,
    "BappsJnd": _TFDS,
    "bapps_2afc_builder": _TFDS,
    "bapps_jnd_builder": _TFDS,
    "build_2afc_tfds": _TFDS,
    "build_jnd_tfds": _TFDS,
    "split_name": _TFDS,
}, deprecated={"make_2afc_loader": (_PIPELINE, "make_loader", "shiftlpips_jax.data.make_loader")})

__all__ = (
    "ArraySource",
    "BAPPS_2AFC_SETS",
    "BAPPS_JND_SETS",
    "Bapps2afc",
    "BappsConfig",
    "BappsJnd",
    "BappsSource",
    "ConcatSource",
    "JND_KEYS",
    "SetSpan",
    "TWOAFC_KEYS",
    "bapps_2afc_builder",
    "bapps_jnd_builder",
    "build_2afc_tfds",
    "build_jnd_tfds",
    "make_loader",
    "read_2afc",
    "read_jnd",
    "resize_shorter_side",
    "split_name",
    "synthetic_2afc",
)
