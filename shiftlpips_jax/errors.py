"""Every error the library raises on purpose: one base class, :class:`ShiftLPIPSError`.

Each subclass also derives from the builtin exception it stands for (``ValueError``,
``RuntimeError``, ...), so ``except ValueError`` keeps working. The command line turns exactly
these into one-line messages with exit status 2; anything else is a bug and keeps its traceback.

Example::

    from shiftlpips_jax import errors
    try:
        metric = sl.load("alex", weights="my_copy.pth")
    except errors.WeightsError as err:      # or errors.ShiftLPIPSError for any of them
        print(err)
"""

from shiftlpips_jax._src.errors import CheckpointError
from shiftlpips_jax._src.errors import CheckpointFormatError
from shiftlpips_jax._src.errors import DataError
from shiftlpips_jax._src.errors import InputError
from shiftlpips_jax._src.errors import InputTypeError
from shiftlpips_jax._src.errors import MetricCheckpointError
from shiftlpips_jax._src.errors import NonFiniteLossError
from shiftlpips_jax._src.errors import PathNotFoundError
from shiftlpips_jax._src.errors import PlotDependencyError
from shiftlpips_jax._src.errors import ShiftLPIPSError
from shiftlpips_jax._src.errors import StateDictError
from shiftlpips_jax._src.errors import UnsafeCheckpointError
from shiftlpips_jax._src.errors import WeightsError

__all__ = (
    "CheckpointError",
    "CheckpointFormatError",
    "DataError",
    "InputError",
    "InputTypeError",
    "MetricCheckpointError",
    "NonFiniteLossError",
    "PathNotFoundError",
    "PlotDependencyError",
    "ShiftLPIPSError",
    "StateDictError",
    "UnsafeCheckpointError",
    "WeightsError",
)
