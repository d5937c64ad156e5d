"""Content digests of arrays, array trees and JSON documents (sha256, hex).

The weight cache, metric directories and training checkpoints record these when they are written
and recompute them when they are read, so a file that was edited, truncated into another valid
form or hit by a flipped bit is refused instead of silently changing a result. An array's digest
covers its dtype, shape and bytes (little-endian, C order), so a float16 copy or a reshaped copy
of the same numbers has a different digest. Nothing here is secret: a digest detects accidents
and edits that do not also rewrite the digest, not a forger who does.

Example::

    flat = flatten({"params": {"w": np.ones(3)}})   # {"params/w": array}
    recorded = tree_digest(flat)
    assert tree_digest(flatten(loaded)) == recorded
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import numpy as np

__all__ = ["array_digest", "tree_digest", "leaf_digests", "json_digest", "flatten", "host_array"]


def host_array(x: Any) -> np.ndarray:
    """A NumPy copy of ``x``; for a jax.Array spread over several hosts, this host's first
    shard (the arrays digested here are replicated, so every shard holds the whole value)."""
    import jax

    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        x = x.addressable_shards[0].data
    return np.asarray(x)


def array_digest(a: Any) -> str:
    """sha256 of ``a``'s dtype, shape and little-endian C-order bytes."""
    a = np.ascontiguousarray(host_array(a))
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}|{','.join(map(str, a.shape))}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def flatten(tree: Any) -> dict[str, Any]:
    """``{"a/b/c": leaf}`` for a nested tree of dicts / dataclasses (jax.tree paths)."""
    import jax

    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = []
        for k in path:
            for attr in ("key", "name", "idx"):
                if hasattr(k, attr):
                    parts.append(str(getattr(k, attr)))
                    break
            else:
                parts.append(str(k))
        out["/".join(parts)] = leaf
    return out


def leaf_digests(flat: Mapping[str, Any]) -> dict[str, str]:
    """``{name: array_digest}`` for a flat mapping of arrays."""
    return {k: array_digest(v) for k, v in sorted(flat.items())}


def tree_digest(flat: Mapping[str, Any]) -> str:
    """One sha256 over the names and array digests of a flat mapping of arrays."""
    h = hashlib.sha256()
    for k, d in leaf_digests(flat).items():
        h.update(f"{k}\0{d}\n".encode())
    return h.hexdigest()


def json_digest(obj: Any) -> str:
    """sha256 of ``obj`` as canonical JSON (sorted keys, no whitespace, ASCII)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()
