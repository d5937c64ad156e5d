"""``--net dists`` / ``--net msssim`` through ``shiftlpips`` (compare, pairs, eval 2AFC with r_rf
and JND, shift-study, bench), each equal to the Python API on the bundled example or a BAPPS
fixture; the options that do not apply to a metric are refused in one line."""

from __future__ import annotations

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

import shiftlpips_jax as sl
from bapps_fixture import make_2afc, make_jnd
from shiftlpips_jax import cli, data
from shiftlpips_jax import evaluation as ev
from shiftlpips_jax._src.images import example_path, load_rgb

SET = "val/traditional"


@pytest.fixture(scope="module")
def dists():
    return sl.load("dists")


@pytest.fixture(scope="module")
def bapps(tmp_path_factory):
    base = tmp_path_factory.mktemp("bapps")
    make_2afc(base / "2afc", {SET: 4}, size=64, seed=31, ties=1)
    make_jnd(base / "jnd", {SET: 4}, size=64, seed=32)
    return base


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _unit(u8):
    return jnp.asarray(np.asarray(u8, np.float32) / 127.5 - 1.0)


def test_compare_and_pairs_with_dists_and_msssim(capsys, tmp_path, dists, example):
    ref, p0, p1 = example
    code, out, _ = _run(capsys, "compare", example_path("ex_ref"), example_path("ex_p0"),
                        "--net", "dists")
    assert code == 0
    assert float(out) == pytest.approx(float(dists(ref, p0)), abs=1e-6)
    assert float(out) == pytest.approx(0.3879273, abs=1e-5)   # the official code's value
    code, out, _ = _run(capsys, "compare", example_path("ex_ref"), example_path("ex_p1"),
                        "--net", "msssim")
    want = float(ev.get_distance("msssim")(_unit(ref[None]), _unit(p1[None]))[0])
    assert code == 0 and float(out) == pytest.approx(want, abs=1e-6)

    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("ex_ref", "ex_p0", "ex_p1"):
        shutil.copy(example_path(name), folder / f"{name}.png")
    code, out, _ = _run(capsys, "pairs", folder, "--net", "dists")
    assert code == 0
    rows = [line.split(",") for line in out.strip().splitlines()]
    assert rows[0] == ["a", "b", "distance"] and len(rows) == 4
    got = {(a, b): float(d) for a, b, d in rows[1:]}
    imgs = {n: load_rgb(str(folder / f"{n}.png")) for n in ("ex_ref", "ex_p0", "ex_p1")}
    for (a, b), d in got.items():
        assert d == pytest.approx(float(dists(imgs[a[:-4]], imgs[b[:-4]])), abs=1e-6)


def test_options_that_do_not_apply_are_one_line_errors(capsys, tmp_path, bapps):
    a, b = example_path("ex_ref"), example_path("ex_p0")
    cases = [
        (("compare", a, b, "--net", "dists", "--spatial-map", tmp_path / "m.png"),
         "dists/official has no spatial distance map"),
        (("compare", a, b, "--net", "msssim", "--variant", "lpips"),
         "--variant lpips does not apply to msssim"),
        (("compare", a, b, "--net", "dists", "--variant", "lpips"),
         "unknown variant 'lpips' for net 'dists'"),
        (("compare", a, b, "--checkpoint", tmp_path, "--net", "vgg"),
         "already names the model; drop --net vgg"),
        (("pairs", tmp_path, "--checkpoint", tmp_path, "--variant", "lpips"),
         "drop --variant lpips"),
        (("eval", bapps / "2afc", "--net", "dists", "--colorspace", "Lab", "--no-progress"),
         "--colorspace applies to the l2, ssim and msssim baselines only, not to dists"),
        (("eval", bapps / "2afc", "--net", "msssim", "--variant", "lpips", "--no-progress"),
         "--variant lpips does not apply to the msssim baseline"),
        (("eval", bapps / "2afc", "--checkpoint", tmp_path, "--net", "alex", "--no-progress"),
         "drop --net alex"),
    ]
    for argv, message in cases:
        code, out, err = _run(capsys, *argv)
        assert code == 2, argv
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.png").exists()


def test_eval_2afc_and_jnd_with_dists_and_msssim_equal_the_api(capsys, tmp_path, bapps):
    source = data.read_2afc(bapps / "2afc", [SET], 64)
    for net in ("dists", "msssim"):
        out = tmp_path / f"{net}.json"
        code, text, _ = _run(capsys, "eval", bapps / "2afc", "--net", net, "--datasets", SET,
                             "--shifts", "1", "--batch-size", "4", "--json", out,
                             "--no-progress")
        assert code == 0
        got = json.loads(out.read_text())
        api = ev.evaluate_2afc(source, ev.get_distance(net), shifts=(1,), batch_size=4,
                               progress=False).to_json()
        assert got["2afc"][SET] == pytest.approx(api["2afc"][SET])
        assert got["r_rf"]["1"][SET] == pytest.approx(api["r_rf"]["1"][SET])
        assert 0.0 <= got["2afc"][SET] <= 100.0 and "r_rf 1px %" in text
    # MS-SSIM's default colour space is RGB (pytorch-msssim); Lab on request differs.
    lab = tmp_path / "lab.json"
    assert _run(capsys, "eval", bapps / "2afc", "--net", "msssim", "--colorspace", "Lab",
                "--datasets", SET, "--shifts", "--json", lab, "--no-progress")[0] == 0
    api_lab = ev.evaluate_2afc(source, ev.get_distance("msssim", colorspace="Lab"), shifts=(),
                               progress=False).to_json()
    assert json.loads(lab.read_text())["2afc"][SET] == pytest.approx(api_lab["2afc"][SET])

    jnd = data.read_jnd(bapps / "jnd", [SET], 64)
    for net in ("dists", "msssim"):
        out = tmp_path / f"jnd_{net}.json"
        assert _run(capsys, "eval", bapps / "jnd", "--mode", "jnd", "--net", net,
                    "--datasets", SET, "--json", out, "--no-progress")[0] == 0
        api = ev.evaluate_jnd(jnd, ev.get_distance(net), progress=False).to_json()
        assert json.loads(out.read_text())["jnd_map"][SET] == pytest.approx(
            api["jnd_map"][SET])


def test_shift_study_with_dists_and_msssim(capsys, tmp_path):
    out_csv = tmp_path / "study.csv"
    code, text, _ = _run(capsys, "shift-study", "--net", "dists", "msssim", "--max-shift", "3",
                         "--load-size", "64", "--out", tmp_path / "s.png", "--csv", out_csv)
    assert code == 0 and "DISTS" in text and "MS-SSIM (RGB)" in text
    header = out_csv.read_text().splitlines()[0]
    assert "DISTS distance" in header and "MS-SSIM (RGB) distance" in header
    rows = [line.split(",") for line in out_csv.read_text().strip().splitlines()[1:]]
    d = [float(r[3]) for r in rows]        # DISTS per shift: 0 at no shift, then larger
    assert d[0] == pytest.approx(0.0, abs=1e-5) and min(d[1:]) > 1e-3


def test_bench_runs_dists_and_msssim(capsys):
    code, out, _ = _run(capsys, "bench", "--net", "dists,msssim", "--workloads", "40x2",
                        "--repeats", "1", "--warmup", "0", "--gap", "0", "--matmul-size", "64",
                        "--random-init")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[2:] if not line.startswith("#")]
    assert [r[:3] for r in rows] == [["dists/official", "40x40x2", "forward"],
                                     ["dists/official", "40x40x2", "grad"],
                                     ["msssim/RGB", "40x40x2", "forward"],
                                     ["msssim/RGB", "40x40x2", "grad"]]
    assert all(float(r[4]) > 0 for r in rows)
    code, _, err = _run(capsys, "bench", "--net", "msssim", "--against-pytorch")
    assert code == 2 and "no PyTorch side for msssim" in err
