"""Offline data directories for mteb tasks.

A data directory (``LAM_MTEB_DATA_DIR`` or ``lam-mteb run --data-dir``) can hold, for an mteb
dataset path such as ``mteb/scifact``:

1. a local snapshot of the dataset's Hugging Face repository at ``<data dir>/<dataset path>/``
   (e.g. made with ``huggingface-cli download --repo-type dataset mteb/scifact --local-dir ...``
   on a machine with internet, or with ``lam-mteb data import``) — any mteb task then runs offline;
2. raw files that a *dataset builder* registered by a plugin (``register_datasets`` hook)
   understands, e.g. the STS Benchmark release ``stsbenchmark/sts-*.csv`` (first-party plugin
   ``datasets``).  A builder's output is cached under ``<cache>/datasets/`` keyed by builder
   version and the content hash of the input folders it declares.

When neither is there, mteb loads from the hub as usual, after one line saying what was looked for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lam_mteb.atomic import atomic_folder
from lam_mteb.errors import DataNotFound, LamMtebError
from lam_mteb.hashing import HashIndex, sha256_of_bytes
from lam_mteb.paths import cache_dir, data_dir

if TYPE_CHECKING:
    from lam_mteb.registry import DatasetEntry

logger = logging.getLogger("lam_mteb.data")
RECREATION_MARKER = "lam_mteb_recreation.json"


# -- writing a local HF-style dataset ---------------------------------------------------------


def write_hf_dataset(
    target_dir: Path | str,
    configs: dict[str, dict[str, Iterable[dict]]],
    *,
    card: str = "",
    recreation: dict | None = None,
) -> Path:
    """Write ``{config: {split: rows}}`` as JSON-lines files plus a README.md that declares the
    configs.

    ``datasets.load_dataset(str(target_dir), config, split=split)`` then loads them offline.
    ``recreation`` (a dict describing how the data was made) marks a local re-creation.
    """
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    meta_configs = []
    for config, splits in configs.items():
        data_files = []
        for split, rows in splits.items():
            rel = Path(config) / f"{split}.jsonl"
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            with open(target / rel, "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            data_files.append({"split": split, "path": str(rel)})
        entry: dict[str, Any] = {"config_name": config, "data_files": data_files}
        if config == "default":
            entry["default"] = True
        meta_configs.append(entry)
    header = yaml.safe_dump({"configs": meta_configs}, sort_keys=False)
    (target / "README.md").write_text(f"---\n{header}---\n\n{card}\n", encoding="utf-8")
    if recreation is not None:
        (target / RECREATION_MARKER).write_text(json.dumps(recreation, indent=2), encoding="utf-8")
    return target


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 text file; a byte that is not UTF-8 is one error naming
    the file and line (for builders reading raw files)."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise LamMtebError(
                    f"{path}:{lineno}: not UTF-8 text (byte {exc.start} of the line); "
                    "re-save the file as UTF-8"
                ) from None


# -- content addresses (see lam_mteb.hashing) -----------------------------------------------

BUILD_MANIFEST = "lam_mteb_build.json"
LOCAL_PREFIX = "local-sha256:"
RECREATION_PREFIX = "lam-mteb-recreation:"  # the leaderboard reads this prefix as "re-created data"


# -- build validation ----------------------------------------------------------------------------


def _declared_files(folder: Path) -> list[str]:
    """The data files a built folder's README.md declares (``configs: ... data_files``)."""
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise LamMtebError(f"{readme}: no YAML header declaring the configs")
    header = yaml.safe_load(text[4 : text.index("\n---", 3)])
    files = []
    for config in (header or {}).get("configs") or []:
        for entry in config.get("data_files") or []:
            files.append(entry["path"])
    return files


def validate_build(folder: Path) -> dict:
    """Check a freshly built folder (every declared split has rows, every row the same columns)
    and return its manifest: per file the byte hash, size, row count and columns."""
    manifest: dict = {"files": {}}
    declared = _declared_files(folder)
    if not declared:
        raise LamMtebError(f"builder wrote no data files into {folder}")
    for rel in declared:
        path = folder / rel
        if not path.is_file():
            raise LamMtebError(f"builder declared {rel} but did not write it")
        columns, rows = None, 0
        if path.suffix == ".jsonl":
            for lineno, line in text_lines(path):
                row = json.loads(line)
                keys = sorted(row) if isinstance(row, dict) else None
                if keys is None or (columns is not None and keys != columns):
                    raise LamMtebError(
                        f"builder output {rel}:{lineno}: columns {keys} differ from {columns}"
                    )
                columns, rows = keys, rows + 1
            if rows == 0:
                raise LamMtebError(
                    f"builder output {rel} has no rows; the raw data is empty or unreadable"
                )
        manifest["files"][rel] = _manifest_entry(path, rows, columns)
    manifest["files"]["README.md"] = _manifest_entry(folder / "README.md", None, None)
    return manifest


def _manifest_entry(path: Path, rows: int | None, columns: list[str] | None) -> dict:
    size = path.stat().st_size
    return {"sha256": sha256_of_bytes(path), "size": size, "rows": rows, "columns": columns}


# -- resolution ---------------------------------------------------------------------------------


def _is_snapshot(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def local_snapshots(root: Path | None = None) -> set[str]:
    """Dataset paths (``org/name``) with a local snapshot folder under the data dir ``root``."""
    root = root or data_dir()
    if root is None or not root.is_dir():
        return set()
    return {
        f"{org.name}/{folder.name}"
        for org in root.iterdir()
        if org.is_dir()
        for folder in org.iterdir()
        if _is_snapshot(folder)
    }


@dataclass
class Resolution:
    path: Path | None
    looked_for: list[str]
    recreation: bool = False
    #: content address of the data (recorded as the results' dataset_revision); None = hub data
    revision: str | None = None

    @classmethod
    def found(cls, path: Path, looked_for: list[str], recreation: bool, digest: str) -> Resolution:
        prefix = RECREATION_PREFIX if recreation else LOCAL_PREFIX
        return cls(path, looked_for, recreation, prefix + digest)


class OfflineData:
    """Offline data of one plugin host: the dataset builders its registry holds (a callable, as
    the registry is rebuilt when plugins change) and the file-hash index behind content
    addresses."""

    def __init__(
        self, datasets: Callable[[], Mapping[str, DatasetEntry]], hashes: HashIndex
    ) -> None:
        self._datasets = datasets
        self.hashes = hashes

    def builders(self) -> dict[str, DatasetEntry]:
        """dataset path -> the builder a plugin registered for it (``register_datasets``)."""
        return dict(self._datasets())

    def build_is_valid(self, folder: Path, *, verify: bool | None = None) -> bool:
        """Whether a cached build is complete and unchanged since it was validated (its
        manifest)."""
        try:
            manifest = json.loads((folder / BUILD_MANIFEST).read_text(encoding="utf-8"))
            for rel, info in manifest["files"].items():
                path = folder / rel
                if (
                    path.stat().st_size != info["size"]
                    or self.hashes.file_sha256(path, verify=verify, save=False) != info["sha256"]
                ):
                    return False
            return bool(manifest["files"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False
        finally:
            self.hashes.save()

    def resolve(
        self,
        dataset_path: str,
        root: Path | None = None,
        *,
        quiet: bool = False,
        verify: bool | None = None,
    ) -> Resolution:
        """Find (or build) a local copy of ``dataset_path`` under the data dir ``root``."""
        root = root or data_dir()
        if root is None:
            return Resolution(None, [])
        if not root.is_dir():
            raise LamMtebError(
                f"LAM_MTEB_DATA_DIR={root} is not a directory; point it at your data folder or "
                "unset it"
            )
        looked = [str(root / dataset_path)]
        snapshot = root / dataset_path
        if _is_snapshot(snapshot):
            recreation = (snapshot / RECREATION_MARKER).is_file()
            digest = self.hashes.content_hash([snapshot], verify=verify)
            return Resolution.found(snapshot, looked, recreation, digest)
        entry = self.builders().get(dataset_path)
        if entry is None:
            return Resolution(None, looked)
        try:
            target, digest = self.build_cached(entry, root, quiet=quiet, verify=verify)
        except DataNotFound as exc:
            looked.append(str(exc).removeprefix("looked for "))
            return Resolution(None, looked)
        return Resolution.found(target, looked, entry.recreation, digest)

    def build_cached(
        self, entry: DatasetEntry, root: Path, *, quiet: bool = False, verify: bool | None = None
    ) -> tuple[Path, str]:
        """Build ``entry.path`` from the raw files under ``root`` into lam-mteb's cache, once.

        The cache folder is named by the builder (dataset, version, plugin) and the content hash of
        the raw input folders it declares.  Builds are atomic and safe when several processes start
        at once: a file lock serialises builders of the same folder, each builds into
        ``.build-<name>-*`` and renames it into place, and a finished folder is never deleted while
        valid (readers may be using it).  Returns the folder and the content hash (the dataset
        revision).
        """
        from filelock import FileLock

        identity = f"{entry.path}|{entry.version}|{entry.plugin}"
        key = hashlib.sha256(identity.encode()).hexdigest()[:10]
        base = cache_dir() / "datasets" / entry.path.replace("/", "__")
        inputs = builder_inputs(entry, root)
        digest = self.hashes.content_hash(inputs, verify=verify, extra=f"{identity}\n")
        target = base / f"{key}-{digest}"
        if self.build_is_valid(target, verify=verify):
            return target, digest
        base.mkdir(parents=True, exist_ok=True)
        with FileLock(str(base / f".{target.name}.lock")):
            _clean_stale_builds(base, target.name)
            if target.exists():
                if self.build_is_valid(target, verify=verify):  # another process built it meanwhile
                    return target, digest
                sys.stderr.write(
                    f"lam-mteb: cached build {target} is incomplete or was modified; "
                    "rebuilding it\n"
                )
                aside = base / f".build-{target.name}-invalid-{os.getpid()}"
                os.replace(target, aside)
                shutil.rmtree(aside, ignore_errors=True)
            extra = {
                "builder_version": entry.version,
                "inputs": [str(p) for p in inputs],
                "input_hash": digest,
            }
            # target does not exist: we hold the lock and checked
            _build_then_move(entry, root, target, f".build-{target.name}-", manifest_extra=extra)
        if not quiet:
            sys.stderr.write(
                f"lam-mteb: built local copy of {entry.path} from {root} ({entry.description})\n"
            )
        return target, digest

    def import_dataset(
        self, dataset_path: str, source: Path, out_root: Path, *, force: bool = False
    ) -> Path:
        """``lam-mteb data import``: build ``dataset_path`` from raw files into
        ``out_root/<dataset_path>``."""
        return import_dataset(self.builders(), dataset_path, source, out_root, force=force)


#: a killed build's temporary folder older than this is removed by the next build of any dataset
STALE_BUILD_SECONDS = 3600


def _build_then_move(
    entry: DatasetEntry,
    source: Path,
    target: Path,
    prefix: str,
    *,
    manifest_extra: dict | None = None,
) -> None:
    """Run the builder into a temporary folder beside ``target``, mark a re-creation, validate
    the output, write its manifest (with ``manifest_extra``) and rename it to ``target``; a
    failed build leaves nothing behind."""
    with atomic_folder(target, prefix=prefix) as tmp:
        entry.builder(Path(source), tmp)
        if entry.recreation and not (tmp / RECREATION_MARKER).is_file():
            marker = dict(dataset=entry.path, plugin=entry.plugin, description=entry.description)
            (tmp / RECREATION_MARKER).write_text(json.dumps(marker), encoding="utf-8")
        try:
            manifest = validate_build(tmp)
        except LamMtebError as exc:
            raise LamMtebError(f"{entry.path} built from {source}: {exc}") from None
        if manifest_extra is not None:
            manifest.update({"dataset": entry.path, "plugin": entry.plugin, **manifest_extra})
            (tmp / BUILD_MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def _clean_stale_builds(base: Path, name: str) -> None:
    """Remove temporary folders left by killed builds: those of ``name`` (we hold its lock, so no
    one else is building it) and any other ``.build-*`` older than :data:`STALE_BUILD_SECONDS`."""
    import time

    now = time.time()
    for tmp in base.glob(".build-*"):
        try:
            stale = (
                tmp.name.startswith(f".build-{name}-")
                or now - tmp.stat().st_mtime > STALE_BUILD_SECONDS
            )
        except OSError:
            continue
        if stale and tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)


def builder_inputs(entry: DatasetEntry, root: Path) -> list[Path]:
    """The raw inputs a builder reads, as it declared them (``register(..., inputs=(...))``):
    those of its folders that exist under the data dir; the whole data dir when it declared none
    (``inputs=None``); nothing for a generator (``inputs=()``)."""
    if entry.inputs is None:
        return [root]
    return sorted(root / rel for rel in entry.inputs if (root / rel).exists())


def import_dataset(
    known: Mapping[str, DatasetEntry],
    dataset_path: str,
    source: Path,
    out_root: Path,
    *,
    force: bool = False,
) -> Path:
    """Build ``dataset_path`` (one of the builders ``known``) from raw files into
    ``out_root/<dataset_path>``."""
    entry = known.get(dataset_path)
    if entry is None:
        raise LamMtebError(
            f"no builder for dataset {dataset_path!r}; known: {', '.join(sorted(known))}"
        )
    target = Path(out_root) / dataset_path
    if target.exists() and any(target.iterdir()) and not force:
        raise LamMtebError(
            f"{target} already exists; refusing to overwrite it (pass --force to rebuild)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # --force: atomic_folder replaces the old copy only once the new one is built
    _build_then_move(entry, source, target, ".import-")
    return target
