"""The shift study: distances equal the metric API on explicit crops; human table; outputs."""

import csv
import io
import os

import jax
import numpy as np
import pytest
from PIL import Image

import shiftlpips_jax as sl
from shiftlpips_jax import cli
from shiftlpips_jax._src.evaluation import shift_study as ss

# "Yes%" column of the user-study table on the paper's project page, shifts 0-9.
PAPER_SAME_PERCENT = [93.3, 80.7, 56.0, 34.7, 34.7, 26.7, 23.3, 20.7, 18.0, 10.0]


def test_bundled_human_table_is_the_papers():
    rates = ss.human_same_rate()
    assert sorted(rates) == list(range(10))
    np.testing.assert_allclose([100 * rates[n] for n in range(10)], PAPER_SAME_PERCENT,
                               atol=0.05)
    with open(os.path.join(os.path.dirname(ss.default_image()), "user_study_shift.csv")) as fh:
        rows = list(csv.DictReader(fh))
    assert all(int(r["said_same"]) + int(r["said_shifted"]) == 150 for r in rows)


def test_distances_equal_metric_api_on_crops():
    img = np.asarray(Image.open(ss.default_image()).convert("RGB"))[:64, :72]
    dist = ss._dist("st-alex")
    got = ss.shift_distances(img, dist, max_shift=4)
    metric = sl.load("alex")
    w = 72 - 4
    ref = np.repeat(img[None, :, :w], 5, axis=0)
    shifted = np.stack([img[:, n:n + w] for n in range(5)])
    with jax.default_matmul_precision("highest"):  # as the study (matters on GPUs)
        want = np.asarray(metric(ref, shifted))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)
    assert got[0] == 0.0 and np.all(np.diff(got[:3]) > 0)


def test_study_outputs_table_csv_and_chart(tmp_path):
    out, csv_path = tmp_path / "study.png", tmp_path / "study.csv"
    text = io.StringIO()
    study = ss.run_shift_study(None, max_shift=9, models=("st-alex", "l2"), load_size=64,
                               out=str(out), csv_path=str(csv_path), stream=text)
    assert study.images == [ss.default_image()]
    norm = study.normalised()
    for curve in norm.values():
        assert curve[0] == 0.0 and curve[-1] == pytest.approx(1.0)
    people = 1 - np.array(PAPER_SAME_PERCENT) / 100
    np.testing.assert_allclose(norm["people (1 - same rate)"],
                               (people - people[0]) / (people[-1] - people[0]), atol=1e-3)
    # Agreement numbers are what they claim to be.
    for label, (rmse, r) in study.agreement().items():
        assert rmse == pytest.approx(np.sqrt(np.mean((norm[label] - norm["people (1 - same "
                                                                          "rate)"]) ** 2)))
        assert r == pytest.approx(np.corrcoef(study.mean[label], 1 - study.human_same)[0, 1])
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 10
    assert float(rows[3]["ST-LPIPS alex distance"]) == pytest.approx(
        study.mean["ST-LPIPS alex"][3], rel=1e-6)
    assert float(rows[1]["people_same_rate"]) == pytest.approx(0.8067, abs=1e-4)
    chart = np.asarray(Image.open(out))
    assert chart.shape == (600, 960, 3)
    assert len(np.unique(chart.reshape(-1, 3), axis=0)) > 20  # lines and text were drawn
    assert "people same %" in text.getvalue() and "RMSE" in text.getvalue()
    assert sorted(os.listdir(tmp_path)) == ["study.csv", "study.png"]


def test_cli_runs_with_only_an_output_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["shift-study", "--models", "l2", "--load-size", "48", "--max-shift", "12"])
    assert rc == 0
    assert (tmp_path / "shift_study.png").exists()   # default output, default image
    out = capsys.readouterr().out
    assert "   12" in out  # shifts past the study's 9 are measured (no human value)


def test_cli_defaults_cover_every_model_and_bad_args_fail_cleanly(tmp_path, capsys):
    parser = cli.build_parser()
    args = parser.parse_args(["shift-study"])
    assert args.images == [] and args.max_shift == 9 and args.models == list(ss.MODELS)
    assert set(ss.MODELS) == {"st-alex", "st-vgg", "lpips-alex", "lpips-vgg", "l2"}
    assert cli.main(["shift-study", str(tmp_path / "missing.png"), "--out",
                     str(tmp_path / "x.png")]) == 2
    assert "not found" in capsys.readouterr().err
    assert cli.main(["shift-study", "--max-shift", "0", "--out", str(tmp_path / "x.png")]) == 2
    assert not (tmp_path / "x.png").exists()
