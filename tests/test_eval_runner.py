"""The evaluation runner against independent NumPy computations on generated BAPPS folders.

Distances for the reference computation come from the metric's public API (``metric(x, y)``)
on images read straight from the files with Pillow; the scores are then re-derived here with
the paper's formulas and compared with the runner's.
"""

import dataclasses
import io
import os

import jax
import numpy as np
import pytest
from PIL import Image
from skimage import color
from skimage.metrics import structural_similarity

import shiftlpips_jax as sl
from bapps_fixture import make_2afc, make_jnd
from shiftlpips_jax import data
from shiftlpips_jax import evaluation as ev

SETS = {"val/traditional": 5, "val/cnn": 3}
SHIFTS = (1, 2, 3)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("bapps")
    make_2afc(base / "2afc", SETS, seed=11, ties=1)
    make_jnd(base / "jnd", {"val/traditional": 6, "val/cnn": 4}, seed=12)
    return base


def _read_set(base, name, keys):
    d = os.path.join(base, name)
    names = sorted(os.listdir(os.path.join(d, keys[0])))
    imgs = {k: np.stack([np.asarray(Image.open(os.path.join(d, k, f)).convert("RGB"))
                         for f in names]) for k in keys}
    label = "judge" if "ref" in keys else "same"
    labels = np.array([np.load(os.path.join(d, label, f.replace(".png", ".npy")))[0]
                       for f in names], np.float64)
    return imgs, labels


def _numpy_2afc(d0, d1, g):
    return 100.0 * np.mean((d0 < d1) * (1 - g) + (d1 < d0) * g + (d0 == d1) * 0.5)


@pytest.fixture(scope="module")
def alex_run(root):
    src = data.read_2afc(root / "2afc", list(SETS))
    return ev.evaluate_2afc(src, ev.get_distance("alex"), shifts=SHIFTS, batch_size=4,
                            progress=False)


def test_2afc_and_rank_flips_equal_numpy_over_the_metrics_own_distances(root, alex_run):
    metric = sl.load("alex")
    sets = {name: _read_set(root / "2afc", name, ("ref", "p0", "p1")) for name in SETS}
    # One API call per image shape over both sets (n triplets concatenated).
    cat = {k: np.concatenate([sets[s][0][k] for s in SETS]) for k in ("ref", "p0", "p1")}
    w = 64 - ev.SHIFT_OFFSET
    with jax.default_matmul_precision("highest"):  # the runner's default (matters on GPUs)
        d0 = np.asarray(metric(cat["ref"], cat["p0"]))
        d1 = np.asarray(metric(cat["ref"], cat["p1"]))
        crop = {n: (np.asarray(metric(cat["ref"][:, :, :w], cat["p0"][:, :, n:n + w])),
                    np.asarray(metric(cat["ref"][:, :, :w], cat["p1"][:, :, n:n + w])))
                for n in (0,) + SHIFTS}
    js = alex_run.to_json()
    lo = 0
    for res in alex_run.sets:
        n_set = SETS[res.name]
        sl_ = slice(lo, lo + n_set)
        lo += n_set
        judge = sets[res.name][1]
        np.testing.assert_allclose(res.d0, d0[sl_], rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(res.d1, d1[sl_], rtol=2e-5, atol=1e-6)
        assert js["2afc"][res.name] == pytest.approx(_numpy_2afc(d0[sl_], d1[sl_], judge),
                                                     abs=1e-9)
        base = (crop[0][0][sl_] < crop[0][1][sl_])
        for n in SHIFTS:
            np.testing.assert_allclose(res.d0_shift[n], crop[n][0][sl_], rtol=2e-5, atol=1e-6)
            flips = base != (crop[n][0][sl_] < crop[n][1][sl_])
            assert js["r_rf"][str(n)][res.name] == pytest.approx(100.0 * flips.mean(), abs=1e-9)
            assert js["rank_flips"][str(n)][res.name] == int(flips.sum())
        # The generated tie (p1 == p0, the last triplet) scores exactly one half.
        assert res.d0[-1] == res.d1[-1]
        assert ev.twoafc_per_sample(res.d0, res.d1, res.judge)[-1] == 0.5
    for key in ("2afc",) + tuple(f"r_rf.{n}" for n in SHIFTS):
        table = js[key] if key == "2afc" else js["r_rf"][key.split(".")[1]]
        assert table["mean"] == pytest.approx(np.mean([table[s] for s in SETS]))
    assert js["triplets"] == SETS


def test_reference_features_are_computed_once_per_triplet(root):
    base = ev.l2_distance("RGB")
    calls = []

    def features(params, x):
        calls.append(tuple(x.shape))
        return base.features(params, x)

    counted = dataclasses.replace(base, features=features)
    src = data.read_2afc(root / "2afc", ["val/cnn"])
    ev.evaluate_2afc(src, counted, shifts=SHIFTS, batch_size=2, progress=False)
    # One trace: ref (B), p0+p1 (2B), ref crop (B), p0/p1 at n = 0..3 (8B); B = 2.
    assert calls == [(2, 64, 64, 3), (4, 64, 64, 3), (2, 64, 61, 3), (16, 64, 61, 3)]


def test_baselines_equal_skimage_computation(root):
    src = data.read_2afc(root / "2afc", list(SETS))
    l2 = ev.evaluate_2afc(src, ev.get_distance("l2"), shifts=(2,), batch_size=3,
                          progress=False)
    ssim = ev.evaluate_2afc(src, ev.get_distance("ssim", colorspace="RGB"), shifts=(),
                            batch_size=3, progress=False)
    for k, name in enumerate(SETS):
        imgs, judge = _read_set(root / "2afc", name, ("ref", "p0", "p1"))
        lab = {key: color.rgb2lab(v) for key, v in imgs.items()}
        want_d0 = 0.5 * np.mean((lab["ref"] / 100 - lab["p0"] / 100) ** 2, axis=(1, 2, 3))
        np.testing.assert_allclose(l2.sets[k].d0, want_d0, rtol=1e-4)
        want = {key: np.array([(1 - structural_similarity(
            imgs["ref"][i].astype(float), imgs[key][i].astype(float), data_range=255.0,
            channel_axis=-1)) / 2 for i in range(len(judge))]) for key in ("p0", "p1")}
        np.testing.assert_allclose(ssim.sets[k].d0, want["p0"], atol=1e-5)
        np.testing.assert_allclose(ssim.sets[k].d1, want["p1"], atol=1e-5)
        assert ssim.to_json()["2afc"][name] == pytest.approx(
            _numpy_2afc(want["p0"], want["p1"], judge), abs=1e-9)
    assert set(l2.to_json()["r_rf"]) == {"2"} and "r_rf" not in ssim.to_json()


def test_jnd_map_equals_numpy_over_the_metrics_own_distances(root):
    src = data.read_jnd(root / "jnd", ["val/traditional", "val/cnn"])
    res = ev.evaluate_jnd(src, ev.get_distance("alex"), batch_size=4, progress=False)
    metric = sl.load("alex")
    js = res.to_json()
    for k, name in enumerate(["val/traditional", "val/cnn"]):
        imgs, same = _read_set(root / "jnd", name, ("p0", "p1"))
        with jax.default_matmul_precision("highest"):
            d = np.asarray(metric(imgs["p0"], imgs["p1"]))
        np.testing.assert_allclose(res.sets[k].d, d, rtol=2e-5, atol=1e-6)
        s = same[np.argsort(d, kind="stable")]
        tp, fp = np.cumsum(s), np.cumsum(1 - s)
        prec, rec = tp / (tp + fp), tp / s.sum()
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.maximum.accumulate(np.concatenate(([0.0], prec, [0.0]))[::-1])[::-1]
        i = np.where(mrec[1:] != mrec[:-1])[0]
        assert js["jnd_map"][name] == pytest.approx(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]),
                                                    abs=1e-9)
    assert js["jnd_map"]["mean"] == pytest.approx(np.mean([js["jnd_map"][n] for n in
                                                           ("val/traditional", "val/cnn")]))


def test_limit_scores_the_first_triplets_of_each_set(root, alex_run):
    src = data.read_2afc(root / "2afc", list(SETS))
    res = ev.evaluate_2afc(src, ev.get_distance("alex"), shifts=SHIFTS, batch_size=4, limit=2,
                           progress=False)
    assert res.to_json()["triplets"] == {name: 2 for name in SETS}
    for full, part in zip(alex_run.sets, res.sets):
        np.testing.assert_allclose(part.d0, full.d0[:2], rtol=1e-6)
        np.testing.assert_allclose(part.d1_shift[3], full.d1_shift[3][:2], rtol=1e-6)


def test_progress_bar_shows_rate_and_eta(root):
    src = data.read_2afc(root / "2afc", ["val/cnn"])
    stream = io.StringIO()
    ev.evaluate_2afc(src, ev.get_distance("l2"), shifts=(), batch_size=2, progress=True,
                     stream=stream)
    text = stream.getvalue()
    assert "3/3" in text and "triplets/s" in text and "ETA" in text


def test_table_has_the_papers_columns(alex_run):
    table = alex_run.table()
    assert "2AFC %" in table and "r_rf 1px %" in table and "r_rf 3px %" in table
    assert table.splitlines()[-1].startswith("mean")


def test_bad_shift_and_too_small_images_are_rejected(root, tmp_path):
    src = data.read_2afc(root / "2afc", ["val/cnn"])
    with pytest.raises(ValueError, match="shifts must be in 1..3"):
        ev.evaluate_2afc(src, ev.get_distance("l2"), shifts=(4,), progress=False)
    make_2afc(tmp_path / "tiny", {"val/cnn": 1}, size=8, seed=0)
    tiny = data.read_2afc(tmp_path / "tiny", ["val/cnn"], load_size=8)
    with pytest.raises(ValueError, match="needs at least 10 pixels"):
        ev.evaluate_2afc(tiny, ev.get_distance("ssim"), shifts=(1,), progress=False)


def test_process_pool_decoding_matches_threads_and_reports_bad_files(root, tmp_path):
    import shutil
    src = data.read_2afc(root / "2afc", list(SETS))
    dist = ev.get_distance("l2")
    threads = ev.evaluate_2afc(src, dist, shifts=(1,), batch_size=2, workers=0, progress=False)
    procs = ev.evaluate_2afc(src, dist, shifts=(1,), batch_size=2, workers=2, progress=False)
    assert procs.to_json() == threads.to_json()
    bad_root = tmp_path / "2afc"
    shutil.copytree(root / "2afc", bad_root)
    bad = bad_root / "val" / "cnn" / "ref" / "000002.png"
    bad.write_bytes(b"broken")
    with pytest.raises(ValueError, match=str(bad)):
        ev.evaluate_2afc(data.read_2afc(bad_root, ["val/cnn"]), dist, shifts=(), batch_size=1,
                         workers=2, progress=False)


def test_evaluating_many_checkpoints_keeps_only_the_live_distances(root, tmp_path):
    """One process evaluates several metric checkpoints one after another: each Distance (its
    parameters and compiled programs) is freed once the caller drops it; the one still held
    keeps its compiled program (a second evaluation does not compile again)."""
    import gc
    import weakref

    from shiftlpips_jax._src.weights.exporting import export_pretrained
    from shiftlpips_jax._src.evaluation import runner as _runner

    ckpt = export_pretrained("alex", "shift_tolerant", str(tmp_path / "alex_st"))
    src = data.read_2afc(root / "2afc", ["val/cnn"])
    dead, scores = [], []
    for _ in range(3):
        dist = ev.get_distance(checkpoint=ckpt)
        res = ev.evaluate_2afc(src, dist, shifts=(1,), batch_size=4, progress=False)
        scores.append(res.to_json()["2afc"]["mean"])
        dead.append((weakref.ref(dist), weakref.ref(jax.tree.leaves(dist.params)[0])))
        del dist, res
    gc.collect()
    assert [(d(), p()) for d, p in dead] == [(None, None)] * 3
    assert scores[0] == scores[1] == scores[2]
    kept = ev.get_distance(checkpoint=ckpt)
    ev.evaluate_2afc(src, kept, shifts=(1,), batch_size=4, progress=False)
    again = ev.evaluate_2afc(src, kept, shifts=(1,), batch_size=4, progress=False)
    assert again.compile_seconds < 0.05 and len(_runner._STEPS) >= 1
    assert kept in _runner._STEPS
