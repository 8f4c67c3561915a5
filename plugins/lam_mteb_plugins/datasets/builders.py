"""Raw release files -> local copies of mteb's Hugging Face datasets (``datasets.load_dataset``
reads them offline).  A malformed row is one error naming the file and line."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

from lam_mteb import DataNotFound, LamMtebError
from lam_mteb.data import text_lines, write_hf_dataset

STSB_FILES = {"train": "sts-train.csv", "validation": "sts-dev.csv", "test": "sts-test.csv"}


def build_stsbenchmark(source_dir: Path, target_dir: Path) -> None:
    """STS Benchmark release files ``stsbenchmark/sts-{train,dev,test}.csv`` ->
    mteb/stsbenchmark-sts."""
    folder = Path(source_dir) / "stsbenchmark"
    if not (folder / STSB_FILES["test"]).is_file():
        raise DataNotFound(
            f"looked for {folder / STSB_FILES['test']} (STS Benchmark release, tab-separated)"
        )
    splits: dict[str, Iterable[dict]] = {}
    for split, name in STSB_FILES.items():
        path = folder / name
        if path.is_file():
            splits[split] = _stsb_rows(path)
    write_hf_dataset(
        target_dir,
        {"default": splits},
        card="STS Benchmark imported from the original release by lam-mteb.",
    )


def _stsb_rows(path: Path) -> list[dict]:
    rows = []
    for lineno, line in text_lines(path):
        cols = line.rstrip("\r\n").split("\t")
        if len(cols) < 7:
            raise LamMtebError(
                f"{path}:{lineno}: expected >= 7 tab-separated columns, got {len(cols)}; "
                "is this the STS Benchmark release file?"
            )
        try:
            score = float(cols[4])
        except ValueError:
            score = math.nan
        if not 0.0 <= score <= 5.0:
            raise LamMtebError(
                f"{path}:{lineno}: score (column 5) is {cols[4][:40]!r}, not a number from 0 to 5; "
                "fix or remove the row"
            )
        rows.append({"sentence1": cols[5], "sentence2": cols[6], "score": score})
    if not rows:
        raise LamMtebError(
            f"{path}: no rows (the file is empty); restore the STS Benchmark release file"
        )
    return rows


def build_scifact(source_dir: Path, target_dir: Path) -> None:
    """SciFact in BEIR layout (``scifact/corpus.jsonl``, ``queries.jsonl``, ``qrels/*.tsv``) ->
    mteb/scifact."""
    folder = Path(source_dir) / "scifact"
    needed = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / "test.tsv"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise DataNotFound(f"looked for {', '.join(missing)} (SciFact in BEIR layout)")
    write_beir(folder, target_dir)


def write_beir(folder: Path, target: Path) -> None:
    """Convert any BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) for mteb."""
    qrels: dict[str, Iterable[dict]] = {
        tsv.stem: _qrels_rows(tsv) for tsv in sorted((folder / "qrels").glob("*.tsv"))
    }
    corpus = list(_beir_jsonl(folder / "corpus.jsonl", ["_id", "title", "text"]))
    queries = list(_beir_jsonl(folder / "queries.jsonl", ["_id", "text"]))
    write_hf_dataset(
        target,
        {"corpus": {"corpus": corpus}, "queries": {"queries": queries}, "default": qrels},
        card=f"BEIR-layout data imported by lam-mteb from {folder.name}/.",
    )


def _beir_jsonl(path: Path, keys: list[str]) -> Iterator[dict]:
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LamMtebError(
                f"{path}:{lineno}: invalid JSON ({exc.msg}); fix or remove the row"
            ) from None
        if not isinstance(obj, dict) or not str(obj.get("_id", "") or ""):
            raise LamMtebError(
                f'{path}:{lineno}: expected a JSON object with an "_id"; fix or remove the row'
            )
        yield {k: str(obj.get(k, "") or "") for k in keys}


def _qrels_rows(tsv: Path) -> list[dict]:
    rows = []
    for lineno, line in text_lines(tsv):
        cols = [c.strip() for c in next(csv.reader([line.rstrip("\r\n")], delimiter="\t"), [])]
        if not any(cols) or (lineno == 1 and cols[0] == "query-id"):
            continue
        try:
            rows.append({"query-id": cols[0], "corpus-id": cols[1], "score": int(float(cols[2]))})
        except (IndexError, ValueError):
            raise LamMtebError(
                f"{tsv}:{lineno}: expected query-id, corpus-id and an integer score separated by "
                "tabs; fix or remove the row"
            ) from None
    return rows
