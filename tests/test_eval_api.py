"""Public surface of shiftlpips_jax.data and shiftlpips_jax.evaluation: names and signatures."""

import inspect

import pytest

from shiftlpips_jax import data
from shiftlpips_jax import evaluation as ev


@pytest.mark.parametrize("module", [data, ev])
def test_every_public_name_resolves(module):
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert sorted(module.__all__) == list(module.__all__)


# Functions and the positional parameters they take; everything else must be keyword-only.
POSITIONAL = {
    data.read_2afc: ("root", "datasets", "load_size"),
    data.read_jnd: ("root", "datasets", "load_size"),
    data.make_loader: ("data_source",),
    data.build_2afc_tfds: ("manual_dir", "data_dir", "load_size", "sets"),
    data.build_jnd_tfds: ("manual_dir", "data_dir", "load_size", "sets"),
    ev.evaluate_2afc: ("source", "dist"),
    ev.evaluate_jnd: ("source", "dist"),
    ev.ssim: ("x", "y"),
    ev.get_distance: ("net", "variant"),
}


@pytest.mark.parametrize("fn", list(POSITIONAL), ids=lambda f: f.__name__)
def test_options_are_keyword_only(fn):
    params = inspect.signature(fn).parameters.values()
    positional = tuple(p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD)
    assert positional == POSITIONAL[fn]
    assert fn.__doc__ and len(fn.__doc__) > 40


def test_loader_signature_is_the_documented_one():
    params = inspect.signature(data.make_loader).parameters
    for name in ("batch_size", "shuffle", "seed", "num_epochs", "shard_index", "shard_count",
                 "drop_remainder", "worker_count"):
        assert params[name].kind == params[name].KEYWORD_ONLY, name
