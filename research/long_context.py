"""Long-context retrieval, read from `lam-mteb run` results: the per-length table, and accuracy by
where the pass key / needle sits.

The runs themselves are plain `lam-mteb run` (docs/longembed.md, "Benchmark")::

    export LAM_MTEB_DATA_DIR=../shared/data HF_HUB_OFFLINE=1
    lam-mteb run -m minilm lam-mean lam-state lam-hybrid \
        -t LEMBPasskeyRetrieval LEMBNeedleRetrieval LEMBQMSumRetrieval \
        --output-folder results/long_context
    lam-mteb leaderboard --results results/long_context --out results/long_context_board

This script adds what the leaderboard does not show: accuracy@1 (= nDCG@1, mteb's main score) per
context length for Passkey / Needle with their averages, nDCG@10 for QMSum, all-MiniLM-L6-v2's
published scores beside them and the evaluation time per model
(``lam_mteb_plugins.longembed.report``); and, with ``--by-position``, accuracy@1 by the position
of the key / needle in its document (the LAM poolings share one streaming pass,
``lam_mteb_plugins.lam.shared_pass``)::

    python research/long_context.py --results results/long_context [--json table.json]
    python research/long_context.py --by-position --lengths 1024 4096 --models minilm lam-state
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from lam_mteb_plugins.lam.shared_pass import SharedPoolingCache
from lam_mteb_plugins.longembed.report import collect, render_table

LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
MODELS = ("minilm", "lam-mean", "lam-state", "lam-hybrid")
NOTE = (
    "main score: accuracy@1 (nDCG@1) for Passkey/Needle, nDCG@10 for QMSum; data: lam-mteb LOCAL "
    "RE-CREATION (not the published sets; 'published MiniLM' is on the published data); wall "
    "time = mteb's evaluation time summed over the model's result files."
)


def position_analysis(
    models,
    task_keys,
    lengths,
    data_dir: Path,
    buckets: int = 4,
    batch_size: int = 32,
    weights: str | None = None,
    shared: SharedPoolingCache | None = None,
) -> str:
    """acc@1 per model, length and position bucket of the relevant document's key/needle.

    Uses the generators directly (same data as the tasks) and ``lam_mteb.get_encoder``; cosine
    similarity, ties broken by the stored order (as mteb does).  A truncating model can only
    succeed in the first bucket(s); a streaming model that forgets early tokens fails in the
    first ones.
    """
    import lam_mteb
    from lam_mteb_plugins.longembed import needle, passkey

    shared = shared or SharedPoolingCache()
    encoders = {}
    for name in models:
        params = {"weights": weights} if weights and name.startswith("lam") else {}
        enc = lam_mteb.get_encoder(name, **params)
        if not callable(getattr(enc, "encode", None)):
            continue  # a search model (bm25): no vectors to compare here
        if getattr(enc, "pooling", None) is not None:
            shared.wrap(enc, enc.pooling)
        encoders[name] = enc
    lines = [
        "| task | length | model | "
        + " | ".join(
            f"pos {100 * b // buckets}-{100 * (b + 1) // buckets}%" for b in range(buckets)
        )
        + " | all |",
        "|" + "---|" * (buckets + 4),
    ]
    for key in task_keys:
        if key == "passkey":
            data = passkey.generate(lengths=lengths)
            pos_key = "key_position"
        elif key == "needle":
            data = needle.generate(Path(data_dir) / needle.ESSAYS_DIR, lengths=lengths)
            pos_key = "needle_position"
        else:
            continue
        for length, split in sorted(data.items()):
            docs = split["corpus"]
            ids = [d["_id"] for d in docs]
            relevant = {r["query-id"]: ids.index(r["corpus-id"]) for r in split["qrels"]}
            for name, enc in encoders.items():
                if callable(getattr(enc, "similarity", None)):  # e.g. chunked MaxSim (multi-vector)
                    D = enc.encode(
                        [d["text"] for d in docs], batch_size=batch_size, prompt_type="document"
                    )
                    Q = enc.encode(
                        [q["text"] for q in split["queries"]],
                        batch_size=batch_size,
                        prompt_type="query",
                    )
                    top = np.asarray(enc.similarity(Q, D)).argmax(1)
                else:
                    D = np.asarray(
                        enc.encode([d["text"] for d in docs], batch_size=batch_size),
                        dtype=np.float32,
                    )
                    Q = np.asarray(
                        enc.encode([q["text"] for q in split["queries"]], batch_size=batch_size),
                        dtype=np.float32,
                    )
                    D /= np.linalg.norm(D, axis=1, keepdims=True).clip(1e-12)
                    Q /= np.linalg.norm(Q, axis=1, keepdims=True).clip(1e-12)
                    top = (Q @ D.T).argmax(1)
                hits = [[] for _ in range(buckets)]
                for q, t in zip(split["queries"], top, strict=True):
                    rel = relevant[q["_id"]]
                    b = min(buckets - 1, int(buckets * docs[rel][pos_key] / length))
                    hits[b].append(float(t == rel))
                cells = [f"{np.mean(h):.2f} ({len(h)})" if h else "-" for h in hits]
                total = np.mean([x for h in hits for x in h])
                lines.append(
                    f"| {key} | {length} | {name} | " + " | ".join(cells) + f" | {total:.2f} |"
                )
    return "\n".join(lines) + "\n(acc@1 per bucket, number of queries in brackets)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, help="a `lam-mteb run --output-folder`: print its table")
    p.add_argument("--models", nargs="+", default=None, help="default: every model in --results")
    p.add_argument("--json", default=None, help="also write the table's numbers to this JSON file")
    p.add_argument(
        "--by-position",
        action="store_true",
        help="print acc@1 of Passkey/Needle by where the key/needle sits (encodes the full "
        "splits of --lengths)",
    )
    tasks = ["passkey", "needle"]
    p.add_argument("--tasks", nargs="+", default=tasks, choices=tasks)
    p.add_argument("--lengths", nargs="+", type=int, default=list(LENGTHS))
    p.add_argument("--data-dir", default=None, help="default: $LAM_MTEB_DATA_DIR")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--weights", default=None, help="a LAM checkpoint folder for the lam-* models")
    p.add_argument(
        "--vector-cache",
        default=None,
        metavar="DIR",
        help="keep the LAM pass's mean/state vectors in DIR: a rerun re-encodes nothing",
    )
    args = p.parse_args(argv)
    if args.results is None and not args.by_position:
        p.error("give --results DIR and/or --by-position")
    if args.results is not None:
        rows, times, models = collect(args.results, args.models)
        if not rows:
            p.error(f"no LEMB* result files under {args.results}")
        print(render_table(rows, models, times, NOTE), flush=True)
        if args.json:
            Path(args.json).write_text(
                json.dumps({"scores": rows, "evaluation_time_s": times}, indent=2)
            )
    if args.by_position:
        bad = [n for n in args.lengths if n not in LENGTHS]
        if bad:
            p.error(f"--lengths must be among {LENGTHS}, got {bad}")
        if args.data_dir:
            os.environ["LAM_MTEB_DATA_DIR"] = str(Path(args.data_dir).resolve())
        if not os.environ.get("LAM_MTEB_DATA_DIR"):
            p.error("set LAM_MTEB_DATA_DIR (or --data-dir): Needle reads longtext/")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        print(
            position_analysis(
                args.models or list(MODELS),
                args.tasks,
                args.lengths,
                Path(os.environ["LAM_MTEB_DATA_DIR"]),
                batch_size=args.batch_size,
                weights=args.weights,
                shared=SharedPoolingCache(args.vector_cache),
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
