"""Where lam-mteb reads data and keeps its caches (configured by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path | None:
    """The offline data directory named by ``LAM_MTEB_DATA_DIR`` (``None`` when unset)."""
    value = os.environ.get("LAM_MTEB_DATA_DIR", "").strip()
    return Path(value).expanduser().resolve() if value else None


def cache_dir() -> Path:
    """lam-mteb's cache (``LAM_MTEB_CACHE``, default ``~/.cache/lam_mteb``); created on demand."""
    value = os.environ.get("LAM_MTEB_CACHE", "").strip()
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "lam_mteb"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_writable_folder(path: Path | str, what: str) -> Path:
    """Make sure ``path`` is (or can be created as) a folder we can write into, before any long
    work.

    Raises :class:`~lam_mteb.errors.LamMtebError` with one line naming ``what`` (e.g.
    ``--output-folder``).
    """
    import tempfile

    from lam_mteb.errors import LamMtebError

    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise LamMtebError(f"{what} {folder} exists and is not a folder; choose a folder")
    probe_dir = folder  # nothing is created: probe the folder, or the nearest folder above it
    while not probe_dir.exists() and probe_dir.parent != probe_dir:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise LamMtebError(f"{what} {folder}: {probe_dir} is not a folder; choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".lam-mteb-write-check-", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise LamMtebError(
            f"{what} {folder} is not writable ({exc.strerror or exc}); "
            "choose a folder you can write to"
        ) from None
    return folder
