"""Folder summaries of compare / pairs (N, mean, std, 95% CI; --json; --skip-errors counted)
and ``metric(..., reduction=)``."""

import csv
import io
import json
import shutil

import numpy as np
import pytest

from shared_helpers import example_folders
from shiftlpips_jax import cli
from shiftlpips_jax._src.images import example_path
from shiftlpips_jax.errors import InputError
from shiftlpips_jax.evaluation import summarize


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _folders(tmp_path):
    a, b = example_folders(tmp_path)
    (a / "broken.png").write_bytes(b"not a png")
    shutil.copy(example_path("ex_ref"), b / "broken.png")
    return a, b


def test_compare_json_summary_and_skipped_count(capsys, tmp_path, alex, example):
    a, b = _folders(tmp_path)
    out_json, out_csv = tmp_path / "o" / "d.json", tmp_path / "o" / "d.csv"
    code, out, err = _run(capsys, "compare", a, b, "--skip-errors", "--json", out_json,
                          "--out", out_csv)
    assert code == 0, err
    got = json.loads(out_json.read_text())
    ref, p0, p1 = example
    want = {"ex_ref.png": float(alex(ref, p0)), "ex_p0.png": float(alex(p0, p1)),
            "ex_p1.png": float(alex(p1, ref))}
    assert sorted(got["per_image"]) == sorted(want)
    for name, d in want.items():
        assert got["per_image"][name] == pytest.approx(d, rel=1e-6)
    s = summarize(list(got["per_image"].values()))
    assert got["summary"]["count"] == 3 and got["summary"]["skipped"] == 1
    for k in ("mean", "std", "min", "max"):
        assert got["summary"][k] == pytest.approx(s[k], rel=1e-12), k
    assert got["summary"]["ci95"] == pytest.approx(s["ci95"], rel=1e-12)
    assert got["summary"]["ci95"][0] < got["summary"]["mean"] < got["summary"]["ci95"][1]
    assert [x["name"] for x in got["skipped"]] == ["broken.png"]
    # The CSV went to a file, so the summary line is on stdout, after nothing else.
    line = out.strip().splitlines()[-1]
    assert line.startswith("N 3, mean ") and line.endswith("skipped 1"), out
    assert f"mean {s['mean']:.6g}, std {s['std']:.6g}" in line
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert {r["name"]: float(r["distance"]) for r in rows} == pytest.approx(want, rel=1e-6)


def test_summary_goes_to_stderr_when_stdout_is_the_csv_and_nan_is_null(capsys, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(example_path("ex_ref"), a / "x.png")          # one pair: no std, no CI
    shutil.copy(example_path("ex_p0"), b / "x.png")
    out_json = tmp_path / "one.json"
    code, out, err = _run(capsys, "compare", a, b, "--json", out_json)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["name", "distance"] and len(rows) == 2   # stdout is only the CSV
    assert "N 1, mean 0.7777" in err and "std n/a" in err and "[n/a, n/a]" in err
    text = out_json.read_text()
    assert "NaN" not in text
    got = json.loads(text)
    assert got["summary"]["std"] is None and got["summary"]["ci95"] == [None, None]
    assert got["summary"]["count"] == 1 and "skipped" not in got["summary"]


def test_pairs_json_and_outputs_never_over_inputs(capsys, tmp_path):
    a, _ = _folders(tmp_path)
    (a / "broken.png").unlink()
    out_json = tmp_path / "pairs.json"
    code, out, err = _run(capsys, "pairs", a, "--json", out_json)
    assert code == 0, err
    got = json.loads(out_json.read_text())
    assert [(p["a"], p["b"]) for p in got["per_pair"]] == [
        ("ex_p0.png", "ex_p1.png"), ("ex_p0.png", "ex_ref.png"), ("ex_p1.png", "ex_ref.png")]
    rows = list(csv.DictReader(io.StringIO(out)))
    np.testing.assert_allclose([float(r["distance"]) for r in rows],
                               [p["distance"] for p in got["per_pair"]], rtol=1e-7)
    assert got["summary"]["count"] == 3
    # --json onto an input, or onto the CSV, is refused before anything is computed.
    before = (a / "ex_ref.png").read_bytes()
    code, _, err = _run(capsys, "pairs", a, "--json", a / "ex_ref.png")
    assert code == 2 and "ex_ref.png" in err and "input" in err, err
    assert (a / "ex_ref.png").read_bytes() == before
    code, _, err = _run(capsys, "pairs", a, "--json", tmp_path / "x", "--out", tmp_path / "x")
    assert code == 2 and "--json" in err and "--out" in err, err
    code, _, err = _run(capsys, "compare", a / "ex_ref.png", a / "ex_p0.png", "--json",
                        tmp_path / "y.json")
    assert code == 2 and "--json is for folder comparisons" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y.json").exists()


def test_metric_reduction(alex, example):
    ref, p0, p1 = example
    x, y = np.stack([ref, ref, p0]), np.stack([p0, p1, p1])
    d = np.asarray(alex(x, y))
    assert d.shape == (3,)
    np.testing.assert_array_equal(np.asarray(alex(x, y, reduction="none")), d)
    assert float(alex(x, y, reduction="mean")) == pytest.approx(d.mean(), rel=1e-6)
    assert float(alex(x, y, reduction="sum")) == pytest.approx(d.sum(), rel=1e-6)
    maps = np.asarray(alex(x, y, spatial=True))
    np.testing.assert_allclose(alex(x, y, spatial=True, reduction="mean"), maps.mean(0),
                               rtol=1e-5, atol=1e-7)
    total, layers = alex(x, y, per_layer=True, reduction="sum")
    assert total.shape == () and all(t.shape == () for t in layers)
    assert float(alex(ref, p0, reduction="mean")) == pytest.approx(d[0], rel=1e-6)
    for bad in ("avg", None, "MEAN"):
        with pytest.raises(InputError, match=r"reduction must be one of 'none', 'mean', 'sum'"):
            alex(x, y, reduction=bad)
