"""Converts a stlpips (ShiftTolerant-LPIPS) PyTorch state dict into a metric directory.

    python convert/stlpips_to_orbax.py alex_vanilla.pth --net alex --variant vanilla --out ckpt/a
    python convert/stlpips_to_orbax.py m.pth --net alex --variant custom \
        --knob conv1_stride=2 --knob blurpool=true --knob blur_location=feat_after_blur --out ckpt/b

Reads the .pth without torch and without executing pickled code; every tensor must match the
backbone named by --net/--variant/--knob (strict: missing, extra or mis-shaped names fail loudly).
"""

import argparse
import sys

from shiftlpips_jax._src.weights.exporting import export_stlpips


def parse_knob(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--knob expects NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    low = value.lower()
    if low in ("true", "false"):
        return name, low == "true"
    try:
        return name, int(value)
    except ValueError:
        return name, value


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("state_dict", help="stlpips LPIPS .pth (net.slice*, lin*.model.1.weight)")
    p.add_argument("--net", required=True, help="alex, vgg, squeeze or resnet")
    p.add_argument("--variant", required=True,
                   help="backbone preset (vanilla, antialiased, shift_tolerant) or custom")
    p.add_argument("--knob", action="append", type=parse_knob, default=[],
                   help="backbone field override NAME=VALUE (repeatable)")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    out = export_stlpips(args.state_dict, args.out, net=args.net, variant=args.variant,
                         knobs=dict(args.knob), overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
