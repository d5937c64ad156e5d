"""Metric checkpoints on disk: an Orbax tree of variables plus a JSON description of the model.

Layout of a metric directory (written by ``convert/`` programs and by training's export)::

    DIR/shiftlpips.json      {"format": "shiftlpips_jax.metric", "version": 2, "net": "alex",
                              "variant": "shift_tolerant", "backbone": {...fields...},
                              "variables": "variables-<id>", "digest": {...}, ...}
    DIR/variables-<id>/      Orbax StandardCheckpointer tree {"params": ..., ["batch_stats": ...]}

``shiftlpips.json`` is both the description and the pointer to the current variables, and it is
replaced atomically (written beside, then renamed over), so overwriting a metric never leaves
``DIR`` absent or half-written: the new variables are written under a fresh name first, the JSON
switch commits them, and only then are older ``variables*`` entries removed (leftovers of a crash
are removed by the next save). A new ``DIR`` is assembled under a temporary name beside it and
renamed into place. The JSON records two sha256 digests, of the description and of the variables,
which :func:`load_metric` recomputes: an edited description (another architecture for the same
weights) or edited parameters are refused, as are missing or mistyped keys and parameters whose
shapes do not fit the described model. Directories of the earlier layout (``version`` 1:
``DIR/variables/``, no digests) still load, with a warning that edits cannot be detected.

Example::

    save_metric("ckpt/alex_st", model, variables, net="alex", variant="shift_tolerant")
    model, variables, meta = load_metric("ckpt/alex_st")
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import tempfile
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shiftlpips_jax._src import backbones, outputs
from shiftlpips_jax._src.errors import InputError, MetricCheckpointError
from shiftlpips_jax._src.lpips import LPIPS
from shiftlpips_jax._src.weights import digests

__all__ = ["save_metric", "load_metric", "MetricCheckpointError", "METADATA_FILE"]

METADATA_FILE = "shiftlpips.json"
FORMAT = "shiftlpips_jax.metric"
VERSION = 2
LEGACY_VARIABLES = "variables"  # version 1: the variables directory had this fixed name
_VARIABLES_NAME = re.compile(r"variables-[0-9a-f]{8,64}")
_TMP_PREFIX = outputs.TEMP_PREFIX
# Keys every description has, with their JSON types (version 2 adds "variables" and "digest").
_REQUIRED = {"format": str, "version": int, "net": str, "variant": str, "backbone": dict,
             "lpips": bool, "use_dropout": bool}
_RESERVED = set(_REQUIRED) | {"variables", "digest"}


def _jsonable(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def _fsync_write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _description_digest(meta: dict) -> str:
    return digests.json_digest({k: v for k, v in meta.items() if k != "digest"})


def _write_variables(path: str, tree: Any) -> None:
    import orbax.checkpoint as ocp

    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path, tree)
    checkpointer.wait_until_finished()


def _remove_stale(directory: str, keep: str) -> None:
    """Removes variables directories and temporary files of earlier or interrupted saves."""
    for name in os.listdir(directory):
        if name == keep:
            continue
        if name == LEGACY_VARIABLES or name.startswith(("variables-", _TMP_PREFIX)):
            path = os.path.join(directory, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def save_metric(directory: str, model: LPIPS, variables: Any, *, net: str, variant: str,
                extra: dict | None = None, overwrite: bool = False) -> str:
    """Writes ``variables`` of ``model`` as a metric directory that :func:`load_metric` reads.

    Args:
      directory: the metric directory to create (or, with ``overwrite``, to replace).
      model: the LPIPS module the variables belong to (its backbone fields are recorded).
      variables: ``{"params": ..., ["batch_stats": ...]}``.
      net, variant: names recorded for ``sl.load(checkpoint=...)``.
      extra: further JSON-serialisable entries (provenance, training settings); they may not
        reuse the reserved keys (``format``, ``net``, ``digest``, ...).
      overwrite: replace an existing metric directory. A directory that is neither empty nor a
        metric directory is never replaced.

    Returns:
      The absolute path of the directory.

    Raises:
      FileExistsError: ``directory`` exists and ``overwrite`` is False.
      MetricCheckpointError: ``directory`` is a file, or a directory that is not a metric.
    """
    directory = os.path.abspath(directory)
    clash = sorted(_RESERVED & set(extra or {}))
    if clash:
        raise InputError(f"save_metric: extra may not set the reserved keys {clash}")
    exists = os.path.lexists(directory)
    if exists and not overwrite:
        raise FileExistsError(f"{directory} exists; pass overwrite=True to replace it")
    if exists and (not os.path.isdir(directory) or os.path.islink(directory)):
        raise MetricCheckpointError(f"{directory} exists and is not a directory; refusing to "
                                    "replace it with a metric")
    if exists and os.listdir(directory) and not os.path.isfile(
            os.path.join(directory, METADATA_FILE)):
        raise MetricCheckpointError(
            f"{directory} is not empty and is not a metric directory ({METADATA_FILE} is "
            "missing); refusing to replace its contents. Choose another output directory.")
    tree = jax.tree.map(lambda a: np.asarray(a, dtype=np.float32), jax.device_get(variables))
    name = f"variables-{secrets.token_hex(8)}"
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "net": net,
        "variant": variant,
        "backbone": {k: _jsonable(v) for k, v in backbones.describe(model.net).items()},
        "lpips": bool(model.lpips),
        "use_dropout": bool(model.use_dropout),
        **(extra or {}),
        "variables": name,
    }
    meta["digest"] = {"algorithm": "sha256", "description": _description_digest(meta),
                      "variables": digests.tree_digest(digests.flatten(tree))}
    text = json.dumps(meta, indent=2, sort_keys=True)
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    if not exists:
        tmp = tempfile.mkdtemp(prefix=os.path.basename(directory) + ".tmp-", dir=parent)
        try:
            _write_variables(os.path.join(tmp, name), tree)
            _fsync_write(os.path.join(tmp, METADATA_FILE), text)
            os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory
    # Replace in place: new variables under a fresh name, then the JSON switch (the commit).
    target = os.path.join(directory, name)
    try:
        _write_variables(target, tree)
        outputs.atomic_write_text(os.path.join(directory, METADATA_FILE), text, user_error=False)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    _remove_stale(directory, keep=name)
    return directory


def _fail(path: str, what: str) -> MetricCheckpointError:
    return MetricCheckpointError(f"{path}: {what}. Write the directory again with convert/ "
                                 "programs, training's export or sl.weights.save_metric.")


def _check_backbone(path: str, desc: dict) -> None:
    classes = {c.__name__: c for c in backbones.BACKBONE_CLASSES.values()}
    name = desc.get("class")
    if not isinstance(name, str) or name not in classes:
        raise _fail(path, f"'backbone.class' is {name!r}, expected one of {sorted(classes)}")
    fields = {f.name: f for f in dataclasses.fields(classes[name])
              if f.name not in ("parent", "name", "dtype")}
    unknown = sorted(set(desc) - set(fields) - {"class"})
    if unknown:
        raise _fail(path, f"'backbone' has keys {unknown} that {name} does not have")
    for key, field in fields.items():
        if key not in desc:
            raise _fail(path, f"key 'backbone.{key}' is missing")
        want = type(field.default) if field.default is not dataclasses.MISSING else None
        value = desc[key]
        if want is not None and (type(value) is not want):
            raise _fail(path, f"'backbone.{key}' is {value!r} ({type(value).__name__}), "
                              f"expected {want.__name__}")


def read_metadata(directory: str) -> dict:
    """The validated description of a metric directory (every key present and typed)."""
    path = os.path.join(directory, METADATA_FILE)
    if not os.path.isdir(directory):
        raise MetricCheckpointError(f"metric checkpoint directory not found: {directory}")
    if not os.path.isfile(path):
        raise MetricCheckpointError(
            f"{directory} is not a shiftlpips_jax metric checkpoint: {METADATA_FILE} is missing "
            "(write one with convert/ programs, training's export or save_metric)")
    try:
        with open(path) as fh:
            meta = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MetricCheckpointError(f"{path} is unreadable: {err}") from err
    if not isinstance(meta, dict):
        raise _fail(path, f"expected a JSON object, found {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise MetricCheckpointError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    required = dict(_REQUIRED)
    if meta.get("version") == VERSION:
        required.update(variables=str, digest=dict)
    elif meta.get("version") != 1 or type(meta.get("version")) is not int:
        raise _fail(path, f"'version' is {meta.get('version')!r}, expected 1 or {VERSION}")
    for key, kind in required.items():
        if key not in meta:
            raise _fail(path, f"key '{key}' is missing")
        if type(meta[key]) is not kind:
            raise _fail(path, f"'{key}' is {meta[key]!r} ({type(meta[key]).__name__}), expected "
                              f"{kind.__name__}")
    _check_backbone(path, meta["backbone"])
    if meta["version"] == VERSION:
        if not _VARIABLES_NAME.fullmatch(meta["variables"]):
            raise _fail(path, f"'variables' is {meta['variables']!r}, expected 'variables-<hex>'")
        for key in ("description", "variables"):
            value = meta["digest"].get(key)
            if not (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value)):
                raise _fail(path, f"'digest.{key}' is {value!r}, expected a sha256 hex digest")
    return meta


def _stored_shapes(path: str) -> dict[str, tuple]:
    import orbax.checkpoint as ocp

    meta = ocp.StandardCheckpointer().metadata(path)
    tree = getattr(getattr(meta, "item_metadata", meta), "tree", None)
    if tree is None:
        tree = meta
    return {k: tuple(v.shape) for k, v in digests.flatten(dict(tree)).items()}


def _load_once(directory: str, dtype: Any) -> tuple[LPIPS, dict, dict]:
    import orbax.checkpoint as ocp

    from shiftlpips_jax._src.weights import convert, registry

    meta = read_metadata(directory)
    json_path = os.path.join(directory, METADATA_FILE)
    if meta["version"] == VERSION:
        actual = _description_digest(meta)
        if actual != meta["digest"]["description"]:
            raise MetricCheckpointError(
                f"{json_path} was changed after it was saved: its description digest is "
                f"{actual[:16]}..., the recorded one {meta['digest']['description'][:16]}... A "
                "changed description runs the stored weights in another architecture; write "
                "the directory again (convert/ programs, training's export or sl.weights.save_metric) "
                "instead of editing it.")
        var_path = os.path.join(directory, meta["variables"])
    else:
        warnings.warn(f"{directory} was written by an earlier shiftlpips_jax without digests: "
                      "edits to it cannot be detected. Re-save it (sl.weights.save_metric(..., "
                      "overwrite=True)) to add them.", stacklevel=3)
        var_path = os.path.join(directory, LEGACY_VARIABLES)
    try:
        backbone = backbones.from_description(meta["backbone"], dtype=dtype)
        model = LPIPS(net=backbone, use_dropout=meta["use_dropout"], lpips=meta["lpips"])
        template = registry.template_variables(model)
    except (TypeError, ValueError) as err:
        raise _fail(json_path, f"the backbone description does not build a model: {err}") \
            from err
    try:
        stored = _stored_shapes(var_path)
    except Exception as err:  # noqa: BLE001 - Orbax raises many types; report them uniformly
        raise MetricCheckpointError(f"cannot read the variables of {directory} ({var_path}): "
                                    f"{type(err).__name__}: {err}") from err
    wanted = {k: tuple(v.shape) for k, v in digests.flatten(template).items()}
    names = sorted(set(stored) ^ set(wanted))
    if names:
        raise MetricCheckpointError(
            f"{directory}: the stored parameters do not fit the described model "
            f"({meta['backbone']}): names present in only one of them: {names[:6]}")
    for k in wanted:
        if stored[k] != wanted[k]:
            raise MetricCheckpointError(
                f"{directory}: stored parameter '{k}' has shape {stored[k]}, the described model "
                f"({meta['backbone']}) expects {wanted[k]}")
    target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, jnp.float32), template)
    try:
        restored = ocp.StandardCheckpointer().restore(var_path, target)
    except Exception as err:  # noqa: BLE001 - Orbax raises many types; report them uniformly
        raise MetricCheckpointError(f"cannot restore variables from {directory}: {err}") from err
    restored = jax.tree.map(np.asarray, restored)
    if meta["version"] == VERSION:
        actual = digests.tree_digest(digests.flatten(restored))
        if actual != meta["digest"]["variables"]:
            raise MetricCheckpointError(
                f"{var_path}: the parameters differ from those saved (digest {actual[:16]}..., "
                f"recorded {meta['digest']['variables'][:16]}...): the files are corrupt or "
                "were edited. Write the directory again from its source.")
    variables = convert.merge_variables(template, restored, source=directory)
    return model, variables, meta


def load_metric(directory: str, *, dtype: Any = jnp.float32) -> tuple[LPIPS, dict, dict]:
    """Reads and verifies a metric directory; returns ``(module, variables, metadata)``.

    Args:
      directory: written by :func:`save_metric` (or an earlier version's layout).
      dtype: computation dtype of the backbone.

    Raises:
      MetricCheckpointError: the directory is missing, incomplete, edited, corrupt, or its
        description does not fit its parameters (the message names the key or parameter).

    Returns:
      ``(module, variables, metadata)``: the :class:`LPIPS` module, its variables and the
      directory's JSON description.
    """
    directory = os.path.abspath(directory)
    json_path = os.path.join(directory, METADATA_FILE)
    for attempt in range(3):
        before = _read_bytes(json_path)
        try:
            return _load_once(directory, dtype)
        except MetricCheckpointError:
            # A concurrent save_metric may have switched the directory to new variables and
            # removed the ones this read had started on: read again when the JSON changed.
            if attempt == 2 or before is None or _read_bytes(json_path) == before:
                raise
    raise AssertionError("unreachable")


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None
