"""BAPPS folder reading: records, resizing, set spans, and errors that name the bad path."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from bapps_fixture import make_2afc, make_jnd
from shiftlpips_jax import data


@pytest.fixture(scope="module")
def bapps(tmp_path_factory):
    root = tmp_path_factory.mktemp("bapps")
    make_2afc(root / "2afc", {"val/traditional": 4, "val/cnn": 3, "train/mix": 2}, seed=0)
    make_jnd(root / "jnd", {"val/traditional": 3, "val/cnn": 2}, seed=0)
    return root


def _copy(bapps, tmp_path, mode="2afc"):
    dst = tmp_path / mode
    shutil.copytree(bapps / mode, dst)
    return dst


def test_read_2afc_records_match_files(bapps):
    src = data.read_2afc(bapps / "2afc", ["val/traditional", "val/cnn"])
    assert len(src) == 7
    assert [(s.name, s.start, s.stop) for s in src.sets] == [("val/traditional", 0, 4),
                                                             ("val/cnn", 4, 7)]
    rec = src[5]  # val/cnn, second triplet
    base = bapps / "2afc" / "val" / "cnn"
    for key in ("ref", "p0", "p1"):
        want = np.asarray(Image.open(base / key / "000001.png").convert("RGB"))
        np.testing.assert_array_equal(rec[key], want)
        assert rec[key].dtype == np.uint8 and rec[key].shape == (64, 64, 3)
    assert rec["judge"] == np.float32(np.load(base / "judge" / "000001.npy")[0])
    assert rec["judge"].dtype == np.float32
    assert rec["path"] == os.path.join("val", "cnn", "p0", "000001.png")
    assert rec["set"] == "val/cnn"
    batch = src.load_batch([0, 5])
    np.testing.assert_array_equal(batch["p1"][1], rec["p1"])
    np.testing.assert_array_equal(batch["judge"], src.labels[[0, 5]])


def test_read_2afc_defaults_to_every_present_set(bapps):
    src = data.read_2afc(bapps / "2afc")
    assert [s.name for s in src.sets] == ["train/mix", "val/traditional", "val/cnn"]


def test_read_jnd_records(bapps):
    src = data.read_jnd(bapps / "jnd", ["val/cnn"])
    rec = src[1]
    assert set(rec) == {"p0", "p1", "same", "path", "set"}
    want = np.load(bapps / "jnd" / "val" / "cnn" / "same" / "000001.npy")[0]
    assert rec["same"] == np.float32(want)


def test_resize_shorter_side_is_bicubic_and_identity_at_size(tmp_path):
    make_2afc(tmp_path / "big", {"val/cnn": 2}, size=(80, 96), seed=1)
    src = data.read_2afc(tmp_path / "big", ["val/cnn"], load_size=64)
    raw = Image.open(tmp_path / "big" / "val" / "cnn" / "p0" / "000000.png").convert("RGB")
    want = np.asarray(raw.resize((76, 64), Image.BICUBIC))  # W = int(64 * 96 / 80) = 76
    np.testing.assert_array_equal(src[0]["p0"], want)
    assert src.image_shape("val/cnn") == (64, 76)
    same = data.read_2afc(tmp_path / "big", ["val/cnn"], load_size=80)
    np.testing.assert_array_equal(same[0]["p0"], np.asarray(raw))


def test_missing_set_and_subfolder_name_the_path(bapps, tmp_path):
    with pytest.raises(FileNotFoundError, match="val/color"):
        data.read_2afc(bapps / "2afc", ["val/color"])
    root = _copy(bapps, tmp_path)
    shutil.rmtree(root / "val" / "cnn" / "judge")
    with pytest.raises(FileNotFoundError, match=str(root / "val" / "cnn" / "judge")):
        data.read_2afc(root, ["val/cnn"])


def test_count_mismatch_names_the_set(bapps, tmp_path):
    root = _copy(bapps, tmp_path)
    os.remove(root / "val" / "cnn" / "p1" / "000002.png")
    with pytest.raises(ValueError, match=r"count mismatch in .*val/cnn.*p1/ 2"):
        data.read_2afc(root, ["val/cnn"])


def test_unpaired_file_names_are_an_error(bapps, tmp_path):
    root = _copy(bapps, tmp_path)
    d = root / "val" / "cnn" / "p1"
    os.rename(d / "000002.png", d / "000009.png")
    with pytest.raises(ValueError, match="000009.png"):
        data.read_2afc(root, ["val/cnn"])


@pytest.mark.parametrize("payload,match", [(b"not a numpy file", "cannot read judgement"),
                                           (None, "expected a value in")])
def test_bad_judge_names_the_file(bapps, tmp_path, payload, match):
    root = _copy(bapps, tmp_path)
    path = root / "val" / "cnn" / "judge" / "000001.npy"
    if payload is None:
        np.save(path, np.array([1.5], np.float32))
    else:
        path.write_bytes(payload)
    with pytest.raises(ValueError, match=match) as err:
        data.read_2afc(root, ["val/cnn"])
    assert str(path) in str(err.value)


def test_corrupt_image_fails_on_access_and_on_verify(bapps, tmp_path):
    root = _copy(bapps, tmp_path)
    bad = root / "val" / "cnn" / "ref" / "000002.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    src = data.read_2afc(root, ["val/cnn"])          # cheap checks pass
    np.testing.assert_array_equal(src[0]["ref"].shape, (64, 64, 3))
    with pytest.raises(ValueError, match=str(bad)):
        src[2]
    with pytest.raises(ValueError, match=str(bad)):
        data.read_2afc(root, ["val/cnn"], verify_images=True)


def test_wrong_size_image_names_the_path(bapps, tmp_path):
    root = _copy(bapps, tmp_path)
    bad = root / "val" / "cnn" / "p0" / "000001.png"
    Image.fromarray(np.zeros((64, 90, 3), np.uint8)).save(bad)
    src = data.read_2afc(root, ["val/cnn"])
    with pytest.raises(ValueError, match=rf"wrong-size image {bad}: 64x90"):
        src.load_batch([0, 1])


def test_missing_root_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="holding train/ and val/"):
        data.read_2afc(tmp_path / "nope")


def test_fixture_judge_rule_and_ties_are_written(tmp_path):
    def closer_is_less_blurry(ref, p0, p1, rng):
        e0 = np.abs(ref.astype(int) - p0).mean()
        e1 = np.abs(ref.astype(int) - p1).mean()
        return 1.0 if e1 < e0 else 0.0

    make_2afc(tmp_path, {"train/traditional": 6}, seed=4, judge_fn=closer_is_less_blurry, ties=2)
    src = data.read_2afc(tmp_path, ["train/traditional"])
    for i in range(6):
        r = src[i]
        assert r["judge"] == closer_is_less_blurry(r["ref"], r["p0"], r["p1"], None)
    np.testing.assert_array_equal(src[5]["p0"], src[5]["p1"])
    np.testing.assert_array_equal(src[4]["p0"], src[4]["p1"])
    assert not np.array_equal(src[3]["p0"], src[3]["p1"])
