"""The command line on untrusted inputs and outputs: no output replaces an input or another
output, output locations are checked before any work, FIFOs / huge images / bombs are clear
errors, 16-bit and transparent images are read as stated, --skip-errors, and only the library's
own errors become one-line exit-2 messages."""

import csv
import hashlib
import io
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from file_faults import make_fifo, no_hang, photo, png_declaring, save
from shared_helpers import example_folders
from shiftlpips_jax import cli
from shiftlpips_jax._src import compare as compare_cli, images, outputs
from shiftlpips_jax._src.errors import InputError
from shiftlpips_jax._src.images import example_path
from shiftlpips_jax._src.evaluation import shift_study


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _digests(*folders) -> dict:
    return {os.path.join(d, n): hashlib.sha256(open(os.path.join(d, n), "rb").read()).hexdigest()
            for d in folders for n in sorted(os.listdir(d))
            if os.path.isfile(os.path.join(d, n))}


@pytest.fixture
def folders(tmp_path):
    return example_folders(tmp_path)


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if a model is loaded (the refusal must come before any work)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the outputs were checked")
    monkeypatch.setattr(compare_cli, "load", refuse)
    monkeypatch.setattr(shift_study, "_dist", refuse)


# -------------------------------------------------------------------------------------------
# Outputs never replace inputs or each other.

@pytest.mark.parametrize("how", ["same path", "dotdot", "symlink", "hard link"])
def test_csv_onto_an_input_image_is_refused(capsys, tmp_path, folders, no_model, how):
    a, b = folders
    victim = a / "ex_ref.png"
    out = {"same path": victim, "dotdot": a / ".." / "a" / "ex_ref.png",
           "symlink": tmp_path / "link.csv", "hard link": tmp_path / "hard.csv"}[how]
    if how == "symlink":
        os.symlink(victim, out)
    elif how == "hard link":
        os.link(victim, out)
    before = _digests(a, b)
    code, _, err = _run(capsys, "compare", a, b, "--out", out)
    assert code == 2
    assert "is the input file" in err and "ex_ref.png" in err
    assert _digests(a, b) == before


@pytest.mark.parametrize("target", ["a", "b", "link to a"])
def test_heat_maps_into_an_input_folder_are_refused(capsys, tmp_path, folders, no_model, target):
    a, b = folders
    maps = {"a": a, "b": b, "link to a": tmp_path / "maps"}[target]
    if target == "link to a":
        os.symlink(a, maps)
    before = _digests(a, b)
    code, _, err = _run(capsys, "compare", a, b, "--spatial-map", maps)
    assert code == 2 and "is the input folder" in err
    assert _digests(a, b) == before


def test_heat_maps_of_same_stem_images_would_collide(capsys, tmp_path, no_model):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for d, seed in ((a, 0), (b, 1)):
        save(d / "x.png", photo(seed))
        save(d / "x.jpg", photo(seed), quality=95)
    code, _, err = _run(capsys, "compare", a, b, "--spatial-map", tmp_path / "maps")
    assert code == 2
    assert "x.jpg and x.png would both write the heat map" in err and "x.png" in err
    assert not (tmp_path / "maps").exists()


def test_two_file_heat_map_onto_an_input_is_refused(capsys, folders, no_model):
    a, _ = folders
    before = _digests(a)
    code, _, err = _run(capsys, "compare", a / "ex_ref.png", a / "ex_p0.png",
                        "--spatial-map", a / "ex_p0.png")
    assert code == 2 and "--spatial-map" in err and "is the input file" in err
    assert _digests(a) == before


def test_csv_and_heat_map_colliding_is_refused(capsys, tmp_path, folders, no_model):
    a, b = folders
    maps = tmp_path / "maps"
    code, _, err = _run(capsys, "compare", a, b, "--spatial-map", maps,
                        "--out", maps / "ex_p0.png")
    assert code == 2 and "would both be written to" in err and "--out" in err
    assert not maps.exists()


def test_shift_study_outputs_onto_inputs_or_each_other(capsys, tmp_path, no_model):
    img = save(tmp_path / "cat.png", photo(5, (64, 80)))
    before = _digests(tmp_path)
    code, _, err = _run(capsys, "shift-study", img, "--models", "l2", "--out", img)
    assert code == 2 and "is the input file" in err
    code, _, err = _run(capsys, "shift-study", img, "--models", "l2", "--out",
                        tmp_path / "s.png", "--csv", tmp_path / "s.png")
    assert code == 2 and "--out and --csv would both be written" in err
    assert _digests(tmp_path) == before


def test_check_outputs_api():
    with pytest.raises(InputError, match="would both be written"):
        outputs.check_outputs([("x", "/tmp/a/../same.json"), ("y", "/tmp/same.json")])
    outputs.check_outputs([("x", None)])   # no output, nothing to check


# -------------------------------------------------------------------------------------------
# Output locations are checked before the work starts.

def test_unwritable_outputs_are_refused_up_front(capsys, tmp_path, folders, no_model):
    a, b = folders
    plain = tmp_path / "plain.txt"
    plain.write_text("a regular file, not a folder\n")
    code, _, err = _run(capsys, "compare", a, b, "--out", plain / "out.csv")
    assert code == 2 and "plain.txt is not a directory" in err
    code, _, err = _run(capsys, "pairs", a, "--out", tmp_path)
    assert code == 2 and "is a directory; expected a file path" in err
    fifo = make_fifo(tmp_path / "fifo.csv")
    with no_hang([fifo]):
        code, _, err = _run(capsys, "compare", a, b, "--out", fifo)
    assert code == 2 and "not a regular file" in err
    code, _, err = _run(capsys, "compare", a / "ex_ref.png", a / "ex_p0.png",
                        "--spatial-map", plain / "maps" / "m.png")
    assert code == 2 and "not a directory" in err
    assert plain.read_text() == "a regular file, not a folder\n"


@pytest.fixture
def tmpfs(tmp_path):
    """Mounts a real 64 KiB tmpfs (needs root and mount rights, as in this project's sandbox and
    CI container); yields (mount point, remount(options))."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()}); the end-of-run write "
                    "failure is still tested by test_eval_cli's RLIMIT_FSIZE test")

    def remount(opts):
        subprocess.run(["mount", "-o", f"remount,{opts}", str(mnt)], check=True)
    try:
        yield mnt, remount
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_full_and_read_only_file_systems_are_refused_up_front(capsys, folders, no_model, tmpfs):
    a, b = folders
    mnt, remount = tmpfs
    fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError, match="No space left"):
        while True:
            os.write(fd, b"\0" * 4096)
    os.close(fd)
    code, _, err = _run(capsys, "compare", a, b, "--out", mnt / "out.csv")
    assert code == 2 and "is full" in err and "out.csv" in err
    os.remove(mnt / "filler")
    remount("ro")
    code, _, err = _run(capsys, "compare", a, b, "--out", mnt / "sub" / "out.csv")
    assert code == 2 and "not writable" in err and "Read-only file system" in err
    assert os.listdir(mnt) == []


# -------------------------------------------------------------------------------------------
# Hostile image files.

def test_fifo_huge_image_and_bomb_are_clear_errors(capsys, tmp_path, no_model):
    ref = save(tmp_path / "ref.png", photo(6))
    fifo = make_fifo(tmp_path / "pipe.png")
    big = tmp_path / "big.png"
    png_declaring(big, 9000, 9000)
    bomb = tmp_path / "bomb.png"
    png_declaring(bomb, 14000, 14000)
    for other, words in ((fifo, "FIFO"), (big, "over the limit of 16,777,216"),
                         (bomb, "decompression-bomb")):
        with no_hang([fifo]):
            code, _, err = _run(capsys, "shift-study", ref, other, "--models", "l2",
                                "--out", tmp_path / "s.png")
        assert code == 2, err
        assert words in err and os.path.basename(other) in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.png").exists()


def test_max_pixels_option(capsys, tmp_path, alex):
    a = tmp_path / "a.png"
    b = tmp_path / "b.png"
    png_declaring(a, 160, 160)
    save(b, photo(7, (160, 160)))
    code, _, err = _run(capsys, "compare", a, b, "--max-pixels", "25000")
    assert code == 2 and "160x160 = 25,600 pixels, over the limit of 25,000" in err
    code, out, _ = _run(capsys, "compare", a, b, "--max-pixels", "25600")
    assert code == 0
    want = float(alex(np.zeros((160, 160, 3), np.uint8), photo(7, (160, 160))))
    assert abs(float(out) - want) < 1e-6
    with pytest.raises(SystemExit):
        cli.main(["compare", str(a), str(b), "--max-pixels", "0"])   # argparse: exit 2


def test_16bit_png_scores_zero_against_its_8bit_version(capsys, tmp_path):
    import skimage.data
    grey = np.asarray(skimage.data.camera())[100:228, 100:260]
    save(tmp_path / "g8.png", grey)
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    code, out, _ = _run(capsys, "compare", tmp_path / "g8.png", tmp_path / "g16.png")
    assert code == 0 and float(out) == 0.0


def test_alpha_option_on_the_command_line(capsys, tmp_path, alex):
    rgb = photo(8)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:20, :20] = 0
    ref = save(tmp_path / "ref.png", rgb)
    rgba = save(tmp_path / "rgba.png", np.dstack([rgb, alpha]))
    code, out, err = _run(capsys, "compare", ref, rgba)
    assert code == 0 and float(out) == 0.0      # colours as stored, as the reference reads them
    assert "shiftlpips compare: warning:" in err and "rgba.png: 400 of 4096 pixels" in err
    code, _, err = _run(capsys, "compare", ref, rgba, "--alpha", "error")
    assert code == 2 and "not fully opaque" in err
    code, out, err = _run(capsys, "compare", ref, rgba, "--alpha", "composite-white")
    assert code == 0 and err == ""
    white = rgb.copy()
    white[:20, :20] = 255
    assert abs(float(out) - float(alex(rgb, white))) < 1e-6 and float(out) > 0.01


# -------------------------------------------------------------------------------------------
# --skip-errors.

def test_skip_errors_in_folder_compare_and_pairs(capsys, tmp_path, folders, alex, example):
    a, b = folders
    for d in (a, b):
        make_fifo(d / "fifo.png")
        (d / "junk.png").write_bytes(b"not an image")
    with no_hang([a / "fifo.png", b / "fifo.png"]):
        code, _, err = _run(capsys, "compare", a, b)
    assert code == 2 and "fifo.png" in err and "FIFO" in err
    with no_hang([a / "fifo.png", b / "fifo.png"]):
        code, out, err = _run(capsys, "compare", a, b, "--skip-errors")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == ["ex_p0.png", "ex_p1.png", "ex_ref.png"]
    want = alex(np.stack([example[1], example[2], example[0]]),
                np.stack([example[2], example[0], example[1]]))
    np.testing.assert_allclose([float(r["distance"]) for r in rows], want, rtol=1e-6)
    lines = err.strip().splitlines()
    assert lines[0].startswith("skipped fifo.png: image ") and "FIFO" in lines[0]
    assert lines[1].startswith("skipped junk.png: cannot read image")
    assert lines[2] == "skipped 2 of 5 image pairs (--skip-errors)"
    with no_hang([a / "fifo.png"]):
        code, out, err = _run(capsys, "pairs", a, "--skip-errors")
    assert code == 0
    assert len(list(csv.DictReader(io.StringIO(out)))) == 3
    assert "skipped 2 of 5 images (--skip-errors)" in err


# -------------------------------------------------------------------------------------------
# Only the library's own errors become exit-2 messages.

@pytest.mark.parametrize("exc", [TypeError, RuntimeError, ValueError])
def test_bugs_keep_their_traceback(monkeypatch, folders, exc):
    a, _ = folders

    def buggy(*args, **kwargs):
        raise exc("a bug, not bad input")
    monkeypatch.setattr(compare_cli, "compare_images", buggy)
    monkeypatch.setattr(compare_cli, "load", lambda *a, **k: None)
    with pytest.raises(exc, match="a bug"):
        cli.main(["compare", str(a / "ex_ref.png"), str(a / "ex_p0.png")])


def test_user_path_errors_are_one_line(capsys, tmp_path, no_model):
    code, _, err = _run(capsys, "compare", tmp_path / "nope.png", example_path("ex_p0"))
    assert code == 2 and err.startswith("shiftlpips compare: error: not found:")
    code, _, err = _run(capsys, "pairs", tmp_path / "nodir")
    assert code == 2 and "directory not found" in err
    code, _, err = _run(capsys, "compare", example_path("ex_ref"), example_path("ex_p0"),
                        "--net", "squeeze")
    assert code == 2 and "unknown net 'squeeze'" in err


def test_images_too_small_for_the_model_are_a_clear_error(capsys, tmp_path):
    small = save(tmp_path / "s.png", photo(9, (8, 8)))
    code, _, err = _run(capsys, "compare", small, small)
    assert code == 2 and "s.png is 8x8" in err and "needs at least" in err


def test_transparency_warning_reaches_a_library_caller(tmp_path):
    rgb = photo(10)
    a = np.full(rgb.shape[:2], 255, np.uint8)
    a[0, 0] = 0
    path = save(tmp_path / "t.png", np.dstack([rgb, a]))
    with pytest.warns(images.TransparencyWarning, match="t.png: 1 of 4096"):
        images.load_rgb(path)
