"""The package's one lazy-import scheme: public names resolved from their module on first use.

A public module lists ``{name: "module.path"}`` and installs the ``__getattr__`` / ``__dir__``
pair that :func:`attach` returns. The implementation module is imported only when one of its
names is first read, so importing ``shiftlpips_jax.data`` does not pull in TFDS or grain (about
2 s) until a TFDS builder or a loader is asked for, and ``shiftlpips_jax.training`` does not load
Orbax until a run starts. ``deprecated`` maps old names the same way, with a
``DeprecationWarning`` naming the replacement on every access; they stay out of ``__all__``
and ``dir()``.

A name mapped to the module of that very name (``{"data": "shiftlpips_jax.data"}`` in
``shiftlpips_jax``) resolves to the module itself.

Example::

    __getattr__, __dir__ = lazy.attach(__name__, {"make_loader": "shiftlpips_jax._src.data.pipeline"})
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Callable, Mapping

__all__ = ["attach"]


def attach(package: str, lazy: Mapping[str, str], *,
           deprecated: Mapping[str, tuple[str, str, str]] | None = None
           ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` resolving names on first use.

    Args:
      package: ``__name__`` of the public module installing them.
      lazy: ``{name: module}``: ``name`` is the attribute of that name of ``module``.
      deprecated: ``{old name: (module, attribute, replacement shown in the warning)}``.

    Returns:
      ``(__getattr__, __dir__)`` to assign at module level.
    """
    deprecated = dict(deprecated or {})

    def __getattr__(name: str):
        if name in lazy:
            module = importlib.import_module(lazy[name])
            value = module if lazy[name] == f"{package}.{name}" else getattr(module, name)
            setattr(sys.modules[package], name, value)  # later reads skip __getattr__
            return value
        if name in deprecated:
            module, attribute, replacement = deprecated[name]
            warnings.warn(f"{package}.{name} is deprecated and will be removed in the next "
                          f"release; use {replacement}", DeprecationWarning, stacklevel=2)
            return getattr(importlib.import_module(module), attribute)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(lazy))

    return __getattr__, __dir__
