"""Every training config loads, names the command that runs it, and builds a valid model.

(No training here: the configs' models are only constructed and shape-checked with
``jax.eval_shape``; the train step itself is exercised by the other ``test_train_*`` files.)
"""

from __future__ import annotations

import glob
import importlib
import os
import sys

import jax
import jax.numpy as jnp
import pytest

from shiftlpips_jax._src.training import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # train/ (the program) lives at the repository root
CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "train",
                                                                        "configs", "*.py"))
                 if not os.path.basename(p).startswith(("_", "default")))


def _module(name):
    return importlib.import_module(f"train.configs.{name}")


def test_the_paper_runs_have_configs():
    assert {"alex_vanilla", "alex_shift_tolerant", "vgg_vanilla", "vgg_shift_tolerant",
            "lpips_lin", "lpips_tune", "alex_ablation", "squeeze_antialiased",
            "resnet_antialiased", "tiny"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_and_documents_its_command(name):
    mod = _module(name)
    assert f"python -m train --config train/configs/{name}.py" in mod.__doc__
    config = mod.get_config()
    model = loop.build_model(config)
    x = jnp.zeros((1, config.image_size, config.image_size, 3))
    shapes = jax.eval_shape(model.init, jax.random.key(0), x, x)
    assert "lin0" in shapes["params"] and "net" in shapes["params"]
    if not config.train_trunk:
        assert config.init_from, "a frozen trunk needs a pretrained init"


@pytest.mark.parametrize("name", sorted(importlib.import_module(
    "train.configs.alex_ablation").ABLATIONS))
def test_every_alex_ablation_builds(name):
    config = _module("alex_ablation").get_config(name)
    assert config.variant == "custom" and config.knobs
    model = loop.build_model(config)
    x = jnp.zeros((1, 64, 64, 3))
    jax.eval_shape(model.init, jax.random.key(0), x, x)


def test_paper_recipe_defaults():
    c = _module("alex_shift_tolerant").get_config()
    assert (c.lr, c.b1, c.b2, c.batch_size, c.nepoch, c.nepoch_decay) == (1e-4, 0.5, 0.999,
                                                                          50, 5, 5)
    assert c.dropout and c.train_trunk and not c.init_from and c.clamp == "upstream"
    assert list(c.data.train_sets) == ["train/traditional", "train/cnn", "train/mix"]
    assert c.data.load_size == 64


def test_training_public_surface():
    import inspect
    import subprocess

    from shiftlpips_jax import training

    for name in training.__all__:
        assert hasattr(training, name), name
    for fn, positional in ((training.make_train_step, 4), (training.make_optimizer, 1),
                           (training.upstream_lr, 1), (training.make_eval_step, 2)):
        params = list(inspect.signature(fn).parameters.values())
        assert all(p.kind == p.POSITIONAL_OR_KEYWORD for p in params[:positional]), fn
        assert all(p.kind == p.KEYWORD_ONLY for p in params[positional:]), fn
    # The step and its pieces import with jax/flax/optax only (the GPU benchmark relies on it).
    code = ("import sys, shiftlpips_jax.training.step, shiftlpips_jax._src.training.init; "
            "print(sorted(m for m in ('orbax', 'grain', 'ml_collections', 'PIL', "
            "'tensorflow_datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out
