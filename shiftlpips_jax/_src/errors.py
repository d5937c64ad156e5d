"""The library's error types: one base class, each subclass also its builtin counterpart.

Every error this package raises on purpose (bad input, unreadable or unsafe files, checkpoints
that do not fit, training faults) derives from :class:`ShiftLPIPSError`, so a caller (and the
command line, which turns exactly these into one-line messages with exit status 2) can tell them
from bugs. Each subclass also derives from the builtin exception it replaced (``ValueError``,
``RuntimeError``, ...), so ``except ValueError`` keeps working.

Example::

    try:
        metric = sl.load("alex", weights="my_copy.pth")
    except sl.ShiftLPIPSError as err:       # any of the library's own errors
        print(err)
"""

from __future__ import annotations

import pickle

__all__ = [
    "ShiftLPIPSError",
    "InputError",
    "InputTypeError",
    "PathNotFoundError",
    "CheckpointFormatError",
    "UnsafeCheckpointError",
    "StateDictError",
    "WeightsError",
    "MetricCheckpointError",
    "DataError",
    "CheckpointError",
    "NonFiniteLossError",
    "PlotDependencyError",
]


class ShiftLPIPSError(Exception):
    """Base class of every error the library raises on purpose."""


class InputError(ShiftLPIPSError, ValueError):
    """An argument, image, file or path given by the user is not of the expected form."""


class InputTypeError(InputError, TypeError):
    """An argument or image given by the user is of the wrong type or dtype (also a
    ``TypeError``)."""


class PathNotFoundError(InputError, FileNotFoundError):
    """A file or folder named by the user does not exist (also a ``FileNotFoundError``)."""


class CheckpointFormatError(ShiftLPIPSError, ValueError):
    """The file is not a readable PyTorch checkpoint / array pickle (corrupt, truncated, ...)."""


class UnsafeCheckpointError(ShiftLPIPSError, pickle.UnpicklingError):
    """The pickle names a global that is not a tensor, storage or plain container."""


class StateDictError(ShiftLPIPSError, ValueError):
    """A weight file does not match the model: missing, unexpected or mis-shaped tensors."""


class WeightsError(ShiftLPIPSError, RuntimeError):
    """A pretrained weight file is missing, corrupt or not the expected file."""


class MetricCheckpointError(ShiftLPIPSError, ValueError):
    """A metric directory is missing, incomplete, inconsistent or not ours."""


class DataError(ShiftLPIPSError, ValueError):
    """A training or evaluation example could not be read or is malformed."""


class CheckpointError(ShiftLPIPSError, RuntimeError):
    """A training checkpoint could not be written, restored, or does not fit this run."""


class NonFiniteLossError(ShiftLPIPSError, FloatingPointError):
    """The loss or the gradient became NaN/inf; the run stopped."""


class PlotDependencyError(ShiftLPIPSError, ImportError):
    """matplotlib, which draws the figures, is not installed (``pip install
    'shiftlpips-jax[plot]'``)."""
