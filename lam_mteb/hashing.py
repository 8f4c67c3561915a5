"""Content addresses of files and folders (a leaf module: it imports nothing of lam-mteb but
:mod:`lam_mteb.paths` and :mod:`lam_mteb.atomic`).

A file's SHA-256 is remembered in ``<cache>/file-hashes.json`` keyed by its path and (size,
mtime, ctime, inode): a shortcut only, so unchanged files are not re-read.  A changed key (``cp
-p`` keeps size and mtime but not ctime) or ``verify=True`` (``--verify-data``,
``LAM_MTEB_VERIFY_DATA=1``) re-hashes the bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from lam_mteb.atomic import atomic_write
from lam_mteb.paths import cache_dir

logger = logging.getLogger("lam_mteb.hashing")
HASH_INDEX = "file-hashes.json"


def verify_requested() -> bool:
    return os.environ.get("LAM_MTEB_VERIFY_DATA", "").strip().lower() in ("1", "true", "yes")


def sha256_of_bytes(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class HashIndex:
    """The remembered file hashes of the cache named by ``LAM_MTEB_CACHE`` now (read again when
    that changes).  Saving merges into the file on disk, so several indexes (processes) only ever
    add to it."""

    def __init__(self) -> None:
        self._file: Path | None = None
        self._entries: dict = {}
        self._changed: dict = {}

    def _path(self) -> Path:
        return cache_dir() / HASH_INDEX

    def _read(self, path: Path) -> dict:
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}

    def entries(self) -> dict:
        path = self._path()
        if self._file != path:
            self._file, self._entries, self._changed = path, self._read(path), {}
        return self._entries

    def forget(self) -> None:
        """Drop what is in memory: the next look-up reads the file again."""
        self._file = None

    def save(self) -> None:
        if not self._changed or self._file is None:
            return
        merged = {**self._read(self._file), **self._changed}
        self._changed = {}
        try:
            atomic_write(self._file, json.dumps(merged))
        except OSError as exc:  # a read-only cache only costs re-hashing next time
            logger.debug("could not save %s: %s", self._file, exc)

    def file_sha256(self, path: Path, *, verify: bool | None = None, save: bool = True) -> str:
        """SHA-256 of a file's bytes (streamed), with the (size, mtime, ctime, inode) shortcut."""
        path = Path(path).resolve()
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        index = self.entries()
        known = index.get(str(path))
        verify = verify_requested() if verify is None else verify
        if not verify and isinstance(known, list) and len(known) == 5 and known[:4] == stamp:
            return str(known[4])
        digest = sha256_of_bytes(path)
        if known != [*stamp, digest]:
            index[str(path)] = self._changed[str(path)] = [*stamp, digest]
            if save:
                self.save()
        return digest

    def content_hash(
        self, paths: list[Path], *, verify: bool | None = None, extra: str = ""
    ) -> str:
        """A hash of every file under ``paths`` (names relative to each path + byte hashes), plus
        ``extra``."""
        h = hashlib.sha256(extra.encode())
        for top in sorted(paths):
            files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
            for f in files:
                rel = f"{top.name}/{f.relative_to(top).as_posix()}" if top.is_dir() else top.name
                h.update(f"{rel}\0{self.file_sha256(f, verify=verify, save=False)}\n".encode())
        self.save()
        return h.hexdigest()[:16]


def content_hash(paths: list[Path], *, verify: bool | None = None, extra: str = "") -> str:
    """:meth:`HashIndex.content_hash` with an index of its own (read from and merged into the
    cache's file)."""
    return HashIndex().content_hash(paths, verify=verify, extra=extra)
