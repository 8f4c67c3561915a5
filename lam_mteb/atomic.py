"""Atomic writes: a file or folder is written under a temporary name beside its target and renamed
over it only once complete, so a reader (or a crash) never sees half an output.

Every writer in lam-mteb goes through this module::

    atomic_write(path, text)  # str or bytes
    with atomic_file(path, suffix=".npy") as tmp:  # a library writes to a path
        np.save(tmp, array)
    with atomic_folder(target) as tmp:  # a folder of files
        build_into(tmp)

The temporary name starts with a dot and the target's name; on an error it is removed and the
target (if any) is left as it was.  Whatever ``path`` held before (a file, or a folder) is
replaced only once the new output is complete.  A file gets the permissions of the file it
replaces, else 0644 (not ``mkstemp``'s 0600).  ``fsync=True`` also flushes the data and the
rename to disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: permissions of a new file: readable like files written with open() under the usual umask
NEW_FILE_MODE = 0o644


def _fsync_path(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk; folders where the platform cannot
    open them (Windows) are skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if path.is_dir():
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``. A rename cannot replace a folder (nor a file by a folder):
    then the old ``target`` is moved aside first, put back if the rename fails, and deleted."""
    if not (target.exists() and (target.is_dir() or tmp.is_dir())):
        os.replace(tmp, target)  # atomic over a file or a symlink
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    try:
        os.replace(target, aside / target.name)
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(aside / target.name, target)
            raise
    finally:
        _remove(aside)


@contextlib.contextmanager
def atomic_file(path: Path | str, *, suffix: str = ".tmp", fsync: bool = False) -> Iterator[Path]:
    """A fresh temporary file beside ``path`` to write; renamed over ``path`` when the block ends
    without an error, removed otherwise.

    ``suffix`` ends the temporary name (libraries that append an extension, such as
    ``numpy.save``, need theirs there).
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.is_file() else NEW_FILE_MODE)
        if fsync:
            _fsync_path(tmp)
        _move_into_place(tmp, path)
        if fsync:
            _fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path | str, data: str | bytes, *, fsync: bool = False) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically."""
    with atomic_file(path, fsync=fsync) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_folder(
    target: Path | str, *, prefix: str | None = None, fsync: bool = False
) -> Iterator[Path]:
    """A fresh empty folder beside ``target`` to fill; renamed to ``target`` when the block ends
    without an error, removed otherwise.

    An existing ``target`` (file or folder) is replaced only then.  ``prefix`` names the
    temporary folder (default ``.<target name>.``).
    """
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(prefix=prefix or f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if fsync:
            for file in tmp.rglob("*"):
                if file.is_file():
                    _fsync_path(file)
        _move_into_place(tmp, target)
        if fsync:
            _fsync_path(target.parent)
    finally:
        _remove(tmp)
