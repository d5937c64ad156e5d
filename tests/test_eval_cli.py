"""``shiftlpips eval``: the JSON contract equals the Python API; errors write nothing."""

import json
import os

import pytest

from bapps_fixture import make_2afc, make_jnd
from shiftlpips_jax import cli, data
from shiftlpips_jax import evaluation as ev

SETS = ["val/traditional", "val/cnn"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("bapps")
    make_2afc(base / "2afc", {"val/traditional": 3, "val/cnn": 2}, seed=21, ties=1)
    make_jnd(base / "jnd", {"val/traditional": 4, "val/cnn": 3}, seed=22)
    return base


def _close(a, b):
    """Nested equality with float tolerance."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return a == b


def test_2afc_contract_command_matches_api(root, tmp_path, capsys):
    out = tmp_path / "out.json"
    rc = cli.main(["eval", str(root / "2afc"), "--mode", "2afc", "--datasets", *SETS,
                   "--net", "l2", "--variant", "shift_tolerant", "--load-size", "64",
                   "--shifts", "1", "2", "3", "--json", str(out), "--no-progress"])
    assert rc == 0
    got = json.loads(out.read_text())
    assert set(got["2afc"]) == {*SETS, "mean"}
    assert set(got["r_rf"]) == {"1", "2", "3"}
    assert set(got["r_rf"]["2"]) == {*SETS, "mean"}
    api = ev.evaluate_2afc(data.read_2afc(root / "2afc", SETS, 64), ev.get_distance("l2"),
                           shifts=(1, 2, 3), progress=False).to_json()
    assert _close(got, api)
    text = capsys.readouterr().out
    assert "triplets/s" in text and "mean" in text and "r_rf 2px %" in text


def test_2afc_alex_json_matches_api(root, tmp_path):
    out = tmp_path / "alex.json"
    rc = cli.main(["eval", str(root / "2afc"), "--datasets", *SETS, "--net", "alex",
                   "--variant", "shift_tolerant", "--shifts", "1", "2", "3", "--batch-size", "4",
                   "--json", str(out), "--no-progress"])
    assert rc == 0
    api = ev.evaluate_2afc(data.read_2afc(root / "2afc", SETS), ev.get_distance("alex"),
                           shifts=(1, 2, 3), batch_size=4, progress=False).to_json()
    got = json.loads(out.read_text())
    assert _close(got, api)
    assert got["model"] == "alex/shift_tolerant"


def test_jnd_contract_command_matches_api(root, tmp_path):
    out = tmp_path / "jnd.json"
    csv_out = tmp_path / "jnd.csv"
    rc = cli.main(["eval", str(root / "jnd"), "--mode", "jnd", "--datasets", *SETS,
                   "--net", "ssim", "--load-size", "64", "--json", str(out),
                   "--per-sample", str(csv_out), "--no-progress"])
    assert rc == 0
    got = json.loads(out.read_text())
    api = ev.evaluate_jnd(data.read_jnd(root / "jnd", SETS), ev.get_distance("ssim"),
                          progress=False).to_json()
    assert _close(got, api)
    assert set(got["jnd_map"]) == {*SETS, "mean"}
    assert len(csv_out.read_text().splitlines()) == 1 + 4 + 3


def test_limit_and_default_datasets(root, tmp_path):
    out = tmp_path / "lim.json"
    assert cli.main(["eval", str(root / "2afc"), "--net", "l2", "--limit", "2", "--shifts",
                     "--json", str(out), "--no-progress"]) == 0
    got = json.loads(out.read_text())
    assert got["triplets"] == {"val/traditional": 2, "val/cnn": 2}
    assert "r_rf" not in got


def test_missing_root_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "x.json"
    rc = cli.main(["eval", str(tmp_path / "nope"), "--net", "l2", "--json", str(out)])
    assert rc == 2
    assert "not found" in capsys.readouterr().err
    assert not out.exists()


def test_corrupt_image_mid_run_keeps_the_old_json(root, tmp_path, capsys):
    import shutil
    bad_root = tmp_path / "2afc"
    shutil.copytree(root / "2afc", bad_root)
    bad = bad_root / "val" / "cnn" / "p0" / "000001.png"
    bad.write_bytes(b"broken")
    out = tmp_path / "keep.json"
    out.write_text('{"old": true}\n')
    rc = cli.main(["eval", str(bad_root), "--datasets", *SETS, "--net", "l2", "--json", str(out),
                   "--no-progress"])
    assert rc == 2
    assert str(bad) in capsys.readouterr().err
    assert json.loads(out.read_text()) == {"old": True}
    assert sorted(os.listdir(tmp_path)) == ["2afc", "keep.json"]  # no temp files left
