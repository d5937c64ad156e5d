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


# -------------------------------------------------------------------------------------------
# Outputs: never a dataset file, checked before the run, written all-or-nothing.

import hashlib  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

from file_faults import make_fifo, no_hang  # noqa: E402


def _tree_digest(root) -> dict:
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            out[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


@pytest.fixture
def no_read(monkeypatch):
    """Fails the test if the dataset is read or a distance built before the output check."""
    from shiftlpips_jax._src.data import folder as _folder
    from shiftlpips_jax._src.evaluation import distances as _distances

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the outputs were checked")
    monkeypatch.setattr(_folder, "read_2afc", refuse)
    monkeypatch.setattr(_distances, "get_distance", refuse)


def test_json_onto_a_judge_file_is_refused(root, tmp_path, capsys):
    work = tmp_path / "2afc"
    shutil.copytree(root / "2afc", work)
    judge = work / "val" / "cnn" / "judge" / "000001.npy"
    before = _tree_digest(work)
    for flag in ("--json", "--per-sample"):
        rc = cli.main(["eval", str(work), "--datasets", *SETS, "--net", "l2", flag, str(judge),
                       "--no-progress"])
        assert rc == 2
        assert f"{flag} {judge} is the input file" in capsys.readouterr().err
    assert _tree_digest(work) == before


def test_json_and_csv_on_one_path_or_unwritable_are_refused_before_reading(root, tmp_path,
                                                                           capsys, no_read):
    same = tmp_path / "same.out"
    rc = cli.main(["eval", str(root / "2afc"), "--net", "l2", "--json", str(same),
                   "--per-sample", str(same)])
    assert rc == 2 and "--json and --per-sample would both be written" in capsys.readouterr().err
    plain = tmp_path / "plain"
    plain.write_text("x")
    rc = cli.main(["eval", str(root / "2afc"), "--net", "l2", "--json", str(plain / "o.json")])
    assert rc == 2 and "plain is not a directory" in capsys.readouterr().err
    rc = cli.main(["eval", str(root / "2afc"), "--net", "l2", "--batch-size", "0"])
    assert rc == 2 and "--batch-size must be >= 1" in capsys.readouterr().err
    rc = cli.main(["eval", str(root / "2afc"), "--net", "squeeze"])
    assert rc == 2 and "unknown net 'squeeze'" in capsys.readouterr().err


def test_a_write_failing_at_the_end_is_one_line_and_keeps_the_old_files(root, tmp_path):
    """A real failing write: the process may not grow any file past 300 bytes (RLIMIT_FSIZE;
    Python ignores SIGXFSZ, so write() fails with EFBIG like on a full disk)."""
    out = tmp_path / "scores.json"
    out.write_text('{"old": true}\n')
    csv_out = tmp_path / "rows.csv"
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))\n"
            "from shiftlpips_jax import cli\n"
            f"sys.exit(cli.main(['eval', {str(root / '2afc')!r}, '--datasets', 'val/traditional',"
            f" 'val/cnn', '--net', 'l2', '--json', {str(out)!r}, '--per-sample', "
            f"{str(csv_out)!r}, '--no-progress', '--workers', '0']))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert res.returncode == 2, res.stderr
    assert "triplets/s" in res.stdout                         # the run itself completed
    err = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr
    assert err[-1].startswith(f"shiftlpips eval: error: cannot write {out}: File too large")
    assert out.read_text() == '{"old": true}\n'             # the old result is intact
    assert sorted(os.listdir(tmp_path)) == ["scores.json"]  # no CSV, no temporary files


def test_fifo_judge_in_eval_is_a_clear_error(root, tmp_path, capsys):
    work = tmp_path / "2afc"
    shutil.copytree(root / "2afc", work)
    judge = work / "val" / "cnn" / "judge" / "000000.npy"
    os.remove(judge)
    make_fifo(judge)
    with no_hang([judge]):
        rc = cli.main(["eval", str(work), "--datasets", *SETS, "--net", "l2", "--no-progress"])
    assert rc == 2 and "is a FIFO" in capsys.readouterr().err


def test_skip_errors_scores_the_rest_and_records_what_was_skipped(root, tmp_path, capsys):
    work = tmp_path / "2afc"
    shutil.copytree(root / "2afc", work)
    (work / "val" / "cnn" / "p0" / "000001.png").write_bytes(b"broken")
    np.save(work / "val" / "traditional" / "judge" / "000000.npy", np.array([2.0], np.float32))
    out = tmp_path / "skip.json"
    rc = cli.main(["eval", str(work), "--datasets", *SETS, "--net", "l2", "--json", str(out),
                   "--no-progress"])
    assert rc == 2 and "000000.npy holds 2.0" in capsys.readouterr().err
    assert not out.exists()
    rc = cli.main(["eval", str(work), "--datasets", *SETS, "--net", "l2", "--json", str(out),
                   "--no-progress", "--skip-errors"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "skipped 2 triplets (--skip-errors); 3 remain" in err
    got = json.loads(out.read_text())
    assert got["triplets"] == {"val/traditional": 2, "val/cnn": 1}
    assert [s["path"] for s in got.pop("skipped")] == ["val/traditional/judge/000000.npy",
                                                        "val/cnn/p0/000001.png"]
    api = ev.evaluate_2afc(data.read_2afc(work, SETS, skip_errors=True), ev.get_distance("l2"),
                           progress=False).to_json()
    assert _close(got, api)
