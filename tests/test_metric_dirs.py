"""Metric directories are verified on load and replaced safely on save.

* An edited description (another architecture for the same weights), edited parameters, missing
  or mistyped keys, and parameters that do not fit the described model are refused with a
  MetricCheckpointError naming the key or parameter.
* Overwriting never leaves the directory absent or unloadable (checked from inside the write),
  survives leftovers of earlier crashes, and never replaces a directory that is not a metric.
* Directories of the earlier layout (``variables/``, version 1, no digests) still load.
"""

from __future__ import annotations

import json
import os
import shutil

import jax
import numpy as np
import pytest

import shiftlpips_jax as sl
from shiftlpips_jax._src import backbones
from shiftlpips_jax._src.weights import checkpoint, registry


@pytest.fixture(scope="module")
def alex_st():
    variables, model = registry.load_pretrained("alex", "shift_tolerant")
    return model, variables


@pytest.fixture
def saved(tmp_path, alex_st):
    model, variables = alex_st
    return checkpoint.save_metric(str(tmp_path / "m"), model, variables, net="alex",
                                  variant="shift_tolerant", extra={"note": "test"})


def _distance(directory, example):
    ref, p0, _ = example
    return float(sl.load(checkpoint=directory)(ref, p0))


def _edit_json(directory, fn):
    path = os.path.join(directory, checkpoint.METADATA_FILE)
    meta = json.load(open(path))
    fn(meta)
    with open(path, "w") as fh:
        json.dump(meta, fh)


def test_layout_and_round_trip(saved, example, metrics):
    names = sorted(os.listdir(saved))
    assert names[0] == "shiftlpips.json" and len(names) == 2 and names[1].startswith("variables-")
    meta = json.load(open(os.path.join(saved, "shiftlpips.json")))
    assert meta["version"] == 2 and meta["variables"] == names[1]
    assert set(meta["digest"]) == {"algorithm", "description", "variables"}
    ref, p0, _ = example
    assert _distance(saved, example) == float(metrics[("alex", "shift_tolerant")](ref, p0))


@pytest.mark.parametrize("edit", [
    lambda m: m["backbone"].update(conv1_stride=2),
    lambda m: m["backbone"].update(blurpool=False, blur_location="original"),
    lambda m: m["backbone"].update(pad_more=False),
    lambda m: m.update(lpips=False),
    lambda m: m.update(variant="lpips"),
    lambda m: m.update(note="edited"),
], ids=["conv1_stride", "blurpool", "pad_more", "lpips", "variant", "extra"])
def test_edited_description_is_refused(saved, edit):
    _edit_json(saved, edit)
    with pytest.raises(sl.errors.MetricCheckpointError, match="shiftlpips.json was changed after it was "
                                                      "saved"):
        sl.load(checkpoint=saved)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("use_dropout"), "key 'use_dropout' is missing"),
    (lambda m: m.pop("net"), "key 'net' is missing"),
    (lambda m: m["backbone"].pop("conv1_stride"), "key 'backbone.conv1_stride' is missing"),
    (lambda m: m["backbone"].update(conv1_stride="2"), r"'backbone.conv1_stride' is '2' \(str\), "
                                                       "expected int"),
    (lambda m: m["backbone"].update(blurpool=1), r"'backbone.blurpool' is 1 \(int\), expected "
                                                 "bool"),
    (lambda m: m["backbone"].update(width=3), r"'backbone' has keys \['width'\]"),
    (lambda m: m["backbone"].update({"class": "Nope"}), "'backbone.class' is 'Nope'"),
    (lambda m: m.update(lpips="yes"), r"'lpips' is 'yes' \(str\), expected bool"),
    (lambda m: m.update(variables="../../elsewhere"), "'variables' is '../../elsewhere'"),
    (lambda m: m.pop("digest"), "key 'digest' is missing"),
    (lambda m: m["digest"].update(variables="abc"), "'digest.variables' is 'abc'"),
    (lambda m: m.update(version=3), "'version' is 3, expected 1 or 2"),
])
def test_missing_or_mistyped_keys_are_named(saved, edit, message):
    _edit_json(saved, edit)
    with pytest.raises(sl.errors.MetricCheckpointError, match=message):
        sl.load(checkpoint=saved)


def test_not_a_json_object(saved):
    with open(os.path.join(saved, "shiftlpips.json"), "w") as fh:
        json.dump([1, 2], fh)
    with pytest.raises(sl.errors.MetricCheckpointError, match="expected a JSON object, found list"):
        sl.load(checkpoint=saved)


def test_edited_parameters_are_refused(saved, example):
    meta = json.load(open(os.path.join(saved, "shiftlpips.json")))
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(saved, meta["variables"]))
             for f in fs]
    data = max(files, key=os.path.getsize)
    blob = bytearray(open(data, "rb").read())
    blob[len(blob) // 2] ^= 0x01
    open(data, "wb").write(bytes(blob))
    with pytest.raises(sl.errors.MetricCheckpointError,
                       match="parameters differ from those saved|cannot restore"):
        sl.load(checkpoint=saved)


def _write_v1(directory, model, variables, **changes):
    """A metric directory as the earlier layout wrote it: DIR/variables/, version 1, no
    digests."""
    import orbax.checkpoint as ocp

    os.makedirs(directory)
    tree = jax.tree.map(lambda a: np.asarray(a, np.float32), variables)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.join(directory, "variables"), tree)
    checkpointer.wait_until_finished()
    meta = {"format": "shiftlpips_jax.metric", "version": 1, "net": "alex",
            "variant": "shift_tolerant", "backbone": backbones.describe(model.net),
            "lpips": True, "use_dropout": True, **changes}
    with open(os.path.join(directory, "shiftlpips.json"), "w") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True)
    return directory


def test_earlier_layout_still_loads_and_is_upgraded_by_overwrite(tmp_path, alex_st, example,
                                                                 metrics):
    model, variables = alex_st
    old = _write_v1(str(tmp_path / "v1"), model, variables)
    ref, p0, _ = example
    want = float(metrics[("alex", "shift_tolerant")](ref, p0))
    with pytest.warns(UserWarning, match="without digests"):
        assert _distance(old, example) == want
    checkpoint.save_metric(old, model, variables, net="alex", variant="shift_tolerant",
                           overwrite=True)
    assert "variables" not in os.listdir(old)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _distance(old, example) == want


def test_parameters_must_fit_the_described_model(tmp_path, alex_st):
    """Without digests (earlier layout) the shapes and names are still checked."""
    model, variables = alex_st
    vgg = backbones.describe(sl.make_backbone("vgg", "shift_tolerant"))
    d = _write_v1(str(tmp_path / "cls"), model, variables, backbone=vgg)
    with pytest.warns(UserWarning), pytest.raises(
            sl.errors.MetricCheckpointError, match="do not fit the described model.*params/net/conv"):
        sl.load(checkpoint=d)
    wide = jax.tree.map(lambda a: a, variables)
    wide["params"]["lin0"]["kernel"] = np.zeros((1, 1, 64, 2), np.float32)
    d = _write_v1(str(tmp_path / "shape"), model, wide)
    with pytest.warns(UserWarning), pytest.raises(
            sl.errors.MetricCheckpointError, match=r"stored parameter 'params/lin0/kernel' has shape "
                                            r"\(1, 1, 64, 2\), the described model .* expects "
                                            r"\(1, 1, 64, 1\)"):
        sl.load(checkpoint=d)


def test_overwrite_keeps_the_directory_loadable_throughout(saved, alex_st, example, monkeypatch):
    """While the new version is written, DIR exists and loads as the old metric; a failure at
    the switch leaves the old metric; leftovers of crashes (and a DIR.old) do not block."""
    model, variables = alex_st
    before = _distance(saved, example)
    os.makedirs(saved + ".old/stale")  # what an interrupted earlier overwrite left behind
    os.makedirs(os.path.join(saved, "variables-00000000deadbeef"))  # a crashed save's leftovers
    open(os.path.join(saved, ".shiftlpips-tmp-1234.json"), "w").write("{")
    changed = jax.tree.map(lambda a: np.asarray(a) * 0.5, variables)
    real_write = checkpoint._write_variables
    seen = []

    def watching_write(path, tree):
        seen.append(_distance(saved, example))
        real_write(path, tree)
        seen.append(_distance(saved, example))

    monkeypatch.setattr(checkpoint, "_write_variables", watching_write)
    checkpoint.save_metric(saved, model, changed, net="alex", variant="shift_tolerant",
                           overwrite=True)
    assert seen == [before, before]
    after = _distance(saved, example)
    assert after != before
    assert len(os.listdir(saved)) == 2  # the JSON and the one current variables directory

    # A failure at the switch (the JSON rename) keeps the previous version in place.
    real_replace = os.replace

    def failing_replace(src, dst):
        if dst.endswith("shiftlpips.json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save_metric(saved, model, variables, net="alex", variant="shift_tolerant",
                               overwrite=True)
    monkeypatch.undo()
    assert _distance(saved, example) == after
    assert len(os.listdir(saved)) == 2


def test_never_replaces_what_is_not_a_metric(tmp_path, alex_st):
    model, variables = alex_st
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(sl.errors.MetricCheckpointError, match="not a metric directory"):
        checkpoint.save_metric(str(photos), model, variables, net="alex",
                               variant="shift_tolerant", overwrite=True)
    assert os.listdir(photos) == ["holiday.jpg"]
    plain = tmp_path / "file"
    plain.write_text("x")
    with pytest.raises(sl.errors.MetricCheckpointError, match="not a directory"):
        checkpoint.save_metric(str(plain), model, variables, net="alex",
                               variant="shift_tolerant", overwrite=True)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        checkpoint.save_metric(str(photos), model, variables, net="alex",
                               variant="shift_tolerant")
    from shiftlpips_jax._src.errors import InputError
    with pytest.raises(InputError, match=r"reserved keys \['digest', 'net'\]"):
        checkpoint.save_metric(str(tmp_path / "new"), model, variables, net="alex",
                               variant="shift_tolerant", extra={"net": "vgg", "digest": 1})
    assert not os.path.exists(tmp_path / "new")
    shutil.rmtree(photos)
