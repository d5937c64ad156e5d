"""TFDS builders: exact round trip of images, judges and order; failed builds leave nothing."""

import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from bapps_fixture import make_2afc, make_jnd
from shiftlpips_jax import data
from shiftlpips_jax._src.data import tfds as tfds_lib


@pytest.fixture(scope="module")
def manual(tmp_path_factory):
    root = tmp_path_factory.mktemp("bapps_dataset")
    make_2afc(root / "2afc", {"val/traditional": 3, "val/cnn": 4}, size=(70, 72), seed=5)
    make_jnd(root / "jnd", {"val/cnn": 3}, seed=6)
    return root


@pytest.fixture(scope="module")
def built(manual, tmp_path_factory):
    out = tmp_path_factory.mktemp("tfds")
    return data.build_2afc_tfds(manual, out, load_size=64), out


def test_2afc_round_trip_is_exact(manual, built):
    builder, _ = built
    folder = data.read_2afc(manual / "2afc", None, load_size=64)
    splits = builder.as_data_source()
    assert set(splits) == {"val_traditional", "val_cnn"}
    for span in folder.sets:
        split = splits[data.split_name(span.name)]
        assert len(split) == len(span)
        for k, i in enumerate(span.indices):
            want, got = folder[i], split[k]
            for key in ("ref", "p0", "p1"):
                assert got[key].dtype == np.uint8 and got[key].shape == (64, 65, 3)
                np.testing.assert_array_equal(got[key], want[key])
            assert np.float32(got["judge"]) == want["judge"]
            assert got["path"].decode() == want["path"]


def test_prepared_dataset_reopens_without_the_manual_dir(manual, built):
    _, out = built
    again = data.bapps_2afc_builder(out, load_size=64)
    assert again.info.splits["val_cnn"].num_examples == 4
    src = again.as_data_source()["val_cnn"]
    np.testing.assert_array_equal(src[3]["p1"], data.read_2afc(manual / "2afc",
                                                               ["val/cnn"])[3]["p1"])


def test_download_config_manual_dir_works_directly(manual, tmp_path):
    builder = data.Bapps2afc(data_dir=str(tmp_path), config=tfds_lib._config(64, ["val/cnn"]),
                             file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual / "2afc")))
    assert list(builder.as_data_source()) == ["val_cnn"]
    assert "manual" in data.Bapps2afc.MANUAL_DOWNLOAD_INSTRUCTIONS


def test_jnd_round_trip(manual, tmp_path):
    builder = data.build_jnd_tfds(manual, tmp_path)
    folder = data.read_jnd(manual / "jnd")
    split = builder.as_data_source()["val_cnn"]
    for i in range(len(folder)):
        np.testing.assert_array_equal(split[i]["p0"], folder[i]["p0"])
        assert np.float32(split[i]["same"]) == folder[i]["same"]


def test_failed_build_names_the_path_and_leaves_nothing(manual, tmp_path):
    bad_root = tmp_path / "dataset"
    shutil.copytree(manual / "2afc", bad_root / "2afc")
    bad = bad_root / "2afc" / "val" / "cnn" / "p1" / "000003.png"
    bad.write_bytes(b"definitely not a png")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=str(bad)):
        data.build_2afc_tfds(bad_root, out)
    assert not out.exists()
    # Into an existing data_dir holding another dataset: that one is untouched, nothing added.
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match=str(bad)):
        data.build_2afc_tfds(bad_root, out)
    leftovers = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
    assert leftovers == [str(out / "keep.txt")]
