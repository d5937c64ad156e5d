"""shiftlpips compare / pairs / example: the numbers equal the Python API; errors are clear."""

import csv
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from shiftlpips_jax import cli
from shiftlpips_jax._src.images import example_path
from conftest import REPO
from shared_helpers import example_folders


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.fast
def test_compare_two_files(capsys, alex, example):
    code, out, _ = _run(capsys, "compare", example_path("ex_ref"), example_path("ex_p0"))
    assert code == 0
    assert abs(float(out) - float(alex(example[0], example[1]))) < 1e-6


def test_compare_other_model_and_heat_map(capsys, tmp_path, metrics, example):
    heat = tmp_path / "sub" / "map.png"
    code, out, _ = _run(capsys, "compare", example_path("ex_ref"), example_path("ex_p1"),
                        "--net", "vgg", "--variant", "lpips", "--spatial-map", str(heat))
    assert code == 0
    assert abs(float(out) - float(metrics[("vgg", "lpips")](example[0], example[2]))) < 1e-6
    img = np.asarray(Image.open(heat).convert("RGB"))     # a figure: map and colour bar
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 100


def _folders(tmp_path, example):
    """The shared example folders, with b's ex_p1.png renamed so that each folder holds one
    name the other lacks."""
    a, b = example_folders(tmp_path)
    os.replace(b / "ex_p1.png", b / "only_in_b.png")
    return a, b


def test_compare_folders_writes_csv(capsys, tmp_path, alex, example):
    a, b = _folders(tmp_path, example)
    out_csv = tmp_path / "out.csv"
    code, _, err = _run(capsys, "compare", str(a), str(b), "--out", str(out_csv))
    assert code == 0
    assert "ex_p1.png has no same-named image" in err and "only_in_b.png" in err
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert [r["name"] for r in rows] == ["ex_p0.png", "ex_ref.png"]
    want = alex(np.stack([example[1], example[0]]), np.stack([example[2], example[1]]))
    np.testing.assert_allclose([float(r["distance"]) for r in rows], want, rtol=1e-6)
    maps = tmp_path / "maps"
    code, out, _ = _run(capsys, "compare", str(a), str(b), "--spatial-map", str(maps))
    assert code == 0 and out.startswith("name,distance")
    assert sorted(os.listdir(maps)) == ["ex_p0.png", "ex_ref.png"]


def test_pairs(capsys, tmp_path, alex, example):
    a, _ = _folders(tmp_path, example)
    code, out, _ = _run(capsys, "pairs", str(a))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["a"], r["b"]) for r in rows] == [("ex_p0.png", "ex_p1.png"),
                                                ("ex_p0.png", "ex_ref.png"),
                                                ("ex_p1.png", "ex_ref.png")]
    np.testing.assert_allclose(float(rows[1]["distance"]), alex(example[1], example[0]), rtol=1e-6)


def test_size_mismatch_error_and_resize(capsys, tmp_path, alex, example):
    big = tmp_path / "big.png"
    Image.fromarray(example[1]).resize((80, 72), Image.BICUBIC).save(big)
    code, _, err = _run(capsys, "compare", example_path("ex_ref"), str(big))
    assert code == 2
    assert "images differ in size" in err and "64x64" in err and "72x80" in err and "--resize" in err
    code, out, _ = _run(capsys, "compare", example_path("ex_ref"), str(big), "--resize")
    assert code == 0
    resized = np.asarray(Image.open(big).resize((64, 64), Image.BICUBIC))
    assert abs(float(out) - float(alex(example[0], resized))) < 1e-6


def test_bad_files_and_mixed_arguments(capsys, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    code, _, err = _run(capsys, "compare", example_path("ex_ref"), str(junk))
    assert code == 2 and "cannot read image" in err and "junk.png" in err
    code, _, err = _run(capsys, "compare", example_path("ex_ref"), str(tmp_path))
    assert code == 2 and "two image files or two directories" in err
    code, _, err = _run(capsys, "compare", example_path("ex_ref"), example_path("ex_p0"),
                        "--variant", "antialiased")
    assert code == 2 and "unknown variant 'antialiased'" in err


@pytest.mark.fast
def test_example_prints_all_models(capsys):
    code, out, _ = _run(capsys, "example")
    assert code == 0
    for label, d0, d1 in [("ST-LPIPS alex", 0.7777555585, 0.1320216507),
                          ("ST-LPIPS vgg", 0.6516970396, 0.1361120045),
                          ("LPIPS v0.1 alex", 0.7218806744, 0.1375655383),
                          ("LPIPS v0.1 vgg", 0.5686128139, 0.4216642678)]:
        line = next(row for row in out.splitlines() if row.startswith(label))
        got = [float(v) for v in line[len(label):].split()]
        np.testing.assert_allclose(got, [d0, d1], atol=1e-6, err_msg=line)


@pytest.mark.fast
def test_module_entry_point_and_every_subcommand_help(capsys):
    res = subprocess.run([sys.executable, "-m", "shiftlpips_jax.cli", "--help"],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0 and res.stdout.startswith("usage: shiftlpips"), res.stderr[-2000:]
    for command in ("compare", "pairs", "example", "eval", "shift-study", "bench"):
        assert command in res.stdout
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: shiftlpips {command}")
    # The documented bench flags are all there.
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    text = capsys.readouterr().out
    for flag in ("--against-pytorch", "--bf16", "--json", "--models", "--workloads"):
        assert flag in text, flag
