"""``python -m train --config train/configs/<name>.py --workdir DIR [--config.key=value ...]``.

Parses flags, joins the multi-host cluster if asked (or if JAX's cluster detection applies), and
calls :func:`shiftlpips_jax.training.train_and_evaluate`. Run from the repository root.
Multi-host: start the same command on every host with ``--coordinator_address=HOST:PORT
--num_processes=N --process_id=I`` (on CPU add ``--cpu_collectives=gloo``); under SLURM / Open MPI
/ TPU pods the values are detected automatically.

Exit status: 0 done; 2 bad flags/config; 3 non-finite loss; 4 bad data; 5 checkpoint error.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (code).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (resumes if it has checkpoints).")
_COORD = flags.DEFINE_string("coordinator_address", None, "Multi-host: HOST:PORT of process 0.")
_NPROC = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's id.")
_COLLECTIVES = flags.DEFINE_enum("cpu_collectives", None, ["gloo", "mpi"],
                                 "CPU cross-process collectives (multi-process CPU runs).")

_CLUSTER_ENV = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES",
                "JAX_COORDINATOR_ADDRESS")


def init_distributed(coordinator_address=None, num_processes=None, process_id=None,
                     cpu_collectives=None) -> None:
    """``jax.distributed.initialize`` with explicit values, or auto-detected on a cluster."""
    import jax

    if cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    if coordinator_address or num_processes or process_id is not None:
        if not (coordinator_address and num_processes and process_id is not None):
            raise app.UsageError("--coordinator_address, --num_processes and --process_id go "
                                 "together")
        if num_processes > 1:
            jax.distributed.initialize(coordinator_address, num_processes, process_id)
    elif any(os.environ.get(k) for k in _CLUSTER_ENV):
        size = os.environ.get("SLURM_NTASKS") or os.environ.get("OMPI_COMM_WORLD_SIZE") or "2"
        if int(size) > 1:
            jax.distributed.initialize()


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None or not _WORKDIR.value:
        raise app.UsageError("--config and --workdir are required")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO
    init_distributed(_COORD.value, _NPROC.value, _PID.value, _COLLECTIVES.value)
    from shiftlpips_jax import training
    from shiftlpips_jax.errors import CheckpointError, DataError, NonFiniteLossError

    try:
        training.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except DataError as err:
        print(f"error: bad training data: {err}", file=sys.stderr)
        return 4
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 5
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main)
