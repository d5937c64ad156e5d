"""Grain 2AFC loader: batch format, epochs, shuffling, sharding and exact resume."""

import numpy as np
import pytest

from bapps_fixture import make_2afc
from shiftlpips_jax import data


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("bapps") / "2afc"
    make_2afc(root, {"train/traditional": 7, "train/cnn": 5}, seed=2)
    return data.read_2afc(root, ["train/traditional", "train/cnn"])


def _judges(batches):
    return np.concatenate([b["judge"] for b in batches])


def _refs(batches):
    return np.concatenate([b["ref"] for b in batches])


def test_batches_are_numpy_dicts_in_source_order(source):
    it = data.make_loader(source, batch_size=5, shuffle=False, shard_index=0,
                               shard_count=1, drop_remainder=False)
    batches = list(it)
    assert [len(b["judge"]) for b in batches] == [5, 5, 2]
    b = batches[0]
    assert set(b) == {"ref", "p0", "p1", "judge"}
    assert b["ref"].dtype == np.uint8 and b["ref"].shape == (5, 64, 64, 3)
    assert b["judge"].dtype == np.float32 and b["judge"].shape == (5,)
    np.testing.assert_array_equal(_judges(batches), source.labels)
    np.testing.assert_array_equal(batches[2]["p1"][1], source[11]["p1"])


def test_shuffle_is_a_seeded_permutation_per_epoch(source):
    def run(seed):
        return list(data.make_loader(source, batch_size=4, seed=seed, num_epochs=2,
                                          shard_index=0, shard_count=1))
    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(_refs(a), _refs(b))
    assert not np.array_equal(_refs(a), _refs(c))
    # drop_remainder: 12 records -> 3 full batches per epoch; each epoch is a permutation.
    assert len(a) == 6
    per_epoch = np.sort(_judges(a[:3])), np.sort(_judges(a[3:]))
    np.testing.assert_array_equal(per_epoch[0], np.sort(source.labels))
    np.testing.assert_array_equal(per_epoch[1], np.sort(source.labels))


def test_shards_are_disjoint_and_cover_the_data(source):
    seen = []
    for k in range(3):
        batches = list(data.make_loader(source, batch_size=2, shuffle=False,
                                             shard_index=k, shard_count=3))
        assert len(batches) == 2  # 12 records / 3 hosts = 4 each = 2 batches
        seen.append(_refs(batches).reshape(4, -1))
    rows = np.concatenate(seen)
    assert len({r.tobytes() for r in rows}) == 12


def test_state_restores_exactly(source):
    kwargs = dict(batch_size=3, seed=7, num_epochs=None, shard_index=0, shard_count=1)
    it = data.make_loader(source, **kwargs)
    for _ in range(5):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(4)]
    fresh = data.make_loader(source, **kwargs)
    fresh.set_state(state)
    for want in expected:
        got = next(fresh)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def test_tfds_and_folder_sources_give_identical_batches(source, tmp_path):
    builder = data.build_2afc_tfds(source.root, tmp_path, sets=["train/cnn"])
    tf_src = builder.as_data_source()["train_cnn"]
    folder = data.read_2afc(source.root, ["train/cnn"])
    kw = dict(batch_size=2, seed=3, shard_index=0, shard_count=1)
    for a, b in zip(data.make_loader(tf_src, **kw), data.make_loader(folder, **kw)):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_bad_arguments(source):
    with pytest.raises(ValueError, match="shard_index"):
        data.make_loader(source, batch_size=2, shard_index=3, shard_count=2)
    with pytest.raises(ValueError, match="batch_size"):
        data.make_loader(source, batch_size=0, shard_index=0, shard_count=1)


def test_ordered_padded_pass_keeps_every_record_once_with_a_mask(source):
    batches = list(data.make_loader(source, batch_size=5, shuffle=False, pad_remainder=True,
                                    shard_index=0, shard_count=1))
    assert [len(b["judge"]) for b in batches] == [5, 5, 5]          # fixed shape
    np.testing.assert_array_equal(np.concatenate([b["mask"] for b in batches]),
                                  [1] * 12 + [0] * 3)
    np.testing.assert_array_equal(_judges(batches)[:12], source.labels)
    assert not batches[-1]["ref"][2:].any()                          # padding rows are zeros


def test_padded_shards_yield_equal_batch_counts(source):
    # 12 records over 5 hosts: shards of 3 and 2 records; every host runs ceil(3 / 2) = 2 steps.
    counts, seen = [], []
    for k in range(5):
        batches = list(data.make_loader(source, batch_size=2, shuffle=False, pad_remainder=True,
                                        shard_index=k, shard_count=5))
        counts.append(len(batches))
        for b in batches:
            seen += list(b["judge"][b["mask"] > 0])
    assert counts == [2] * 5
    np.testing.assert_array_equal(np.sort(seen), np.sort(source.labels))


def test_index_subsets_in_their_order(source):
    idx = [11, 0, 7]
    (batch,) = list(data.make_loader(source, batch_size=3, shuffle=False, indices=idx,
                                     shard_index=0, shard_count=1))
    np.testing.assert_array_equal(batch["judge"], source.labels[idx])
    np.testing.assert_array_equal(batch["p0"][0], source[11]["p0"])


def test_jnd_records(tmp_path):
    from bapps_fixture import make_jnd
    root = make_jnd(tmp_path / "jnd", {"val/cnn": 5}, seed=1)
    src = data.read_jnd(root, ["val/cnn"])
    batches = list(data.make_loader(src, batch_size=2, shuffle=False, pad_remainder=True,
                                    shard_index=0, shard_count=1))
    assert set(batches[0]) == {"p0", "p1", "same", "mask"}
    np.testing.assert_array_equal(np.concatenate([b["same"] for b in batches])[:5], src.labels)


def test_worker_processes_keep_the_order(source):
    kw = dict(batch_size=5, shuffle=False, pad_remainder=True, shard_index=0, shard_count=1)
    threads = list(data.make_loader(source, **kw))
    procs = list(data.make_loader(source, worker_count=2, **kw))
    assert len(threads) == len(procs)
    for a, b in zip(threads, procs):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_pad_needs_one_epoch_and_indices_in_range(source):
    with pytest.raises(ValueError, match="num_epochs=1"):
        data.make_loader(source, batch_size=2, pad_remainder=True, num_epochs=None,
                         shard_index=0, shard_count=1)
    with pytest.raises(ValueError, match=r"indices must be in \[0, 12\)"):
        data.make_loader(source, batch_size=2, indices=[3, 12], shard_index=0, shard_count=1)
