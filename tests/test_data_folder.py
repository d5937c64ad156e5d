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


# -------------------------------------------------------------------------------------------
# Untrusted files: FIFOs, absurd .npy headers, pickles, huge images, 16-bit images, skipping.

from file_faults import make_fifo, no_hang, png_declaring  # noqa: E402
from shiftlpips_jax._src.errors import DataError, InputError, PathNotFoundError  # noqa: E402


def _write_npy_header(path, shape, descr="<f8", payload=b"\0" * 8):
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": descr, "fortran_order": False, "shape": shape})
        fh.write(payload)


def test_fifo_judge_and_image_are_refused_without_blocking(bapps, tmp_path):
    root = _copy(bapps, tmp_path)
    judge = root / "val" / "cnn" / "judge" / "000001.npy"
    os.remove(judge)
    make_fifo(judge)
    with no_hang([judge]):
        with pytest.raises(DataError, match=rf"{judge} is a FIFO"):
            data.read_2afc(root, ["val/cnn"])
    root = _copy(bapps, tmp_path / "x")
    first = root / "val" / "cnn" / "ref" / "000000.png"   # the image the set's size comes from
    os.remove(first)
    make_fifo(first)
    with no_hang([first]):
        with pytest.raises(InputError, match=rf"{first} is a FIFO"):
            data.read_2afc(root, ["val/cnn"])


def test_npy_with_absurd_declared_shape_is_refused_on_its_header(bapps, tmp_path):
    import tracemalloc
    root = _copy(bapps, tmp_path)
    judge = root / "val" / "cnn" / "judge" / "000002.npy"
    _write_npy_header(judge, (2 ** 27,))          # declares 1 GiB, holds 8 bytes
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"000002.npy declares a float64 array of shape "
                                            r"\(134217728,\)"):
            data.read_2afc(root, ["val/cnn"], num_threads=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2 ** 20, peak
    _write_npy_header(judge, (2 ** 40, 2 ** 20))
    with pytest.raises(DataError, match="declares"):
        data.read_2afc(root, ["val/cnn"])


def test_pickled_oversized_and_non_numeric_judges(bapps, tmp_path):
    root = _copy(bapps, tmp_path)
    judge = root / "val" / "cnn" / "judge" / "000000.npy"
    np.save(judge, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="declares a object array"):
        data.read_2afc(root, ["val/cnn"])
    np.save(judge, np.full(20000, 0.5))
    with pytest.raises(DataError, match="is over 65536 bytes"):
        data.read_2afc(root, ["val/cnn"])
    np.save(judge, np.array([0.5 + 0.5j]))
    with pytest.raises(DataError, match="complex128"):
        data.read_2afc(root, ["val/cnn"])
    _write_npy_header(judge, (1,), payload=b"\0")   # truncated data
    with pytest.raises(DataError, match="truncated"):
        data.read_2afc(root, ["val/cnn"])


def test_huge_and_bomb_images_in_a_set(bapps, tmp_path):
    root = _copy(bapps, tmp_path)
    big = root / "val" / "cnn" / "p1" / "000001.png"
    png_declaring(big, 9000, 9000)
    src = data.read_2afc(root, ["val/cnn"])
    with pytest.raises(InputError, match=rf"{big} is 9000x9000 = 81,000,000 pixels, over"):
        src[1]
    bomb = root / "val" / "cnn" / "ref" / "000000.png"
    png_declaring(bomb, 14000, 14000)
    with pytest.raises(InputError, match="decompression-bomb"):
        data.read_2afc(root, ["val/cnn"])


def test_16bit_images_in_a_set_read_as_their_8bit_values(bapps, tmp_path):
    root = _copy(bapps, tmp_path)
    path = root / "val" / "cnn" / "p0" / "000001.png"
    grey = np.asarray(Image.open(path).convert("L"))
    Image.fromarray(grey.astype(np.uint16) * 257).save(path)
    assert Image.open(path).mode == "I;16"
    np.testing.assert_array_equal(data.read_2afc(root, ["val/cnn"])[1]["p0"],
                                  np.repeat(grey[..., None], 3, -1))


def test_skip_errors_leaves_out_bad_records_and_lists_them(bapps, tmp_path):
    root = _copy(bapps, tmp_path)
    base = root / "val" / "traditional"
    (base / "p1" / "000001.png").write_bytes(b"broken")
    np.save(base / "judge" / "000002.npy", np.array([7.0], np.float32))
    fifo = base / "ref" / "000003.png"
    os.remove(fifo)
    make_fifo(fifo)
    with no_hang([fifo]):
        src = data.read_2afc(root, ["val/traditional", "val/cnn"], skip_errors=True)
    assert [p for p, _ in src.skipped] == [str(base / "p1" / "000001.png"),      # record order
                                           str(base / "judge" / "000002.npy"), str(fifo)]
    reasons = dict(src.skipped)
    assert "expected a value in [0, 1]" in reasons[str(base / "judge" / "000002.npy")]
    assert "FIFO" in reasons[str(fifo)]
    assert [(s.name, s.start, s.stop) for s in src.sets] == [("val/traditional", 0, 1),
                                                             ("val/cnn", 1, 4)]
    full = data.read_2afc(bapps / "2afc", ["val/traditional", "val/cnn"])
    for got, want in ((0, 0), (1, 4), (3, 6)):
        for key in ("ref", "p0", "p1"):
            np.testing.assert_array_equal(src[got][key], full[want][key])
        assert src[got]["judge"] == full[want]["judge"] and src[got]["path"] == full[want]["path"]
    # Without the option the first problem is an error, as before.
    with no_hang([fifo]):
        with pytest.raises(DataError, match="000002.npy holds 7.0"):
            data.read_2afc(root, ["val/traditional"])
    # A set with no readable record at all is an error even when skipping.
    with pytest.raises(DataError, match="could be read"):
        data.read_2afc(root, ["val/cnn"], skip_errors=True, max_pixels=100)


def test_error_classes_are_library_errors_with_builtin_bases(bapps, tmp_path):
    with pytest.raises(PathNotFoundError):
        data.read_2afc(bapps / "2afc", ["val/color"])
    root = _copy(bapps, tmp_path)
    os.remove(root / "val" / "cnn" / "p1" / "000002.png")
    with pytest.raises(DataError, match="count mismatch"):
        data.read_2afc(root, ["val/cnn"])
    with pytest.raises(InputError, match="load_size must be a positive int"):
        data.read_2afc(bapps / "2afc", ["val/cnn"], load_size=0)
