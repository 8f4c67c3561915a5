"""Offline data directories for mteb tasks.

A data directory (``LAM_MTEB_DATA_DIR`` or ``lam-mteb run --data-dir``) can hold, for an mteb
dataset path such as ``mteb/scifact``:

1. a local snapshot of the dataset's Hugging Face repository at ``<data dir>/<dataset path>/``
   (e.g. made with ``huggingface-cli download --repo-type dataset mteb/scifact --local-dir ...``
   on a machine with internet, or with ``lam-mteb data import``) — any mteb task then runs offline;
2. raw files that a registered *dataset builder* understands (the core knows the STS Benchmark
   release ``stsbenchmark/sts-*.csv`` and SciFact in BEIR layout ``scifact/``; plugins add more
   through the ``register_datasets`` hook).  A builder's output is cached under
   ``<cache>/datasets/`` keyed by builder version and a fingerprint of its input files.

When neither is there, mteb loads from the hub as usual, after one line saying what was looked for.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterable

import yaml

from lam_mteb.errors import DataNotFound, LamMtebError
from lam_mteb.paths import cache_dir, data_dir

logger = logging.getLogger("lam_mteb.data")
RECREATION_MARKER = "lam_mteb_recreation.json"


# -- writing a local HF-style dataset ---------------------------------------------------------

def write_hf_dataset(target_dir: Path | str, configs: dict[str, dict[str, Iterable[dict]]],
                     *, card: str = "", recreation: dict | None = None) -> Path:
    """Write ``{config: {split: rows}}`` as JSON-lines files plus a README.md that declares the configs.

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
        entry = {"config_name": config, "data_files": data_files}
        if config == "default":
            entry["default"] = True
        meta_configs.append(entry)
    header = yaml.safe_dump({"configs": meta_configs}, sort_keys=False)
    (target / "README.md").write_text(f"---\n{header}---\n\n{card}\n", encoding="utf-8")
    if recreation is not None:
        (target / RECREATION_MARKER).write_text(json.dumps(recreation, indent=2), encoding="utf-8")
    return target


# -- core builders for the raw layout of ../shared/data ----------------------------------------

def build_stsbenchmark(source: Path, target: Path) -> None:
    """STS Benchmark release files ``stsbenchmark/sts-{train,dev,test}.csv`` -> mteb/stsbenchmark-sts."""
    folder = Path(source) / "stsbenchmark"
    files = {"train": "sts-train.csv", "validation": "sts-dev.csv", "test": "sts-test.csv"}
    if not (folder / files["test"]).is_file():
        raise DataNotFound(f"looked for {folder / files['test']} (STS Benchmark release, tab-separated)")
    splits = {}
    for split, name in files.items():
        path = folder / name
        if not path.is_file():
            continue
        rows = []
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                cols = line.rstrip("\r\n").split("\t")
                if len(cols) < 7:
                    raise LamMtebError(f"{path}:{lineno}: expected >= 7 tab-separated columns, got {len(cols)}")
                rows.append({"sentence1": cols[5], "sentence2": cols[6], "score": float(cols[4])})
        splits[split] = rows
    write_hf_dataset(target, {"default": splits}, card="STS Benchmark imported from the original release by lam-mteb.")


def build_scifact(source: Path, target: Path) -> None:
    """SciFact in BEIR layout (``scifact/corpus.jsonl``, ``queries.jsonl``, ``qrels/*.tsv``) -> mteb/scifact."""
    folder = Path(source) / "scifact"
    needed = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / "test.tsv"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise DataNotFound(f"looked for {', '.join(missing)} (SciFact in BEIR layout)")
    write_beir(folder, target)


def write_beir(folder: Path, target: Path) -> None:
    """Convert any BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) for mteb."""
    def read_jsonl(path, keys):
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise LamMtebError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
                yield {k: str(obj.get(k, "") or "") for k in keys}

    qrels = {}
    for tsv in sorted((folder / "qrels").glob("*.tsv")):
        rows = []
        with open(tsv, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t")
            for i, cols in enumerate(reader):
                cols = [c.strip() for c in cols]
                if not cols or (i == 0 and cols[0] == "query-id"):
                    continue
                rows.append({"query-id": cols[0], "corpus-id": cols[1], "score": int(float(cols[2]))})
        qrels[tsv.stem] = rows
    write_hf_dataset(target, {
        "corpus": {"corpus": list(read_jsonl(folder / "corpus.jsonl", ["_id", "title", "text"]))},
        "queries": {"queries": list(read_jsonl(folder / "queries.jsonl", ["_id", "text"]))},
        "default": qrels,
    }, card=f"BEIR-layout data imported by lam-mteb from {folder.name}/.")


CORE_DATASETS = {
    "mteb/stsbenchmark-sts": (build_stsbenchmark, "STS Benchmark original release (stsbenchmark/sts-*.csv)"),
    "mteb/scifact": (build_scifact, "SciFact, BEIR layout (scifact/)"),
}


# -- resolution ---------------------------------------------------------------------------------

def _fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    if folder.is_dir():
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(folder)}:{st.st_size}:{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


def _is_snapshot(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def builders() -> dict:
    """dataset path -> (builder, description, recreation, version, plugin) of the core and every plugin."""
    from lam_mteb.registry import get_registry

    out = {path: (fn, desc, False, "1", "lam_mteb (core)") for path, (fn, desc) in CORE_DATASETS.items()}
    for path, entry in get_registry().datasets.items():
        out[path] = (entry.builder, entry.description, entry.recreation, entry.version, entry.plugin)
    return out


class Resolution:
    def __init__(self, path: Path | None, looked_for: list[str], recreation: bool = False):
        self.path, self.looked_for, self.recreation = path, looked_for, recreation


def resolve(dataset_path: str, root: Path | None = None, *, quiet: bool = False) -> Resolution:
    """Find (or build) a local copy of ``dataset_path`` under the data dir ``root``."""
    root = root or data_dir()
    if root is None:
        return Resolution(None, [])
    if not root.is_dir():
        raise LamMtebError(f"LAM_MTEB_DATA_DIR={root} is not a directory; point it at your data folder or unset it")
    looked = [str(root / dataset_path)]
    snapshot = root / dataset_path
    if _is_snapshot(snapshot):
        return Resolution(snapshot, looked, (snapshot / RECREATION_MARKER).is_file())
    entry = builders().get(dataset_path)
    if entry is None:
        return Resolution(None, looked)
    builder, description, recreation, version, plugin = entry
    key = hashlib.sha256(f"{dataset_path}|{version}|{plugin}|{root}".encode()).hexdigest()[:10]
    base = cache_dir() / "datasets" / dataset_path.replace("/", "__")
    try:
        fingerprint = _fingerprint_for(builder, root)
        target = base / f"{key}-{fingerprint}"
        if (target / "README.md").is_file():
            return Resolution(target, looked, recreation)
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=base))
        try:
            builder(root, tmp)
            if recreation and not (tmp / RECREATION_MARKER).is_file():
                (tmp / RECREATION_MARKER).write_text(json.dumps({"dataset": dataset_path, "plugin": plugin,
                                                                 "description": description}), encoding="utf-8")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if not quiet:
            sys.stderr.write(f"lam-mteb: built local copy of {dataset_path} from {root} ({description})\n")
        return Resolution(target, looked, recreation)
    except DataNotFound as exc:
        looked.append(str(exc).removeprefix("looked for "))
        return Resolution(None, looked)


def _fingerprint_for(builder, root: Path) -> str:
    # builders read a sub-folder of the data dir; fingerprinting the whole dir is cheap enough
    # only for small dirs, so fingerprint the immediate children named in the builder's docstring
    # when possible, else the whole directory.
    doc = (builder.__doc__ or "")
    parts = [p for p in root.iterdir() if p.name in doc] if root.is_dir() else []
    h = hashlib.sha256()
    for p in sorted(parts) or [root]:
        h.update(_fingerprint(p).encode())
    return h.hexdigest()[:12]


def import_dataset(dataset_path: str, source: Path, out_root: Path, *, force: bool = False) -> Path:
    """``lam-mteb data import``: build ``dataset_path`` from raw files into ``out_root/<dataset_path>``."""
    entry = builders().get(dataset_path)
    if entry is None:
        known = ", ".join(sorted(builders()))
        raise LamMtebError(f"no builder for dataset {dataset_path!r}; known: {known}")
    target = Path(out_root) / dataset_path
    if target.exists() and any(target.iterdir()) and not force:
        raise LamMtebError(f"{target} already exists; refusing to overwrite it (pass --force to rebuild)")
    builder, description, recreation, version, plugin = entry
    Path(out_root).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=Path(out_root)))
    try:
        builder(Path(source), tmp)
        if recreation and not (tmp / RECREATION_MARKER).is_file():
            (tmp / RECREATION_MARKER).write_text(json.dumps({"dataset": dataset_path, "plugin": plugin,
                                                             "description": description}), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
