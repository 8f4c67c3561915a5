"""Write the published results tables from result files into markdown files, between markers.

Every cell is read from ``<results>/results/lam-mteb__<model>/<revision>/<Task>.json`` (mteb's
layout) at the model's *current* revision (the registry's content hash of its kind, params and
weights), so a table can only show numbers of the code and weights that produce them now; a
missing file is shown as "–" and listed on stderr.

    python scripts/results_table.py            # every table listed in results/tables.yaml
    python scripts/results_table.py --check    # exit 1 if a published table differs from files
    python scripts/results_table.py --write docs/lam.md:lam-state-table \\
        --models minilm bm25 lam-state --tasks STSBenchmark SciFact LEMBQMSumRetrieval

The markers in the target file are ``<!-- results-table: NAME -->`` and ``<!-- /results-table -->``.
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


def main_score(path: Path) -> float | None:
    """The task's main score: test split, averaged over its subsets / length splits."""
    data = json.loads(path.read_text())
    scores = data.get("scores", {})
    splits = [s for s in scores if s == "test" or s.startswith("test_")]
    values = [float(entry["main_score"]) for s in splits for entry in scores[s]]
    return sum(values) / len(values) if values else None


def table(
    results: Path, models: list[str], tasks: list[str], na: frozenset = frozenset()
) -> tuple[str, list[str]]:
    """The markdown table and the result files it lacks; ``na``: (model, task) pairs that cannot
    run (a search model on STS), shown as "n/a"."""
    from lam_mteb import plugins

    registry = plugins.get_registry()
    rows, missing = [], []
    cells: dict[tuple[str, str], float | None] = {}
    for model in models:
        config = registry.model(model)
        folder = results / "results" / f"{config.org}__{config.name}" / config.revision
        for task in tasks:
            path = folder / f"{task}.json"
            value = main_score(path) if path.is_file() else None
            if value is None and (model, task) not in na:
                missing.append(str(path))
            cells[(model, task)] = value
    best = {
        t: max((v for (m, tt), v in cells.items() if tt == t and v is not None), default=None)
        for t in tasks
    }
    head = "| model | " + " | ".join(LABELS.get(t, t) for t in tasks) + " |"
    rows = [head, "|---" * (len(tasks) + 1) + "|"]
    for model in models:
        out = []
        for task in tasks:
            v = cells[(model, task)]
            text = ("n/a" if (model, task) in na else "–") if v is None else f"{v:.4f}"
            out.append(f"**{text}**" if v is not None and v == best[task] else text)
        rows.append(f"| `{model}` | " + " | ".join(out) + " |")
    return "\n".join(rows) + "\n", missing


def update(
    path: Path,
    name: str,
    results: Path,
    models: list[str],
    tasks: list[str],
    check: bool,
    na: frozenset = frozenset(),
) -> bool:
    """Write (or with ``check`` compare) one table; True when the file is (or was) up to date."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(
        rf"(<!-- results-table: {re.escape(name)} -->\n)(.*?)(<!-- /results-table -->)", re.S
    )
    if not pattern.search(text):
        raise SystemExit(f"error: {path} has no '<!-- results-table: {name} -->' markers")
    new, missing = table(results, models, tasks, na)
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
    ok = [
        update(
            Path(t["file"]),
            t["name"],
            args.results,
            t["models"],
            t["tasks"],
            args.check,
            frozenset(tuple(pair) for pair in t.get("not_applicable", [])),
        )
        for t in specs
    ]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
