"""A/B: DISTS forward at 256x256x4, one-image CPU chunks (the LPIPS models' rule) against one
batch (what DISTS does for images of >= 40,960 pixels), in alternating rounds, one process.

    .venv/bin/python benchmarks/dists_chunks_ab.py
"""
import time, statistics
import numpy as np, jax, jax.numpy as jnp
from shiftlpips_jax._src import dists as dm
variables, model = dm.load_dists()
rng = np.random.default_rng(0)
x = jnp.asarray(rng.uniform(-1, 1, (4, 256, 256, 3)).astype(np.float32))
y = jnp.asarray(np.clip(np.asarray(x) + rng.normal(0, .2, x.shape), -1, 1).astype(np.float32))
def fwd(v, a, b):
    with jax.default_matmul_precision("highest"):
        return model.apply(v, a, b)
current = dm._chunks
dm._chunks = dm.batch_chunks          # the LPIPS rule: four one-image chunks at 256x256
A = jax.jit(fwd).lower(variables, x, y).compile()
dm._chunks = current                  # DISTS' rule: one batch
B = jax.jit(lambda v, a, b: fwd(v, a, b)).lower(variables, x, y).compile()
np.testing.assert_allclose(A(variables, x, y), B(variables, x, y), rtol=1e-5)
times = {"chunked": [], "one batch": []}
for r in range(5):
    order = (("chunked", A), ("one batch", B)) if r % 2 == 0 else (("one batch", B), ("chunked", A))
    for name, f in order:
        t = time.perf_counter(); jax.block_until_ready(f(variables, x, y)); times[name].append(time.perf_counter() - t)
for k, v in times.items():
    print(k, "median s", round(statistics.median(v), 3), [round(t, 2) for t in v])
print("ratio chunked/one", statistics.median(times["chunked"]) / statistics.median(times["one batch"]))
