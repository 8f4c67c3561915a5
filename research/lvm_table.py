"""Print LVMNextVector results (every predictor of every model) as one table per split.

    python research/lvm_table.py results/            # any folder holding mteb result JSONs
    python research/lvm_table.py results/ --split test --markdown

Reads ``**/LVMNextVector.json`` written by ``mteb run -m <model> -t LVMNextVector``.  Baselines
are the same for every model sharing an encoder, so each (encoder fingerprint, predictor) pair
is printed once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COLUMNS = [
    ("cosine_mean", "cos mean"),
    ("cosine_std", "cos std"),
    ("recall_at_1", "R@1"),
    ("recall_at_5", "R@5"),
    ("recall_at_10", "R@10"),
    ("contain_at_50", "Contain@50"),
    ("mrr", "MRR"),
    ("p95_latency_ms", "P95 ms"),
]
ORDER = ["model_predictor", "linear_average", "persistence", "mean_vector", "random"]


def rows_for(folder: Path, split: str) -> list[list]:
    rows, seen = [], set()
    files = [(p, json.loads(p.read_text())) for p in sorted(folder.rglob("LVMNextVector.json"))]
    # baselines are labelled with a plain encoder's name when one was run on the same vectors
    files.sort(
        key=lambda f: any(
            e.get("main_predictor") == "model_predictor"
            for e in f[1].get("scores", {}).get(split, [])
        )
    )
    for path, res in files:
        model = path.parent.parent.name.replace("__", "/")
        for entry in res.get("scores", {}).get(split, []):
            preds = entry.get("predictors", {})
            for name in sorted(preds, key=lambda n: ORDER.index(n) if n in ORDER else 99):
                key = (entry.get("encoder_fingerprint"), name)
                if name != "model_predictor" and key in seen:
                    continue
                seen.add(key)
                label = model if name == "model_predictor" else f"{name} ({model} vectors)"
                m = preds[name]
                rows.append([label, entry.get("n_sequences")] + [m.get(k) for k, _ in COLUMNS])
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--split", action="append", help="split(s) to show (default: dev and test)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    from tabulate import tabulate

    for split in args.split or ["dev", "test"]:
        rows = rows_for(args.folder, split)
        if not rows:
            print(f"no LVMNextVector {split} results under {args.folder}", file=sys.stderr)
            continue
        print(f"\nLVMNextVector, {split} split")
        print(
            tabulate(
                rows,
                headers=["predictor", "queries"] + [h for _, h in COLUMNS],
                floatfmt=".4f",
                tablefmt="github" if args.markdown else "simple",
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
