"""Metric checkpoints on disk: an Orbax tree of variables plus a JSON description of the model.

Layout of a metric directory (written by ``convert/`` programs and by training's export)::

    DIR/shiftlpips.json      {"format": "shiftlpips_jax.metric", "version": 1, "net": "alex",
                              "variant": "shift_tolerant", "backbone": {...fields...}, ...}
    DIR/variables/           Orbax StandardCheckpointer tree {"params": ..., ["batch_stats": ...]}

The directory appears atomically: it is assembled under a temporary name beside ``DIR`` and
renamed into place, so a crash never leaves a half-written metric.

Example::

    save_metric("ckpt/alex_st", model, variables, net="alex", variant="shift_tolerant")
    model, variables, meta = load_metric("ckpt/alex_st")
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import backbones
from .errors import MetricCheckpointError
from .lpips import LPIPS

__all__ = ["save_metric", "load_metric", "MetricCheckpointError", "METADATA_FILE"]

METADATA_FILE = "shiftlpips.json"
FORMAT = "shiftlpips_jax.metric"


def _jsonable(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def save_metric(directory: str, model: LPIPS, variables: Any, *, net: str, variant: str,
                extra: dict | None = None, overwrite: bool = False) -> str:
    """Writes ``variables`` of ``model`` as a metric directory that :func:`load_metric` reads."""
    import orbax.checkpoint as ocp

    directory = os.path.abspath(directory)
    if os.path.exists(directory) and not overwrite:
        raise FileExistsError(f"{directory} exists; pass overwrite=True to replace it")
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    meta = {
        "format": FORMAT,
        "version": 1,
        "net": net,
        "variant": variant,
        "backbone": {k: _jsonable(v) for k, v in backbones.describe(model.net).items()},
        "lpips": bool(model.lpips),
        "use_dropout": bool(model.use_dropout),
        **(extra or {}),
    }
    tmp = tempfile.mkdtemp(prefix=os.path.basename(directory) + ".tmp-", dir=parent)
    try:
        tree = jax.tree.map(lambda a: np.asarray(a, dtype=np.float32), jax.device_get(variables))
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(os.path.join(tmp, "variables"), tree)
        checkpointer.wait_until_finished()
        with open(os.path.join(tmp, METADATA_FILE), "w") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True)
        if os.path.exists(directory):
            old = directory + ".old"
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_metadata(directory: str) -> dict:
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
    except (OSError, json.JSONDecodeError) as err:
        raise MetricCheckpointError(f"{path} is unreadable: {err}") from err
    if meta.get("format") != FORMAT:
        raise MetricCheckpointError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def load_metric(directory: str, dtype: Any = jnp.float32) -> tuple[LPIPS, dict, dict]:
    """Reads a metric directory; returns ``(module, variables, metadata)``."""
    import orbax.checkpoint as ocp

    from . import convert, registry

    directory = os.path.abspath(directory)
    meta = read_metadata(directory)
    backbone = backbones.from_description(meta["backbone"], dtype=dtype)
    model = LPIPS(net=backbone, use_dropout=meta.get("use_dropout", True),
                  lpips=meta.get("lpips", True))
    template = registry.template_variables(model)
    target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, jnp.float32), template)
    try:
        restored = ocp.StandardCheckpointer().restore(os.path.join(directory, "variables"), target)
    except Exception as err:  # noqa: BLE001 - Orbax raises many types; report them uniformly
        raise MetricCheckpointError(f"cannot restore variables from {directory}: {err}") from err
    variables = convert.merge_variables(template, restored, source=directory)
    return model, variables, meta
