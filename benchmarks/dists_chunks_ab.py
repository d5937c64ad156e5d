"""A/B: DISTS forward at 256x256x4, CPU batch chunks (current) vs one batch, alternating."""
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
A = jax.jit(fwd).lower(variables, x, y).compile()
real = dm.batch_chunks
dm.batch_chunks = lambda n, h, w: [(0, n)]
B = jax.jit(lambda v, a, b: fwd(v, a, b)).lower(variables, x, y).compile()
dm.batch_chunks = real
np.testing.assert_allclose(A(variables, x, y), B(variables, x, y), rtol=1e-5)
times = {"chunked": [], "one batch": []}
for r in range(5):
    order = (("chunked", A), ("one batch", B)) if r % 2 == 0 else (("one batch", B), ("chunked", A))
    for name, f in order:
        t = time.perf_counter(); jax.block_until_ready(f(variables, x, y)); times[name].append(time.perf_counter() - t)
for k, v in times.items():
    print(k, "median s", round(statistics.median(v), 3), [round(t, 2) for t in v])
print("ratio chunked/one", statistics.median(times["chunked"]) / statistics.median(times["one batch"]))
