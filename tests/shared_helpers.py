"""Small helpers several test files share: example-image folders and subprocess plumbing."""

from __future__ import annotations

import shutil
import socket


def example_folders(tmp_path):
    """Folders ``a`` and ``b`` of the three bundled example images, same names paired
    differently (``a/ex_ref.png`` against ``b/ex_ref.png`` = ex_p0, and so on)."""
    # Imported here: the distributed tests' worker processes import this module before JAX.
    from shiftlpips_jax._src.images import example_path

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for name in ("ex_ref", "ex_p0", "ex_p1"):
        shutil.copy(example_path(name), a / f"{name}.png")
    shutil.copy(example_path("ex_p0"), b / "ex_ref.png")
    shutil.copy(example_path("ex_p1"), b / "ex_p0.png")
    shutil.copy(example_path("ex_ref"), b / "ex_p1.png")
    return a, b


def wait_ok(proc, timeout: float):
    """The output of a finished subprocess, asserting it exited 0 (its tail in the message)."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for ``jax.distributed`` coordinators)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
