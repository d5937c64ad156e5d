"""``shiftlpips bench``: forward / input-gradient throughput, optionally against PyTorch.

For each model and workload (image side x batch) it times the forward distance and the input
gradient in pairs per second, with XLA's FLOPs per pair and the fraction of a float32 matmul;
``--against-pytorch`` runs the reference on the same workloads in alternating rounds, ``--bf16``
adds the bfloat16 trunk. The job is :func:`shiftlpips_jax._src.bench.run_bench_command`.

Example::

    shiftlpips bench --models alex --against-pytorch
    shiftlpips bench --models alex,vgg --workloads 64x50,256x4 --bf16 --json bench.json
"""

from __future__ import annotations

import sys

from shiftlpips_jax._src import bench

__all__ = ["add_parser"]


def _run(args) -> int:
    bench.run_bench_command(
        models=args.models, variant=args.variant, workloads=args.workloads, modes=args.modes,
        bf16=args.bf16, against_pytorch=args.against_pytorch, repeats=args.repeats,
        warmup=args.warmup, gap=args.gap, random_init=args.random_init,
        matmul_size=args.matmul_size, torch_channels_last=args.torch_channels_last,
        json_path=args.json, argv=sys.argv[1:])
    return 0


def add_parser(sub) -> None:
    """Registers ``bench`` on the subparsers ``sub``."""
    p = sub.add_parser("bench", help="forward / input-gradient throughput, optionally against "
                                     "the PyTorch reference")
    p.add_argument("--models", default="alex,vgg",
                   help="comma-separated nets (default alex,vgg)")
    p.add_argument("--variant", default="shift_tolerant",
                   choices=("shift_tolerant", "lpips", "all"),
                   help="pretrained variant (default shift_tolerant; all = every pretrained one)")
    p.add_argument("--workloads", default=bench.DEFAULT_WORKLOADS,
                   help=f"SIDExBATCH list (default {bench.DEFAULT_WORKLOADS})")
    p.add_argument("--modes", default="both", choices=("forward", "grad", "both"))
    p.add_argument("--bf16", action="store_true",
                   help="also time the bfloat16 backbone (PyTorch side under bf16 autocast)")
    p.add_argument("--against-pytorch", action="store_true",
                   help="time stlpips-pytorch on the same workloads in alternating runs")
    p.add_argument("--torch-channels-last", action="store_true",
                   help="give PyTorch channels-last inputs (faster oneDNN path; default: "
                        "contiguous NCHW, as upstream's loader)")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds (default 2)")
    p.add_argument("--gap", type=float, default=0.05,
                   help="seconds of sleep between timed runs (default 0.05)")
    p.add_argument("--matmul-size", type=int, default=2048)
    p.add_argument("--random-init", action="store_true",
                   help="random weights of the same architectures (no weight files needed)")
    p.add_argument("--json", default=None, metavar="OUT", help="also write all rows as JSON")
    p.set_defaults(func=_run)
