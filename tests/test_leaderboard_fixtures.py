"""Small fabricated mteb results folders for the leaderboard tests (helpers + a self-check)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

LEMB_LENGTH_SPLITS = [f"test_{n}" for n in (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)]


def write_result(
    root: Path,
    model: str,
    revision: str,
    task: str,
    scores: dict[str, float] | float,
    *,
    extra: dict | None = None,
    subset_extra: dict | None = None,
    meta: dict | None = None,
) -> Path:
    """Write ``root/results/<org>__<model>/<revision>/<task>.json`` in mteb 2.x's format.

    ``scores`` is a main score (split "test") or ``{split: main score}``.
    """
    folder = root / "results" / model.replace("/", "__") / revision
    folder.mkdir(parents=True, exist_ok=True)
    if not isinstance(scores, dict):
        scores = {"test": scores}
    data = {
        "dataset_revision": "fabricated",
        "task_name": task,
        "mteb_version": "2.26.24",
        "scores": {
            split: [
                {
                    "main_score": value,
                    "hf_subset": "default",
                    "languages": ["eng-Latn"],
                    **(subset_extra or {}),
                }
            ]
            for split, value in scores.items()
        },
        "evaluation_time": 1.0,
        "kg_co2_emissions": None,
    }
    data.update(extra or {})
    path = folder / f"{task}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    meta_path = folder / "model_meta.json"
    if meta is not None or not meta_path.exists():
        full = {
            "name": model,
            "revision": revision,
            "n_parameters": 1_000_000,
            "embed_dim": 64,
            "max_tokens": 512,
        }
        full.update(meta or {})
        meta_path.write_text(json.dumps(full), encoding="utf-8")
    return path


def tree_digest(root: Path) -> dict[str, str]:
    """path -> sha256 of every file under root (to prove inputs were not modified)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def leaderboard_args(
    results: list[Path],
    out: Path,
    *,
    references: Path | None = None,
    no_references: bool = False,
    recreated: list[str] | None = None,
):
    import argparse

    from lam_mteb.leaderboard import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = []
    for r in results:
        argv += ["--results", str(r)]
    argv += ["--out", str(out)]
    if references is not None:
        argv += ["--references", str(references)]
    if no_references:
        argv.append("--no-references")
    for task in recreated or []:
        argv += ["--recreated", task]
    return parser.parse_args(argv)


def test_fabricated_result_loads_with_mteb(tmp_path):
    mteb = pytest.importorskip("mteb")
    path = write_result(tmp_path, "org/model-a", "rev1", "SciFact", 0.5)
    result = mteb.TaskResult.from_disk(path)
    assert result.task_name == "SciFact"
    assert result.get_score(splits=["test"]) == pytest.approx(0.5)
