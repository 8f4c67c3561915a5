"""The long-context table: main score per context length for Passkey / Needle (with averages) and
QMSum, per model, beside all-MiniLM-L6-v2's published scores, from mteb result files (those of
``lam-mteb run``).  research/long_context.py prints it; docs/longembed.md shows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

# sentence-transformers/all-MiniLM-L6-v2 (revision 8b3219a9) in the MTEB results repository
# (embeddings-benchmark/results @ f4cc6c8b, on the *published* LongEmbed data), copied from
# ../shared/data/reference_scores/mteb_results: a reference only, our data is a re-creation.
PUBLISHED_MINILM: dict[str, dict[Any, float]] = {
    "LEMBPasskeyRetrieval": {
        256: 0.84,
        512: 0.42,
        1024: 0.38,
        2048: 0.08,
        4096: 0.08,
        8192: 0.02,
        16384: 0.02,
        32768: 0.02,
    },
    "LEMBNeedleRetrieval": {
        256: 0.70,
        512: 0.44,
        1024: 0.24,
        2048: 0.12,
        4096: 0.04,
        8192: 0.04,
        16384: 0.00,
        32768: 0.02,
    },
    "LEMBQMSumRetrieval": {"test": 0.16322},
}


def split_scores(result: Any) -> dict[str, float]:
    """TaskResult -> {split: main score} (ndcg_at_1 for the synthetic tasks, ndcg_at_10 QMSum)."""
    out = {}
    for split, entries in result.scores.items():
        out[split] = float(entries[0]["main_score"])
    return out


def _mean(values: list[float | None]) -> float | None:
    """The mean, or None when a value is missing."""
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if len(present) == len(values) else None


def render_table(
    rows: dict[str, dict[str, dict[str, float]]],
    models: list[str],
    times: dict[str, float],
    note: str,
) -> str:
    """Markdown: main score per task, split (lengths in order, their average and the average over
    lengths >= 1024) and model, the published MiniLM score beside, and the time per model."""
    header = ["task", "split", *models, "published MiniLM"]
    lines: list[list[Any]] = []
    for task, splits in rows.items():
        ordered = sorted(splits, key=lambda s: int(s.split("_")[1]) if s.startswith("test_") else 0)
        for split in ordered:
            cells = [splits[split].get(m) for m in models]
            ref = PUBLISHED_MINILM.get(task, {}).get(
                int(split.split("_")[1]) if split.startswith("test_") else split
            )
            lines.append([task, split, *cells, ref])
        if len(ordered) > 1:
            avg = [
                np.mean([splits[s][m] for s in ordered])
                if all(m in splits[s] for s in ordered)
                else None
                for m in models
            ]
            refs = [PUBLISHED_MINILM.get(task, {}).get(int(s.split("_")[1])) for s in ordered]
            lines.append([task, "average", *avg, _mean(refs)])
            long_splits = [s for s in ordered if int(s.split("_")[1]) >= 1024]
            if long_splits and len(long_splits) < len(ordered):
                avg = [
                    np.mean([splits[s][m] for s in long_splits])
                    if all(m in splits[s] for s in long_splits)
                    else None
                    for m in models
                ]
                refs = [
                    PUBLISHED_MINILM.get(task, {}).get(int(s.split("_")[1])) for s in long_splits
                ]
                lines.append([task, "avg >=1024", *avg, _mean(refs)])
    lines.append(["wall time", "seconds", *[times.get(m) for m in models], None])

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        return (
            f"{v:.4f}"
            if isinstance(v, float) and v <= 1.0
            else (f"{v:.0f}" if isinstance(v, float) else str(v))
        )

    table = [header] + [[fmt(c) for c in row] for row in lines]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    out = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(table[0], widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    out += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in table[1:]
    ]
    return "\n".join(out) + "\n" + note


def collect(folder: Path, models: list[str] | None = None) -> tuple[dict, dict[str, float], list]:
    """(rows ``{task: {split: {model: score}}}``, evaluation seconds per model, model names in
    order) of the LEMB* result files under ``folder`` (an mteb ``--output-folder``); ``models``
    keeps only those (lam-mteb names such as ``minilm``, or full mteb names)."""
    from mteb import TaskResult

    rows: dict[str, dict[str, dict[str, float]]] = {}
    times: dict[str, float] = {}
    names: list[str] = []
    root = folder / "results" if (folder / "results").is_dir() else folder
    for path in sorted(root.glob("*/*/LEMB*.json")):
        full = path.parent.parent.name.replace("__", "/", 1)
        meta = path.parent / "model_meta.json"
        if meta.is_file():
            full = json.loads(meta.read_text(encoding="utf-8")).get("name") or full
        name = full.removeprefix("lam-mteb/")
        if models and name not in models and full not in models:
            continue
        result = TaskResult.from_disk(path)
        for split, score in split_scores(result).items():
            rows.setdefault(result.task_name, {}).setdefault(split, {})[name] = score
        times[name] = times.get(name, 0.0) + float(result.evaluation_time or 0.0)
        if name not in names:
            names.append(name)
    order = [m for m in models or [] if m in names] or names
    return rows, times, order
