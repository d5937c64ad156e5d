"""Training goldens from upstream's REAL PyTorch ``stlpips.Trainer`` (for tests/test_train_objective.py).

Run from the repository root with the torch reference venv (the test-suite needs no torch):

    python tests/goldens/train_make_goldens.py \
        --trainer-src PATH/TO/ShiftTolerant-LPIPS --out tests/goldens

Upstream's ``stlpips/trainer.py`` is read from its git repository (``git show HEAD:...``) and
executed unmodified inside a package named ``stlpips`` whose other members are the released
``stlpips_pytorch`` 0.0.2 wheel's real classes (``LPIPS``, ``BCERankingLoss``, ...): the repo's own
``stlpips/lpips.py`` imports ``audtorch`` for an unused loss, the wheel's copy does not, the code is
otherwise the same. Nothing is copied from upstream into this repository.

For each case the Trainer is initialised for training (``is_train=True``), its metric net and rank
net get deterministic random weights (``random_weights.make_state_dict``, seed 0), head dropout is
set to p=0 (its random masks cannot be shared across frameworks; dropout is tested separately),
then on one fixed batch of 4 real-photo 64x64 triplets (32x32 centre crops for SqueezeNet) the Trainer runs ``forward_train``,
``zero_grad``, ``backward_train``, ``optimizer_net.step``, ``clamp_weights`` (= its
``optimize_parameters``) twice. Written to ``train_goldens.npz`` (~1 MB), per case ``<case>/...``:

* ``ref``, ``p0``, ``p1`` (uint8 NHWC), ``judge`` (4,);
* ``loss1``, ``acc1``, ``loss2``, ``acc2``: the Trainer's ``loss_total`` and ``acc_r`` mean;
* for every parameter tensor NAME (PyTorch names; the rank net's as ``rank.model.k.*``):
  ``grad1|NAME``, ``grad2|NAME``, ``after1|NAME``, ``after2|NAME`` full when it has <= 4096 entries, else the values
  at ``sample|NAME`` (256 fixed flat indices) and the float64 ``sum``/``abssum`` of the tensor;
  ``init|NAME`` is not stored: the test regenerates it from the manifest ``manifest`` (JSON).

Cases: ``alex_st`` (shift-tolerant AlexNet from scratch, whole network, upstream
``--from_scratch --train_trunk``), ``alex_lin`` (vanilla AlexNet trunk frozen: LPIPS "lin"),
``squeeze_aa`` (anti-aliased SqueezeNet, whole network: exercises the clamp of the trunk's 1x1
convs). Upstream cannot build the anti-aliased SqueezeNet through ``LPIPS`` (its
``inv_net.squeezenet`` is a module object, and ``models_lpf/squeezenet.py`` misses its
``Downsample`` import): the script binds ``inv_net.squeezenet`` to upstream's own
``squeezenet11`` and provides the missing name; the Trainer code is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_weights import make_state_dict  # noqa: E402

import stlpips_pytorch.invariant_networks as inv  # noqa: E402
import stlpips_pytorch.models_lpf as lpf  # noqa: E402
from stlpips_pytorch import stlpips as st_lpips  # noqa: E402
from stlpips_pytorch import utils as st_utils  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "shiftlpips_jax" / "assets"
FULL_LIMIT = 4096
N_SAMPLES = 256
JUDGES = np.array([0.0, 1.0, 0.25, 0.8], np.float32)
CASES = {
    "alex_st": dict(net="alex", variant="shift_tolerant", pnet_tune=True),
    "alex_lin": dict(net="alex", variant="", pnet_tune=False),
    # 32x32 crops: the stride-1 anti-aliased SqueezeNet is slow on CPU at 64x64.
    "squeeze_aa": dict(net="squeeze", variant="antialiased", pnet_tune=True, crop=32),
}


def load_trainer_class(repo: str):
    """Upstream's Trainer, executed from its source inside a ``stlpips`` package shim."""
    src = subprocess.run(["git", "-C", repo, "show", "HEAD:stlpips/trainer.py"], check=True,
                         capture_output=True, text=True).stdout
    pkg = types.ModuleType("stlpips")
    pkg.__path__ = []
    for mod in (st_utils, st_lpips):
        for k, v in vars(mod).items():
            if not k.startswith("__"):
                setattr(pkg, k, v)
    sys.modules["stlpips"] = pkg
    trainer_mod = types.ModuleType("stlpips.trainer")
    trainer_mod.__file__ = f"{repo}:HEAD:stlpips/trainer.py"
    exec(compile(src, trainer_mod.__file__, "exec"), trainer_mod.__dict__)
    sys.modules["stlpips.trainer"] = trainer_mod
    pkg.trainer = trainer_mod
    return trainer_mod.Trainer


def patch_upstream_squeezenet():
    """See the module docstring: two upstream bugs that stop SqueezeNet variants from building."""
    sq = sys.modules["stlpips_pytorch.models_lpf.squeezenet"]
    if not hasattr(sq, "Downsample"):
        sq.Downsample = lpf.Downsample
    inv.squeezenet = lambda variant, filter_size=3: inv.squeezenet11(variant=variant)


def load_png(name: str) -> np.ndarray:
    return np.asarray(Image.open(ASSETS / f"{name}.png").convert("RGB"))


def make_batch():
    """Four 64x64 triplets from the bundled real photos (flips, rolls, swaps)."""
    ref, p0, p1 = (load_png(n) for n in ("ex_ref", "ex_p0", "ex_p1"))
    trip = [
        (ref, p0, p1),
        (ref[:, ::-1], p1[:, ::-1], p0[:, ::-1]),
        tuple(np.roll(a, (5, -3), axis=(0, 1)) for a in (ref, p0, p1)),
        (p0.transpose(1, 0, 2), ref.transpose(1, 0, 2), p1.transpose(1, 0, 2)),
    ]
    out = {k: np.ascontiguousarray(np.stack([t[i] for t in trip]))
           for i, k in enumerate(("ref", "p0", "p1"))}
    out["judge"] = JUDGES
    return out


def to_torch(u8: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1] as upstream's ToTensor + Normalize((.5,)*3, (.5,)*3)."""
    t = torch.from_numpy(u8.transpose(0, 3, 1, 2).copy()).float() / 255.0
    return (t - 0.5) / 0.5


def sample_indices(name: str, size: int) -> np.ndarray:
    rng = np.random.default_rng([7, zlib.crc32(name.encode())])
    return np.sort(rng.choice(size, N_SAMPLES, replace=False)).astype(np.int64)


def record(out: dict, prefix: str, tag: str, name: str, value: np.ndarray):
    value = np.array(value, np.float32, copy=True)  # torch .numpy() shares memory
    if value.size <= FULL_LIMIT:
        out[f"{prefix}/{tag}|{name}"] = value
        return
    idx = sample_indices(name, value.size)
    out[f"{prefix}/sample|{name}"] = idx
    out[f"{prefix}/{tag}|{name}"] = value.reshape(-1)[idx]
    v64 = value.astype(np.float64)
    out[f"{prefix}/{tag}_sum|{name}"] = np.array([v64.sum(), np.abs(v64).sum()])


def named_params(trainer):
    """PyTorch name -> Parameter for the metric net and the rank net (``rank.`` prefix)."""
    out = dict(trainer.net.named_parameters())
    out.update({"rank." + k: v for k, v in trainer.rankLoss.net.named_parameters()})
    return out


def run_case(Trainer, case: str, cfg: dict, batch: dict, out: dict):
    torch.manual_seed(0)
    trainer = Trainer()
    trainer.initialize(model="lpips", net=cfg["net"], variant=cfg["variant"], pnet_rand=True,
                       pnet_tune=cfg["pnet_tune"], use_gpu=False, printNet=False, is_train=True)
    metric_state = trainer.net.state_dict()
    rank_state = {"rank." + k: v for k, v in trainer.rankLoss.net.state_dict().items()}
    manifest = [(k, list(v.shape)) for k, v in list(metric_state.items()) + list(rank_state.items())
                if not k.endswith(".filt") and not k.startswith(("scaling_layer.", "lins."))]
    weights = make_state_dict(manifest, seed=0)
    metric_load = {k: torch.from_numpy(v) for k, v in weights.items() if not k.startswith("rank.")}
    # ``lins.k`` is a second name of ``lin{k}`` (an nn.ModuleList); give it the same tensor.
    for k in list(metric_state):
        if k.startswith("lins."):
            idx, rest = k[len("lins."):].split(".", 1)
            metric_load[k] = metric_load[f"lin{idx}.{rest}"]
    missing = trainer.net.load_state_dict(metric_load, strict=False)
    assert not missing.unexpected_keys, missing.unexpected_keys
    assert all(k.endswith(".filt") or k.startswith("scaling_layer.")
               for k in missing.missing_keys), missing.missing_keys
    trainer.rankLoss.net.load_state_dict(
        {k[len("rank."):]: torch.from_numpy(v) for k, v in weights.items() if k.startswith("rank.")})
    for m in trainer.net.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    if cfg.get("crop"):
        c, o = cfg["crop"], (batch["ref"].shape[1] - cfg["crop"]) // 2
        batch = {k: (v[:, o:o + c, o:o + c] if v.ndim == 4 else v) for k, v in batch.items()}
    data = {k: to_torch(batch[k]) for k in ("ref", "p0", "p1")}
    data["judge"] = torch.from_numpy(batch["judge"]).view(-1, 1, 1, 1)
    prefix = case
    for k in ("ref", "p0", "p1", "judge"):
        out[f"{prefix}/{k}"] = batch[k]
    out[f"{prefix}/manifest"] = np.array(json.dumps(manifest))
    params = named_params(trainer)
    for step in (1, 2):
        trainer.set_input(data)
        # == Trainer.optimize_parameters(), with the gradients recorded between its calls.
        trainer.forward_train()
        trainer.optimizer_net.zero_grad()
        trainer.backward_train()
        for name, p in params.items():
            if p.grad is not None:
                record(out, prefix, f"grad{step}", name, p.grad.detach().numpy())
        trainer.optimizer_net.step()
        trainer.clamp_weights()
        errors = trainer.get_current_errors()
        out[f"{prefix}/loss{step}"] = np.float64(errors["loss_total"])
        out[f"{prefix}/acc{step}"] = np.float64(errors["acc_r"])
        for name, p in params.items():
            record(out, prefix, f"after{step}", name, p.detach().numpy())
        print(f"{case} step {step}: loss {errors['loss_total']:.6f} acc {errors['acc_r']:.4f}")
    frozen = sorted(n for n, p in params.items() if not p.requires_grad)
    out[f"{prefix}/frozen"] = np.array(json.dumps(frozen))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trainer-src", required=True,
                    help="upstream ShiftTolerant-LPIPS git repository (bare is fine)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    Trainer = load_trainer_class(args.trainer_src)
    patch_upstream_squeezenet()
    batch = make_batch()
    out: dict = {}
    for case in args.cases:
        run_case(Trainer, case, CASES[case], batch, out)
    path = os.path.join(args.out, "train_goldens.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
