"""Figures through the command line: the format by extension, real content, one colour scale
for a run's maps, and bad figure options refused before any work."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from PIL import Image

import shiftlpips_jax as sl
from bapps_fixture import make_2afc
from conftest import REPO
from shiftlpips_jax import cli
from shiftlpips_jax._src import compare, plots
from shiftlpips_jax._src.evaluation import runner, shift_study

MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-", ".svg": b"<?xml"}
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73")


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _check_file(path, ext):
    data = path.read_bytes()
    assert data.startswith(MAGIC[ext]), data[:12]
    if ext == ".svg":
        assert data.rstrip().endswith(b"</svg>")
    if ext == ".pdf":
        assert data.rstrip().endswith(b"%%EOF") and len(data) > 5000
    return data


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _colours(rgb: np.ndarray) -> int:
    return len(np.unique(rgb.reshape(-1, 3), axis=0))


def _pixels_of(rgb: np.ndarray, hexcol: str) -> int:
    c = np.array([int(hexcol[i:i + 2], 16) for i in (1, 3, 5)])
    return int(np.sum(np.all(rgb == c, axis=-1)))


def _one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ----------------------------------------------------------------------------- shift study
@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Three of the bundled photos in a folder of their own (for --images DIR)."""
    d = tmp_path_factory.mktemp("photos")
    for p in shift_study.bundled_images()[:3]:
        shutil.copy(p, d / os.path.basename(p))
    return d


@pytest.mark.parametrize("ext", plots.FORMATS)
def test_shift_study_writes_the_figure_named_by_the_extension(tmp_path, photo_dir, capsys, ext):
    out, table = tmp_path / f"study{ext}", tmp_path / "study.csv"
    # ST-LPIPS too in one format (each run compiles its models: L2 alone is quick).
    models = ["l2", "st-alex"] if ext == ".svg" else ["l2"]
    code, stdout, err = _run(capsys, "shift-study", "--images", photo_dir, "--models", *models,
                             "--load-size", "48", "--out", out, "--csv", table)
    assert code == 0, err
    data = _check_file(out, ext)
    assert f"wrote {out}" in stdout and len(table.read_text().splitlines()) == 11
    assert sorted(os.listdir(tmp_path)) == sorted([out.name, table.name])   # no temp files
    if ext == ".png":
        rgb = _rgb(data)
        assert rgb.shape == (506, 1210, 3) and _colours(rgb) > 500
        assert _pixels_of(rgb, OKABE_ITO[0]) > 200            # the metric's line is drawn
        assert _pixels_of(rgb, "#000000") > 200               # people's curve and text
    if ext == ".svg":
        text = data.decode()
        for label in ("ST-LPIPS alex", "L2 (RGB)", "Raw distance", "Normalised, beside people",
                      "people: said", "mean over 3 images", "95% CI of the mean",
                      "right shift (pixels)", "distance to the unshifted crop"):
            assert label in text, label
        # One band over the three images per metric; none with --band none.
        assert text.count('id="FillBetweenPolyCollection_') == 2
        plain = tmp_path / "plain.svg"
        code, _, _ = _run(capsys, "shift-study", "--images", photo_dir, "--models", "l2",
                          "--load-size", "48", "--out", plain, "--band", "none")
        assert code == 0
        assert "FillBetweenPolyCollection" not in plain.read_text()
        assert "95% CI" not in plain.read_text() and "mean over 3 images" in plain.read_text()
        os.unlink(plain)


def test_shift_study_default_is_the_bundled_set(tmp_path, capsys):
    out = tmp_path / "s.svg"
    code, _, err = _run(capsys, "shift-study", "--models", "l2", "--load-size", "40",
                        "--out", out, "--band", "std")
    assert code == 0, err
    text = out.read_text()
    assert "mean over 4 images" in text and "±1 std over the images" in text
    assert len(shift_study.bundled_images()) == 4
    assert all(os.path.isfile(p) for p in shift_study.bundled_images())


def test_shift_study_refuses_a_bad_extension_before_any_work(tmp_path, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the study ran")

    monkeypatch.setattr(shift_study, "shift_distances", no_work)
    for name in ("study.jpg", "study", "study.PNG.gif"):
        code, _, err = _run(capsys, "shift-study", "--models", "l2", "--out", tmp_path / name,
                            "--csv", tmp_path / "s.csv")
        assert code == 2
        _one_line_error(err, "must be one of .png, .svg, .pdf")
    # The extension is checked first: even before a missing image is noticed.
    code, _, err = _run(capsys, "shift-study", tmp_path / "missing.png", "--out",
                        tmp_path / "x.gif")
    assert code == 2 and "figure format" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(capsys, "shift-study", "--images", empty, "--out", tmp_path / "x.png")
    assert code == 2
    _one_line_error(err, "holds no images")
    assert sorted(os.listdir(tmp_path)) == ["empty"]


def test_missing_matplotlib_names_the_extra(tmp_path):
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as fh:
        project = tomllib.load(fh)["project"]
    assert any(d.startswith("matplotlib") for d in project["optional-dependencies"]["plot"])
    install = f"pip install '{project['name']}[plot]'"
    out = tmp_path / "s.png"
    code = ("import sys\n"
            "sys.modules['matplotlib'] = None\n"
            "from shiftlpips_jax import cli\n"
            f"print('RC', cli.main(['shift-study', '--models', 'l2', '--out', {str(out)!r}, "
            f"'--csv', {str(tmp_path / 's.csv')!r}]))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=REPO, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert "RC 2" in res.stdout, res.stderr
    _one_line_error(res.stderr, "needs matplotlib", install)
    assert os.listdir(tmp_path) == []
    assert issubclass(sl.errors.PlotDependencyError, sl.ShiftLPIPSError)
    assert issubclass(sl.errors.PlotDependencyError, ImportError)


# ------------------------------------------------------------------------------ eval --plot
@pytest.fixture(scope="module")
def eval_runs(tmp_path_factory):
    """A BAPPS-layout fixture and two real ``eval --json`` results of other metrics."""
    base = tmp_path_factory.mktemp("eval")
    make_2afc(base / "2afc", {"val/traditional": 5, "val/cnn": 4}, seed=41)
    runs = {"root": base / "2afc"}
    for name, args in (("lab", ["--net", "l2", "--colorspace", "Lab"]),
                       ("ssim", ["--net", "ssim", "--colorspace", "RGB"])):
        runs[name] = base / f"{name}.json"
        assert cli.main(["eval", str(runs["root"]), *args, "--json", str(runs[name]),
                         "--no-progress"]) == 0
    return runs


@pytest.mark.parametrize("ext", plots.FORMATS)
def test_eval_plot_draws_this_run_beside_the_others(eval_runs, tmp_path, capsys, ext):
    out, js = tmp_path / f"eval{ext}", tmp_path / "this.json"
    code, stdout, err = _run(capsys, "eval", eval_runs["root"], "--net", "l2", "--colorspace",
                             "RGB", "--json", js, "--plot", out, "--plot-with",
                             eval_runs["lab"], eval_runs["ssim"], "--no-progress")
    assert code == 0, err
    data = _check_file(out, ext)
    assert f"wrote {out}" in stdout and json.loads(js.read_text())["model"] == "l2/RGB"
    results = [json.loads(p.read_text()) for p in (js, eval_runs["lab"], eval_runs["ssim"])]
    if ext == ".png":
        rgb = _rgb(data)
        assert rgb.shape[0] == 506 and _colours(rgb) > 200
        for hexcol in OKABE_ITO:                              # one colour per metric
            assert _pixels_of(rgb, hexcol) > 100, hexcol
    if ext == ".svg":
        text = data.decode()
        # Legend names: each JSON's net/variant.
        for label in ("l2/RGB", "l2/Lab", "ssim/RGB", "traditional", "cnn", "mean",
                      "2AFC agreement with people (%)", "Rank flips under shift"):
            assert label in text, label
        for r in results:                                     # the bars carry the numbers
            assert f"{r['2afc']['mean']:.1f}" in text


def test_eval_plot_options_are_checked_before_the_run(eval_runs, tmp_path, capsys,
                                                      monkeypatch):
    def no_run(*args, **kwargs):
        raise AssertionError("the evaluation ran")

    monkeypatch.setattr(runner, "evaluate_2afc", no_run)
    monkeypatch.setattr(runner, "evaluate_jnd", no_run)
    jnd = tmp_path / "jnd.json"
    jnd.write_text(json.dumps({"jnd_map": {"val/cnn": 0.5, "mean": 0.5}, "model": "l2/Lab"}))
    link = tmp_path / "lab.png"
    os.symlink(eval_runs["lab"], link)
    js = tmp_path / "out.json"
    root = eval_runs["root"]
    cases = [
        (["--plot", tmp_path / "p.gif"], "must be one of .png, .svg, .pdf"),
        (["--plot-with", eval_runs["lab"]], "--plot-with needs --plot"),
        (["--plot", tmp_path / "p.png", "--plot-with", jnd], "is a JND result"),
        (["--plot", tmp_path / "p.png", "--plot-with", tmp_path / "nope.json"],
         "does not exist"),
        (["--mode", "jnd", "--plot", tmp_path / "p.png"], "needs --mode 2afc"),
        (["--plot", link, "--plot-with", eval_runs["lab"]], "is the input file"),
        (["--plot", tmp_path / "p.svg", "--json", tmp_path / "p.svg"], "would both be written"),
    ]
    for extra, needle in cases:
        code, _, err = _run(capsys, "eval", root, "--net", "l2", "--json", js, "--no-progress",
                            *extra)
        assert code == 2, (extra, err)
        _one_line_error(err, needle)
    assert sorted(os.listdir(tmp_path)) == ["jnd.json", "lab.png"]


# ---------------------------------------------------------------------------- spatial maps
@pytest.fixture(scope="module")
def map_folders(tmp_path_factory):
    """a/ and b/: x.png barely changed (weak noise), y.png heavily changed (strong noise)."""
    base = tmp_path_factory.mktemp("maps")
    a, b = base / "a", base / "b"
    a.mkdir()
    b.mkdir()
    rng = np.random.default_rng(5)
    photo = np.asarray(Image.open(shift_study.default_image()).convert("RGB"))
    for name, (crop, sigma) in {"x.png": ((0, 0), 3.0), "y.png": ((96, 80), 40.0)}.items():
        img = photo[crop[0]:crop[0] + 64, crop[1]:crop[1] + 80]
        noisy = np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(a / name)
        Image.fromarray(noisy).save(b / name)
    return a, b


def _spatial(a, b, name):
    metric = sl.load("alex")
    x = np.asarray(Image.open(a / name).convert("RGB"))
    y = np.asarray(Image.open(b / name).convert("RGB"))
    return np.asarray(metric(x, y, spatial=True))[..., 0]


def test_maps_of_a_folder_run_share_one_colour_scale(map_folders, tmp_path, capsys):
    a, b = map_folders
    maps = tmp_path / "maps"
    code, _, err = _run(capsys, "compare", a, b, "--spatial-map", maps, "--map-format", "svg",
                        "--out", tmp_path / "d.csv")
    assert code == 0, err
    assert sorted(os.listdir(maps)) == ["x.svg", "y.svg"]
    mx, my = _spatial(a, b, "x.png"), _spatial(a, b, "y.png")
    own_x, own_y = plots.shared_vmax(mx), plots.shared_vmax(my)
    assert own_y > 3 * own_x                    # very different maxima ...
    vmax = plots.shared_vmax([mx, my])
    for name in ("x", "y"):                     # ... one scale for both: the run's
        text = (maps / f"{name}.svg").read_text()
        assert f"fixed scale, 0 to {vmax:.3g}" in text, name
        assert f"{name}.png" in text            # the pair's title
    assert f"0 to {own_x:.3g})" not in (maps / "x.svg").read_text()
    # A fixed --map-vmax is used as given (maps compare across runs too).
    fixed = tmp_path / "fixed"
    code, _, _ = _run(capsys, "compare", a, b, "--spatial-map", fixed, "--map-format", "svg",
                      "--map-vmax", "0.5", "--out", tmp_path / "d2.csv")
    assert code == 0
    for name in ("x", "y"):
        assert "fixed scale, 0 to 0.5)" in (fixed / f"{name}.svg").read_text()


def test_folder_maps_png_with_colour_bar_and_overlay(map_folders, tmp_path, capsys):
    a, b = map_folders
    plain, over = tmp_path / "plain", tmp_path / "over"
    for folder, extra in ((plain, []), (over, ["--map-overlay"])):
        code, _, err = _run(capsys, "compare", a, b, "--spatial-map", folder, "--out",
                            tmp_path / f"{folder.name}.csv", *extra)
        assert code == 0, err
        assert sorted(os.listdir(folder)) == ["x.png", "y.png"]
    p = _rgb(_check_file(plain / "y.png", ".png"))
    o = _rgb(_check_file(over / "y.png", ".png"))
    assert p.shape == o.shape and _colours(p) > 200           # map and colour-bar gradient
    # Over the image: the photo shows through, so the map region changes and gets more
    # distinct colours; the colour bar (right of the map) stays the same.
    assert np.any(p != o) and _colours(o) > _colours(p)
    assert np.array_equal(p[:, -116:-102], o[:, -116:-102])


@pytest.mark.parametrize("ext", plots.FORMATS)
def test_two_file_map_by_extension(map_folders, tmp_path, capsys, ext):
    a, b = map_folders
    out = tmp_path / f"m{ext}"
    code, stdout, err = _run(capsys, "compare", a / "y.png", b / "y.png", "--spatial-map", out,
                             "--map-overlay")
    assert code == 0, err
    data = _check_file(out, ext)
    if ext == ".svg":
        text = data.decode()
        vmax = plots.shared_vmax(_spatial(a, b, "y.png"))
        assert "y.png vs y.png" in text and f"fixed scale, 0 to {vmax:.3g}" in text


def test_map_options_are_checked_before_the_model_loads(map_folders, tmp_path, capsys,
                                                        monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(compare, "_metric", no_model)
    a, b = map_folders
    cases = [
        ([a / "x.png", b / "x.png", "--spatial-map", tmp_path / "m.gif"], "must be one of"),
        ([a / "x.png", b / "x.png", "--map-overlay"], "--map-overlay needs --spatial-map"),
        ([a, b, "--map-vmax", "1"], "--map-vmax needs --spatial-map"),
        ([a, b, "--spatial-map", tmp_path / "m", "--map-vmax", "0"], "must be a positive"),
        ([a / "x.png", b / "x.png", "--spatial-map", tmp_path / "m.png", "--map-format",
          "svg"], "--map-format is for folder inputs"),
    ]
    for argv, needle in cases:
        code, _, err = _run(capsys, "compare", *argv)
        assert code == 2, (argv, err)
        _one_line_error(err, needle)
    assert os.listdir(tmp_path) == []
