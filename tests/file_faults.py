"""Real hostile and unusual input files for the safety tests (FIFOs, bombs, 16-bit PNGs, ...).

Everything is made with Pillow, NumPy and the standard library; photos come from
``skimage.data`` via :mod:`bapps_fixture`. :func:`no_hang` turns a read that would block forever
(a FIFO opened for reading) into a test failure after a few seconds.

Example::

    from file_faults import png_declaring, no_hang
    png_declaring(tmp / "bomb.png", 14000, 14000)
    with no_hang([tmp / "pipe.png"]):
        ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import threading
import zlib

import numpy as np
from PIL import Image

from bapps_fixture import photo_patch

__all__ = ["no_hang", "png_declaring", "photo", "make_fifo", "save"]


@contextlib.contextmanager
def no_hang(fifos=(), *, seconds: int = 10, limit: int = 300):
    """Fails instead of blocking forever on a read of one of ``fifos``.

    After ``seconds`` a watchdog thread opens each FIFO for writing, which releases a reader
    blocked in ``open`` (in any thread), and the block then fails with AssertionError. SIGALRM
    after ``limit`` seconds (main thread only) is the backstop for anything else that blocks.
    """
    rescued: list[str] = []
    stop = threading.Event()

    def watchdog():
        if stop.wait(seconds):
            return
        while not stop.is_set():
            for f in fifos:
                try:
                    fd = os.open(f, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    continue  # no reader waiting
                rescued.append(os.fspath(f))
                os.close(fd)
            stop.wait(0.05)

    def expire(signum, frame):
        raise TimeoutError(f"still blocked after {limit} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(limit)
    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if rescued:
        raise AssertionError(f"blocked reading the FIFO {rescued[0]} for {seconds} s")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(path, width: int, height: int, *, rows: int | None = None) -> int:
    """A greyscale 8-bit PNG of ``width`` x ``height`` whose pixel data is all zeros.

    ``rows`` limits the compressed data to that many rows (a truncated file that still declares
    the full size); by default every row is present (a valid image, tiny when compressed).
    Returns the file size in bytes.
    """
    n = height if rows is None else rows
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte 0 + the row
    parts = []
    for _ in range(n):
        parts.append(comp.compress(row))
    parts.append(comp.flush())
    data = (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b""))
    with open(path, "wb") as fh:
        fh.write(data)
    return len(data)


def photo(seed: int = 0, size=(64, 64)) -> np.ndarray:
    """A real (H, W, 3) uint8 photo crop."""
    return photo_patch(np.random.default_rng(seed), size)


def save(path, img: np.ndarray, **kw) -> str:
    Image.fromarray(img).save(path, **kw)
    return os.fspath(path)


def make_fifo(path) -> str:
    os.mkfifo(path)
    return os.fspath(path)
