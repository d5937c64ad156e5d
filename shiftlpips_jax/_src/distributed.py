"""Every local device and every process for the scoring jobs (``eval``, ``compare``, ``pairs``).

Each process scores its own contiguous share of the records (:func:`share`) on all of its local
devices: a batch is padded to a multiple of the local device count (:func:`padded_batch_size`)
and placed with a ``NamedSharding`` over a ``("data",)`` mesh of the local devices
(:func:`local_mesh`, :func:`shard_rows`), parameters replicated (:func:`replicate`), so the
jitted step runs data-parallel with no change to its code; rows are independent, so the result
does not depend on the device count. The processes' results are then gathered in process order
(:func:`allgather`), which restores the original record order, and only process 0 prints and
writes (:func:`is_writer`). :func:`add_args` / :func:`init_from_args` give the commands the
multi-process flags of ``python -m train`` (``--coordinator-address``, ``--num-processes``,
``--process-id``, ``--cpu-collectives``); under SLURM / Open MPI / TPU pods JAX detects them.

Example::

    mesh = local_mesh()
    d = step(replicate(mesh, params), *(shard_rows(mesh, x) for x in padded_batch))
    rows = [r for part in allgather(my_rows) for r in part]       # every process's rows
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .errors import InputError

__all__ = ["AXIS", "local_mesh", "shard_rows", "replicate", "padded_batch_size", "share",
           "allgather", "rows_in_order", "is_writer", "add_args", "init_from_args",
           "init_distributed"]

AXIS = "data"

_CLUSTER_ENV = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES",
                "JAX_COORDINATOR_ADDRESS")


def local_mesh() -> Mesh:
    """A 1-D ``("data",)`` mesh over this process's devices (``jax.make_mesh``).

    Returns:
      The mesh.
    """
    devices = jax.local_devices()
    return jax.make_mesh((len(devices),), (AXIS,), devices=devices)


def shard_rows(mesh: Mesh, x: Any) -> jax.Array:
    """Places a host array split along its first axis over ``mesh``'s ``"data"`` axis.

    Args:
      mesh: from :func:`local_mesh`.
      x: rows (a multiple of the mesh size).

    Returns:
      The sharded array.
    """
    return jax.device_put(np.asarray(x), NamedSharding(mesh, P(AXIS)))


def replicate(mesh: Mesh, tree: Any) -> Any:
    """Places a pytree (parameters) on every device of ``mesh``.

    Args:
      mesh: from :func:`local_mesh`.
      tree: arrays.

    Returns:
      The replicated pytree.
    """
    return jax.device_put(tree, NamedSharding(mesh, P()))


def padded_batch_size(batch_size: int, mesh: Mesh) -> int:
    """``batch_size`` rounded up to a multiple of the mesh's device count.

    Args:
      batch_size: rows wanted per step.
      mesh: the mesh the rows are split over.

    Returns:
      The batch size to pad to.
    """
    n = mesh.devices.size
    return -(-batch_size // n) * n


def share(n: int) -> tuple[int, int]:
    """This process's contiguous share ``[start, stop)`` of ``n`` records.

    Shares differ by at most one record and follow the process order, so concatenating the
    processes' results in order gives the records' order (as ``make_loader``'s padded shards).

    Args:
      n: number of records.

    Returns:
      ``(start, stop)``.
    """
    bounds = np.linspace(0, n, jax.process_count() + 1).round().astype(int)
    i = jax.process_index()
    return int(bounds[i]), int(bounds[i + 1])


def allgather(obj: Any) -> list:
    """Every process's ``obj`` (JSON data: lists, dicts, strings, numbers), in process order.

    Floats survive exactly (JSON keeps 17 significant digits); NaN and infinities too. A
    collective: every process must call it. With one process it returns ``[obj]``.

    Args:
      obj: this process's part.

    Returns:
      ``[part of process 0, part of process 1, ...]``.
    """
    if jax.process_count() == 1:
        return [obj]
    from jax.experimental import multihost_utils
    data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([data.size], np.int32)))
    buf = np.zeros(int(sizes.max()), np.uint8)
    buf[:data.size] = data
    parts = np.asarray(multihost_utils.process_allgather(buf))
    return [json.loads(parts[i, :int(sizes[i, 0])].tobytes().decode())
            for i in range(parts.shape[0])]


def is_writer() -> bool:
    """Whether this process prints and writes the outputs (process 0).

    Returns:
      ``True`` on process 0.
    """
    return jax.process_index() == 0


def add_args(parser) -> None:
    """Adds the multi-process flags (the names ``python -m train`` uses) to an argparse parser.

    Args:
      parser: the subcommand's parser.
    """
    g = parser.add_argument_group("several processes (jax.distributed)")
    g.add_argument("--coordinator-address", "--coordinator_address", default=None,
                   metavar="HOST:PORT", help="HOST:PORT of process 0; start the same command on "
                   "every process (each scores its share, process 0 writes the outputs)")
    g.add_argument("--num-processes", "--num_processes", type=int, default=None, metavar="N",
                   help="number of processes")
    g.add_argument("--process-id", "--process_id", type=int, default=None, metavar="I",
                   help="this process's id, 0..N-1")
    g.add_argument("--cpu-collectives", "--cpu_collectives", default=None,
                   choices=("gloo", "mpi"), help="cross-process collectives of CPU runs")


def init_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, *,
                     cpu_collectives: str | None = None) -> None:
    """``jax.distributed.initialize`` with explicit values, or auto-detected on a cluster.

    Does nothing when JAX is already initialised (a second job in one process) or no values
    are given outside a cluster.

    Args:
      coordinator_address, num_processes, process_id: all three, or none.
      cpu_collectives: ``"gloo"`` or ``"mpi"`` for multi-process CPU runs.

    Raises:
      InputError: only some of the three values, or values out of range.
    """
    given = (coordinator_address, num_processes, process_id)
    if any(v is not None for v in given) and not all(v is not None for v in given):
        raise InputError("--coordinator-address, --num-processes and --process-id go together "
                         f"(got {coordinator_address!r}, {num_processes!r}, {process_id!r})")
    if num_processes is not None and not (num_processes >= 1 and 0 <= process_id < num_processes):
        raise InputError(f"--process-id must be in 0..{num_processes - 1} and --num-processes "
                         f">= 1; got {process_id} of {num_processes}")
    if jax.distributed.is_initialized():
        return
    if cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    if coordinator_address is not None:
        if num_processes > 1:
            jax.distributed.initialize(coordinator_address, num_processes, process_id)
    elif any(os.environ.get(k) for k in _CLUSTER_ENV):
        size = os.environ.get("SLURM_NTASKS") or os.environ.get("OMPI_COMM_WORLD_SIZE") or "2"
        if int(size) > 1:
            jax.distributed.initialize()


def init_from_args(args) -> None:
    """:func:`init_distributed` from the flags of :func:`add_args`.

    Args:
      args: the parsed namespace.
    """
    init_distributed(args.coordinator_address, args.num_processes, args.process_id,
                     cpu_collectives=args.cpu_collectives)


def rows_in_order(parts: Sequence[list]) -> list:
    """Concatenates the processes' lists of rows (from :func:`allgather`) in process order.

    Args:
      parts: one list per process.

    Returns:
      One list.
    """
    return [row for part in parts for row in part]
