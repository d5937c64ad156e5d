"""Figures: each format by extension, real content, one colour scale, clear errors, atomic."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from bapps_fixture import make_2afc, make_jnd
from shiftlpips_jax import cli
from shiftlpips_jax._src import plots
from shiftlpips_jax._src.errors import InputError, ShiftLPIPSError
from shiftlpips_jax._src.evaluation import shift_study

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-"}
LABELS = ["ST-LPIPS alex", "LPIPS vgg", "L2 (RGB)"]


def _check_magic(data: bytes, ext: str):
    if ext == ".svg":
        head = data[:200].lstrip()
        assert head.startswith(b"<?xml") or head.startswith(b"<svg"), head[:40]
        assert b"<svg" in data[:2000] and data.rstrip().endswith(b"</svg>")
    else:
        assert data.startswith(MAGIC[ext]), data[:8]
    if ext == ".pdf":
        assert data.rstrip().endswith(b"%%EOF")


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _colours(rgb: np.ndarray) -> int:
    return len(np.unique(rgb.reshape(-1, 3), axis=0))


def _svg_text(data: bytes) -> str:
    return data.decode("utf-8")


# ------------------------------------------------------------------------------ shift study
@pytest.fixture(scope="module")
def study():
    """A real shift study (L2 only: fast) on the bundled photo, plus curves shaped like the
    other metrics' for several images."""
    s = shift_study.run_shift_study(models=["l2"], out=None, stream=io.StringIO())
    rng = np.random.default_rng(0)
    base = s.raw["L2 (RGB)"][0]
    raw = {LABELS[0]: np.stack([base * 0.8 * (1 + 0.1 * rng.standard_normal(base.shape))
                                for _ in range(4)]),
           LABELS[1]: np.stack([np.sqrt(base) * (1 + 0.1 * rng.standard_normal(base.shape))
                                for _ in range(4)]),
           LABELS[2]: np.repeat(s.raw["L2 (RGB)"], 4, axis=0)}
    for v in raw.values():
        v[:, 0] = 0.0
    return s, raw


@pytest.mark.parametrize("ext", plots.FORMATS)
def test_shift_study_in_each_format(study, tmp_path, ext):
    s, raw = study
    path = tmp_path / f"study{ext}"
    plots.plot_shift_study(s.shifts, raw, str(path), human_same=s.human_same)
    data = path.read_bytes()
    _check_magic(data, ext)
    assert sorted(os.listdir(tmp_path)) == [path.name]          # no temporary files left
    if ext == ".png":
        rgb = _png(data)
        assert rgb.shape == (506, 1210, 3)                        # 11 x 4.6 in at 110 dpi
        assert _colours(rgb) > 500                                # lines, bands, text
        # Every palette colour of the three series is drawn.
        for hexcol in ("#0072B2", "#D55E00", "#009E73"):
            c = np.array([int(hexcol[i:i + 2], 16) for i in (1, 3, 5)])
            assert np.sum(np.all(rgb == c, axis=-1)) > 200, hexcol
    if ext == ".svg":
        text = _svg_text(data)
        for label in LABELS + ["people: said", "right shift (pixels)", "Raw distance",
                               "mean over 4 images", "95% CI of the mean"]:
            assert label in text, label
    if ext == ".pdf":
        assert len(data) > 5000


def test_shift_study_band_choice_and_single_image(study, tmp_path):
    s, raw = study
    ci = plots.render_shift_study(s.shifts, raw, human_same=s.human_same, format="svg")
    std = plots.render_shift_study(s.shifts, raw, human_same=s.human_same, band="std",
                                   format="svg")
    none = plots.render_shift_study(s.shifts, raw, human_same=s.human_same, band=None,
                                    format="svg")
    assert "95% CI of the mean" in _svg_text(ci) and "±1 std" in _svg_text(std)
    # The shaded bands are filled paths: more of them with a band than without.
    assert _svg_text(ci).count("<path") > _svg_text(none).count("<path") + 2
    one = plots.render_shift_study(s.shifts, s.raw, human_same=s.human_same, format="svg")
    assert "one image" in _svg_text(one) and "95% CI" not in _svg_text(one)
    # Without people's data the normalised panel spans every shift and has no people curve.
    alone = _svg_text(plots.render_shift_study(s.shifts, raw, format="svg"))
    assert "people" not in alone and "Normalised" in alone
    with pytest.raises(InputError, match="band must be"):
        plots.render_shift_study(s.shifts, raw, band="iqr")
    with pytest.raises(InputError, match=r"expected \(images, 10\)"):
        plots.render_shift_study(s.shifts, {"x": np.zeros((2, 7))})
    with pytest.raises(InputError, match="increasing"):
        plots.render_shift_study([3, 1], {"x": np.zeros(2)})
    with pytest.raises(InputError, match="human_same"):
        plots.render_shift_study(s.shifts, raw, human_same=[0.5, 0.4])


# ---------------------------------------------------------------------------------- eval plot
@pytest.fixture(scope="module")
def eval_jsons(tmp_path_factory):
    """Real ``shiftlpips eval --json`` outputs of three distances on a BAPPS-layout fixture."""
    base = tmp_path_factory.mktemp("eval")
    make_2afc(base / "2afc", {"val/traditional": 5, "val/cnn": 4, "val/superres": 3}, seed=31)
    out = {}
    for name, args in (("l2_lab", ["--net", "l2", "--colorspace", "Lab"]),
                       ("l2_rgb", ["--net", "l2", "--colorspace", "RGB"]),
                       ("ssim", ["--net", "ssim", "--colorspace", "RGB"])):
        path = base / f"{name}.json"
        assert cli.main(["eval", str(base / "2afc"), *args, "--json", str(path),
                         "--no-progress"]) == 0
        out[name] = path
    make_jnd(base / "jnd", {"val/cnn": 3}, seed=32)
    jnd = base / "jnd.json"
    assert cli.main(["eval", str(base / "jnd"), "--mode", "jnd", "--net", "l2", "--json",
                     str(jnd), "--no-progress"]) == 0
    out["jnd"] = jnd
    return out


@pytest.mark.parametrize("ext", plots.FORMATS)
def test_eval_plot_in_each_format(eval_jsons, tmp_path, ext):
    files = [eval_jsons[k] for k in ("l2_lab", "l2_rgb", "ssim")]
    path = tmp_path / f"eval{ext}"
    plots.plot_eval([str(f) for f in files], str(path))
    data = path.read_bytes()
    _check_magic(data, ext)
    if ext == ".png":
        rgb = _png(data)
        assert rgb.shape[0] == 506 and rgb.shape[1] > 900
        assert _colours(rgb) > 200
    if ext == ".svg":
        text = _svg_text(data)
        models = [json.loads(f.read_text())["model"] for f in files]
        assert len(set(models)) == 3                 # default names: each JSON's model field
        for label in models + ["traditional", "cnn", "superres", "mean", "r_rf",
                               "2AFC agreement with people (%)", "Rank flips under shift"]:
            assert label in text, label
        # The bars carry the JSON's numbers (one decimal), e.g. the mean of the first.
        mean = json.loads(files[0].read_text())["2afc"]["mean"]
        assert f"{mean:.1f}" in text


def test_eval_plot_names_panels_and_errors(eval_jsons, tmp_path):
    lab = json.loads(eval_jsons["l2_lab"].read_text())
    svg = _svg_text(plots.render_eval([lab, str(eval_jsons["ssim"])],
                                      names=["L2 Lab", "SSIM"], format="svg"))
    assert "L2 Lab" in svg and "SSIM" in svg
    # No model field: the file name; the same model twice: two entries.
    anon = dict(lab)
    anon.pop("model")
    p = tmp_path / "my_run.json"
    p.write_text(json.dumps(anon))
    svg = _svg_text(plots.render_eval([str(p), lab, lab], format="svg"))
    assert "my_run" in svg and f"{lab['model']} (2)" in svg
    # Without r_rf (eval --shifts with no values) only the 2AFC panel is drawn.
    no_rrf = {k: v for k, v in lab.items() if k not in ("r_rf", "rank_flips")}
    one = _png(plots.render_eval([no_rrf]))
    two = _png(plots.render_eval([lab]))
    assert one.shape[1] < two.shape[1]
    assert "Rank flips" not in _svg_text(plots.render_eval([no_rrf], format="svg"))
    with pytest.raises(InputError, match="JND result"):
        plots.render_eval([str(eval_jsons["jnd"])])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="cannot read eval result"):
        plots.render_eval([str(bad)])
    with pytest.raises(InputError, match="does not exist"):
        plots.render_eval([str(tmp_path / "nope.json")])
    with pytest.raises(InputError, match="no '2afc' scores"):
        plots.render_eval([{"model": "x"}])
    with pytest.raises(InputError, match="must be a number"):
        plots.render_eval([{"2afc": {"val/cnn": "high"}}])
    with pytest.raises(InputError, match="2 names for 1 results"):
        plots.render_eval([lab], names=["a", "b"])


def test_eval_plot_refuses_to_overwrite_an_input(eval_jsons, tmp_path):
    copy = tmp_path / "res.png"
    before = eval_jsons["l2_lab"].read_bytes()
    # A .json output path is refused by extension; a link named .png onto the input by
    # identity.
    os.symlink(eval_jsons["l2_lab"], copy)
    with pytest.raises(InputError, match="is the input file"):
        plots.plot_eval([str(eval_jsons["l2_lab"])], str(copy))
    assert eval_jsons["l2_lab"].read_bytes() == before


# ---------------------------------------------------------------------------------- maps
def _halves(right: float, size=(40, 60)) -> np.ndarray:
    m = np.full(size, 0.3)
    m[:, size[1] // 2:] = right
    return m


def test_maps_share_one_scale(tmp_path):
    a, b = _halves(0.1), _halves(0.9)
    pa, pb = tmp_path / "a.png", tmp_path / "b.png"
    plots.map_figure(a, str(pa), vmax=1.0)
    plots.map_figure(b, str(pb), vmax=1.0)
    ra, rb = _png(pa.read_bytes()), _png(pb.read_bytes())
    assert ra.shape == rb.shape
    import matplotlib
    want = (np.array(matplotlib.colormaps["magma"](0.3)[:3]) * 255).round()
    hit_a = np.all(np.abs(ra.astype(int) - want) <= 1, axis=-1)
    hit_b = np.all(np.abs(rb.astype(int) - want) <= 1, axis=-1)
    # The value 0.3 has the same colour, at the same pixels, in both figures ...
    assert hit_a.sum() > 5000 and np.array_equal(hit_a, hit_b)
    # ... while the halves that differ (0.1 vs 0.9) differ.
    assert np.any(ra != rb)
    # Scaled to each map's own maximum (the old behaviour) 0.3 would not match: with vmax 0.9
    # it gets another colour.
    # (Only the map's columns count: the colour bar shows every colour in a row or two.)
    in_map = hit_a.sum(axis=0) > 50
    rc = _png(plots.render_map_figure(a, vmax=0.9))
    hit_c = np.all(np.abs(rc.astype(int) - want) <= 1, axis=-1)
    assert in_map.sum() > 100 and not np.any(hit_c[:, in_map])
    # A colour bar: the full gradient of the map.
    assert _colours(ra) > 200


@pytest.mark.parametrize("ext", plots.FORMATS)
def test_map_figure_formats_overlay_and_titles(tmp_path, ext):
    rng = np.random.default_rng(1)
    maps = rng.random((2, 32, 48, 1)) * 0.5
    image = rng.integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
    path = tmp_path / f"maps{ext}"
    plots.map_figure(maps, str(path), vmax=0.4, image=image, titles=["ref vs p0", "ref vs p1"])
    data = path.read_bytes()
    _check_magic(data, ext)
    # No dates or versions inside: the same data gives the same bytes (reproducible figures).
    assert plots.render_map_figure(maps, vmax=0.4, image=image, titles=["ref vs p0", "ref vs p1"],
                                   format=ext) == data
    if ext == ".png":
        plain = _png(plots.render_map_figure(maps, vmax=0.4, titles=["ref vs p0", "ref vs p1"]))
        over = _png(data)
        assert over.shape == plain.shape and np.any(over != plain)
    if ext == ".svg":
        text = _svg_text(data)
        assert "ref vs p0" in text and "fixed scale, 0 to 0.4" in text


def test_shared_vmax_and_map_errors():
    maps = [np.linspace(0, 1, 1000).reshape(10, 100), np.zeros((5, 5))]
    v = np.concatenate([m.ravel() for m in maps])
    assert plots.shared_vmax(maps) == pytest.approx(np.percentile(v, 99))
    assert plots.shared_vmax(maps, percentile=100) == 1.0
    assert plots.shared_vmax(np.zeros((3, 4, 4))) == 1.0
    assert plots.shared_vmax(np.stack([maps[0], maps[0]]), percentile=50) == \
        pytest.approx(0.5, abs=1e-3)
    with pytest.raises(InputError, match="percentile"):
        plots.shared_vmax(maps, percentile=0)
    with pytest.raises(InputError, match="no finite values"):
        plots.shared_vmax(np.full((2, 2), np.nan))
    for bad in (0.0, -1.0, float("inf"), "x"):
        with pytest.raises(InputError, match="vmax"):
            plots.render_map_figure(maps[0], vmax=bad)
    with pytest.raises(InputError, match="expected"):
        plots.render_map_figure(np.zeros((2, 3, 4, 5)), vmax=1)
    with pytest.raises(InputError, match="uint8"):
        plots.render_map_figure(maps[0], vmax=1, image=np.zeros((10, 100, 3), np.float32))
    with pytest.raises(InputError, match="draw at most"):
        plots.render_map_figure(np.zeros((plots.MAX_MAPS + 1, 4, 4)), vmax=1)
    with pytest.raises(InputError, match="1 titles for 2 maps"):
        plots.render_map_figure(np.zeros((2, 4, 4)), vmax=1, titles=["a"])


# ------------------------------------------------------------------ errors and atomic writes
def test_unknown_extension_is_a_clear_error_and_writes_nothing(study, tmp_path):
    s, raw = study
    for name in ("study.jpg", "study"):
        with pytest.raises(InputError, match=r"must be one of \.png, \.svg, \.pdf"):
            plots.plot_shift_study(s.shifts, raw, str(tmp_path / name))
        with pytest.raises(InputError, match=r"\.png, \.svg, \.pdf"):
            plots.map_figure(np.zeros((4, 4)), str(tmp_path / name), vmax=1)
    with pytest.raises(InputError, match="unknown figure format 'gif'"):
        plots.render_eval([{"2afc": {"a": 60.0}}], format="gif")
    assert plots.figure_format("A.SVG") == ".svg"
    assert os.listdir(tmp_path) == []


def test_missing_matplotlib_is_a_clear_error(tmp_path):
    out = tmp_path / "x.png"
    code = ("import sys\n"
            "sys.modules['matplotlib'] = None\n"
            "import numpy as np\n"
            "from shiftlpips_jax._src import plots, errors\n"
            "try:\n"
            f"    plots.map_figure(np.zeros((4, 4)), {str(out)!r}, vmax=1)\n"
            "except errors.ShiftLPIPSError as err:\n"
            "    assert isinstance(err, ImportError), type(err)\n"
            "    print('ERROR', err)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=REPO, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert res.returncode == 0, res.stderr
    assert "ERROR drawing figures needs matplotlib" in res.stdout
    assert "pip install 'shiftlpips-jax[plot]'" in res.stdout
    assert not out.exists()
    assert issubclass(plots.PlotDependencyError, ShiftLPIPSError)


def test_a_failing_write_keeps_the_old_file_and_leaves_no_partial_file(study, tmp_path):
    """A real failing write: the process may not grow a file past 4000 bytes (RLIMIT_FSIZE;
    Python ignores SIGXFSZ, so write() fails with EFBIG as on a full disk)."""
    out = tmp_path / "study.png"
    out.write_bytes(b"old figure")
    code = ("import resource\n"
            "import numpy as np\n"
            "from shiftlpips_jax._src import plots, errors\n"
            "plots.render_map_figure(np.zeros((4, 4)), vmax=1)   # font cache warm\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))\n"
            "try:\n"
            f"    plots.plot_shift_study(np.arange(10), {{'a': np.arange(10.0)}}, {str(out)!r})\n"
            "except errors.InputError as err:\n"
            "    print('ERROR', err)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=REPO, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert res.returncode == 0, res.stderr
    assert f"ERROR cannot write {out}: File too large" in res.stdout
    assert out.read_bytes() == b"old figure"
    assert os.listdir(tmp_path) == ["study.png"]


def test_bad_data_leaves_an_existing_figure_untouched(tmp_path):
    out = tmp_path / "m.png"
    out.write_bytes(b"old")
    with pytest.raises(InputError):
        plots.map_figure(np.zeros((4, 4)), str(out), vmax=-1)
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.png"]


def test_drawing_leaves_the_callers_matplotlib_settings_alone():
    code = ("import sys\n"
            "import numpy as np\n"
            "import matplotlib\n"
            "from shiftlpips_jax._src import plots\n"
            "before = dict(matplotlib.rcParams)\n"
            "plots.render_map_figure(np.zeros((4, 4)), vmax=1, format='svg')\n"
            "plots.render_eval([{'2afc': {'a': 60.0}}])\n"
            "assert dict(matplotlib.rcParams) == before\n"
            "assert 'matplotlib.pyplot' not in sys.modules   # no pyplot, no display, no backend\n"
            "print('OK')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=REPO, env={**os.environ, "MPLBACKEND": "TkAgg",
                                                     "DISPLAY": ""})
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr
