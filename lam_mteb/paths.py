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
