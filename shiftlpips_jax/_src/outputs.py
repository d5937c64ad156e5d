"""Output files of the command line: checked before the work starts, written atomically.

:func:`check_outputs` runs before any model is loaded or image decoded and refuses, with an
:class:`~shiftlpips_jax._src.errors.InputError` naming the path: an output that is one of the
inputs (compared as files, so symbolic links and hard links count, not only equal spellings), two
outputs that would land in the same file, an output that exists but is not a regular file (a
folder, FIFO or device: replacing ``/dev/null`` by a file would be a surprise), and an output
whose folder cannot be created or written or whose file system is full (probed by creating and
removing a temporary file). :func:`atomic_write_many` then writes every output to a temporary
file beside it and renames them into place only once all were written, so a failing write (disk
full, quota) leaves the earlier files untouched and no partial file behind, and reports the file
in one line instead of a traceback.

Example::

    check_outputs([("--json", "scores.json")], inputs=[ref_path, p0_path])
    ...                                                   # the long run
    atomic_write_many([("scores.json", json_text.encode())])
"""

from __future__ import annotations

import os
import tempfile
from typing import Iterable, Sequence

from .errors import InputError

__all__ = ["MIN_FREE_BYTES", "TEMP_PREFIX", "check_outputs", "atomic_write_bytes",
           "atomic_write_text", "atomic_write_many"]

# Refuse a file system with less free space than this up front; the writes themselves can
# still fail later (others fill the disk meanwhile), which atomic_write_many reports cleanly.
MIN_FREE_BYTES = 64 * 1024
# Temporary files of the atomic writes; folders the package owns remove leftovers of a crash.
TEMP_PREFIX = ".shiftlpips-tmp-"


def _target(path: str) -> str:
    """The file a write to ``path`` replaces: symlinks resolved, so a link's target is updated."""
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _existing_ancestor(path: str) -> str:
    d = os.path.dirname(path)
    while not os.path.lexists(d):
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return d


def _probe_folder(folder: str, path: str, min_free: int) -> None:
    if not os.path.isdir(folder):
        raise InputError(f"cannot write {path}: {folder} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".shiftlpips-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise InputError(f"cannot write {path}: the folder {folder} is not writable "
                         f"({err.strerror or err})") from None
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return
    free = st.f_bavail * st.f_frsize
    if free < min_free:
        raise InputError(f"cannot write {path}: the file system holding {folder} is full "
                         f"({free} bytes free); free some space or choose another location")


def check_outputs(outputs: Sequence[tuple[str, str]], inputs: Iterable[str] = (), *,
                  min_free: int = MIN_FREE_BYTES) -> None:
    """Refuses outputs that would overwrite an input, collide, or cannot be written.

    Args:
      outputs: ``(what, path)`` pairs, ``what`` naming the output in messages (``"--json"``,
        ``"heat map of a/x.png"``); ``None`` paths are skipped.
      inputs: every file the run reads.
      min_free: smallest free space (bytes) accepted on an output's file system.

    Raises:
      InputError: naming the path and the reason. Nothing is created or changed (the probe file
        is removed again).
    """
    outputs = [(what, os.fspath(p)) for what, p in outputs if p is not None]
    seen: dict[object, str] = {}
    existing: dict[tuple[int, int], tuple[str, str]] = {}
    for what, path in outputs:
        target = _target(path)
        if os.path.isdir(target):
            raise InputError(f"{what} {path} is a directory; expected a file path")
        keys: list[object] = [target]
        if os.path.exists(target):
            st = os.stat(target)
            if not os.path.isfile(target):
                raise InputError(f"{what} {path} exists and is not a regular file (a FIFO or "
                                 "device?); refusing to replace it")
            keys.append((st.st_dev, st.st_ino))
            existing[(st.st_dev, st.st_ino)] = (what, path)
        for key in keys:
            if key in seen:
                raise InputError(f"{seen[key]} and {what} would both be written to {path}; "
                                 "give them different paths")
        for key in keys:
            seen[key] = what
    if existing:
        for src in inputs:
            try:
                st = os.stat(src)
            except OSError:
                continue
            hit = existing.get((st.st_dev, st.st_ino))
            if hit is not None:
                what, path = hit
                raise InputError(f"{what} {path} is the input file {src} (same file); refusing "
                                 "to overwrite an input: choose another output path")
    probed = set()
    for what, path in outputs:
        folder = _existing_ancestor(_target(path))
        if folder not in probed:
            _probe_folder(folder, path, min_free)
            probed.add(folder)


def _umask() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_temp(path: str, data: bytes) -> tuple[str, str]:
    """Writes ``data`` to a temporary file beside ``path``'s target; returns (temp, target)."""
    target = _target(path)
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=os.path.splitext(target)[1])
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return tmp, target


def atomic_write_many(items: Sequence[tuple[str, bytes]], *, user_error: bool = True) -> None:
    """Writes several files so that each is either entirely new or untouched.

    All are first written to temporary files beside their targets (named ``TEMP_PREFIX...``);
    only when every one is complete are they renamed into place (a symbolic link's target is
    replaced, not the link). This is the package's one temp-file-then-rename: the command line's
    outputs, the weight cache, metric directories' descriptions and training's metrics log all
    write through it.

    Args:
      items: ``(path, data)`` pairs.
      user_error: report a failed write as an :class:`InputError` naming the file (the
        command line's outputs); ``False`` lets the ``OSError`` through (library files whose
        callers handle it).

    Raises:
      InputError (or OSError): a file could not be written (disk full, permission, ...); no
        temporary file is left and no target was replaced.
    """
    done: list[tuple[str, str, str]] = []
    try:
        for path, data in items:
            try:
                tmp, target = _write_temp(path, data)
            except OSError as err:
                if not user_error:
                    raise
                raise InputError(f"cannot write {path}: {err.strerror or err}; nothing was "
                                 "written (files that existed are unchanged)") from None
            done.append((tmp, target, path))
        for k, (tmp, target, path) in enumerate(done):
            try:
                os.replace(tmp, target)
            except OSError as err:
                if not user_error:
                    raise
                raise InputError(f"cannot write {path}: {err.strerror or err}"
                                 + (f" ({k} of {len(done)} files were written)" if k else
                                    "; nothing was written")) from None
    finally:
        for tmp, _, _ in done:
            if os.path.lexists(tmp):
                os.unlink(tmp)


def atomic_write_bytes(path: str, data: bytes, *, user_error: bool = True) -> None:
    """Writes ``data`` to ``path`` atomically.

    Args:
      path: the file.
      data: its new content.
      user_error: as :func:`atomic_write_many`.
    """
    atomic_write_many([(path, bytes(data))], user_error=user_error)


def atomic_write_text(path: str, text: str, *, user_error: bool = True) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically.

    Args:
      path: the file.
      text: its new content.
      user_error: as :func:`atomic_write_many`.
    """
    atomic_write_many([(path, text.encode("utf-8"))], user_error=user_error)
