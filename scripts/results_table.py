"""Write the published results tables from result files into markdown files, between markers.

Every cell is read from ``<results>/results/lam-mteb__<model>/<revision>/<Task>.json`` (mteb's
layout) at the model's *current* revision (the registry's content hash of its kind, params and
weights), so a table can only show numbers of the code and weights that produce them now; a
missing file is shown as "–" and listed on stderr.

    python scripts/results_table.py            # every table listed in results/tables.yaml
    python scripts/results_table.py --check    # exit 1 if a published table differs from files
    python scripts/results_table.py --write docs/lam.md:lam-state-table \\
        --models minilm bm25 lam-state --tasks STSBenchmark SciFact LEMBQMSumRetrieval

A table lists models by tasks (``tasks:``, each cell the task's main score over its test splits);
with ``by_split: TASK``, one task by its test splits (a column per split, e.g. Passkey's eight
lengths, and their mean); with ``predictors: TASK``, a task that scores reference predictors beside
the model (LVMNextVector): a row per model's own predictor and per baseline, a column per metric.
A file that lacks one of the task's evaluation splits counts as missing, so no mean is over fewer
splits than the task has.  The markers in the target file are ``<!-- results-table: NAME -->`` and
``<!-- /results-table -->``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

LABELS = {
    "STSBenchmark": "STS-B (cos. Spearman)",
    "SciFact": "SciFact (nDCG@10)",
    "LEMBQMSumRetrieval": "QMSum† (nDCG@10)",
    "LEMBPasskeyRetrieval": "Passkey† (acc@1, 8 lengths)",
    "LEMBNeedleRetrieval": "Needle† (acc@1, 8 lengths)",
}


def eval_splits(task: str) -> list[str]:
    """The task's test splits as mteb defines them (``test``, or Passkey's ``test_256`` …)."""
    import mteb

    splits = mteb.get_task(task).metadata.eval_splits
    return [s for s in splits if s == "test" or s.startswith("test_")]


def split_scores(path: Path, splits: list[str]) -> dict[str, float] | None:
    """Main score per split (averaged over subsets); None when the file lacks one of ``splits``."""
    scores = json.loads(path.read_text()).get("scores", {})
    if any(not scores.get(s) for s in splits):
        return None
    return {s: sum(float(e["main_score"]) for e in scores[s]) / len(scores[s]) for s in splits}


def split_label(split: str) -> str:
    return split.removeprefix("test_") if split != "test" else split


def table(
    results: Path,
    models: list[str],
    tasks: list[str],
    na: frozenset = frozenset(),
    by_split: str | None = None,
) -> tuple[str, list[str]]:
    """The markdown table and the result files it lacks; ``na``: (model, task) pairs that cannot
    run (a search model on STS), shown as "n/a".  With ``by_split`` the columns are that task's
    test splits and their mean (``tasks`` is ignored)."""
    from lam_mteb import plugins

    registry = plugins.get_registry()
    rows, missing = [], []
    cells: dict[tuple[str, str], float | None] = {}
    splits = eval_splits(by_split) if by_split else []
    columns = [*splits, "mean"] if by_split else tasks
    for model in models:
        config = registry.model(model)
        folder = results / "results" / f"{config.org}__{config.name}" / config.revision
        for task in [by_split] if by_split else tasks:
            path = folder / f"{task}.json"
            task_splits = splits or eval_splits(task)
            per_split = split_scores(path, task_splits) if path.is_file() else None
            if per_split is None and (model, task) not in na:
                missing.append(str(path) + (" (lacks a split)" if path.is_file() else ""))
            mean = sum(per_split.values()) / len(per_split) if per_split else None
            if by_split:
                for split in splits:
                    cells[(model, split)] = per_split[split] if per_split else None
                cells[(model, "mean")] = mean
            else:
                cells[(model, task)] = mean
    best = {
        t: max((v for (m, tt), v in cells.items() if tt == t and v is not None), default=None)
        for t in columns
    }
    labels = [split_label(c) for c in columns] if by_split else [LABELS.get(t, t) for t in tasks]
    rows = ["| model | " + " | ".join(labels) + " |", "|---" * (len(columns) + 1) + "|"]
    digits = 2 if by_split else 4  # a split of Passkey/Needle is 50 queries: 0.02 steps
    for model in models:
        out = []
        for task in columns:
            v = cells[(model, task)]
            places = 4 if task == "mean" else digits
            text = ("n/a" if (model, task) in na else "–") if v is None else f"{v:.{places}f}"
            out.append(f"**{text}**" if v is not None and v == best[task] else text)
        rows.append(f"| `{model}` | " + " | ".join(out) + " |")
    return "\n".join(rows) + "\n", missing


PREDICTOR_COLUMNS = [
    ("cosine_mean", "cos mean"),
    ("cosine_std", "cos std"),
    ("recall_at_1", "R@1"),
    ("recall_at_5", "R@5"),
    ("recall_at_10", "R@10"),
    ("contain_at_50", "Contain@50"),
    ("mrr", "MRR"),
    ("p95_latency_ms", "P95 ms"),
]
BASELINE_ORDER = ["linear_average", "persistence", "mean_vector", "random"]


def predictor_table(results: Path, models: list[str], task: str) -> tuple[str, list[str]]:
    """A task that scores reference predictors beside the model (LVMNextVector), test split: one
    row per model's own predictor, then the baselines of the last model's run."""
    from lam_mteb import plugins

    registry = plugins.get_registry()
    rows: list[tuple[str, dict]] = []
    missing: list[str] = []
    baselines: dict[str, dict] = {}
    owner = models[-1]
    for model in models:
        config = registry.model(model)
        path = results / "results" / f"{config.org}__{config.name}" / config.revision
        path = path / f"{task}.json"
        entries = (
            json.loads(path.read_text()).get("scores", {}).get("test", []) if path.is_file() else []
        )
        if not entries:
            missing.append(str(path))
            rows += [] if model == owner else [(f"`{model}`", {})]
            continue
        predictors = entries[0].get("predictors", {})
        if "model_predictor" in predictors:
            rows.append((f"`{model}`", predictors["model_predictor"]))
        if model == owner:
            baselines = {
                b: predictors[b] for b in entries[0].get("baselines", []) if b in predictors
            }
    for name in sorted(baselines, key=lambda b: (BASELINE_ORDER + [b]).index(b)):
        rows.append((f"{name.replace('_', ' ')} (baseline, `{owner}` vectors)", baselines[name]))
    lines = [
        "| predictor | " + " | ".join(h for _, h in PREDICTOR_COLUMNS) + " |",
        "|---" * (len(PREDICTOR_COLUMNS) + 1) + "|",
    ]
    for label, metrics in rows:
        cells = [
            "–"
            if metrics.get(k) is None
            else (f"{metrics[k]:.3g}" if k.endswith("_ms") else f"{metrics[k]:.4f}")
            for k, _ in PREDICTOR_COLUMNS
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", missing


def update(path: Path, name: str, results: Path, spec: dict, check: bool) -> bool:
    """Write (or with ``check`` compare) one table; True when the file is (or was) up to date."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(
        rf"(<!-- results-table: {re.escape(name)} -->\n)(.*?)(<!-- /results-table -->)", re.S
    )
    if not pattern.search(text):
        raise SystemExit(f"error: {path} has no '<!-- results-table: {name} -->' markers")
    if spec.get("predictors"):
        new, missing = predictor_table(results, spec["models"], spec["predictors"])
    else:
        na = frozenset(tuple(pair) for pair in spec.get("not_applicable", []))
        new, missing = table(
            results, spec["models"], spec.get("tasks", []), na, spec.get("by_split")
        )
    for m in missing:
        print(f"no result file: {m}", file=sys.stderr)
    updated = pattern.sub(lambda m: m.group(1) + new + m.group(3), text)
    if check:
        if updated != text:
            print(f"{path}: table {name!r} is out of date with {results}", file=sys.stderr)
        return updated == text
    path.write_text(updated, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    import yaml

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--models", nargs="+")
    p.add_argument("--tasks", nargs="+")
    p.add_argument("--write", help="FILE:NAME (the markers' name); default: results/tables.yaml")
    p.add_argument("--check", action="store_true", help="compare instead of writing")
    args = p.parse_args(argv)
    if args.write:
        if not (args.models and args.tasks):
            p.error("--write needs --models and --tasks")
        target, _, name = args.write.partition(":")
        specs = [{"file": target, "name": name, "models": args.models, "tasks": args.tasks}]
    else:
        specs = yaml.safe_load((args.results / "tables.yaml").read_text())["tables"]
    ok = [update(Path(t["file"]), t["name"], args.results, t, args.check) for t in specs]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
