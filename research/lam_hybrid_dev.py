"""Choose LAM's pooling mix for long documents on held-out data (not a test).

The LongEmbed tasks we report (docs/longembed.md) have only test data, so settings must not be
tuned on them.  This script builds *development* versions that share nothing with the reported
data and sweeps the hybrid weight w in  e = normalise(w * mean + (1 - w) * state)
(w = 1 is lam-mean, w = 0 is lam-state) from ONE streaming pass (``LamEncoder.encode_all``):

- Passkey / Needle re-generated with another seed (``--seed``, default: the task seed + 1): other
  names, keys, needles and positions, at the lengths where MiniLM truncates (default 1024-4096);
- QMSum's *test* meetings (35; the task is built from train + val), queries = their answers.

Metrics as the tasks': accuracy@1 for Passkey/Needle, nDCG@10 for QMSum (one relevant meeting).

    LAM_MTEB_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python research/lam_hybrid_dev.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def scores(split: dict, vecs: dict, w: float, k: int = 10) -> tuple[float, float]:
    """(accuracy@1, nDCG@10) of the mix w for one split {corpus, queries, qrels}."""
    D = normalise(w * vecs["doc_mean"] + (1 - w) * vecs["doc_state"])
    Q = normalise(w * vecs["q_mean"] + (1 - w) * vecs["q_state"])
    ids = [d["_id"] for d in split["corpus"]]
    rel = {r["query-id"]: ids.index(r["corpus-id"]) for r in split["qrels"]}
    sims = Q @ D.T
    acc, ndcg = [], []
    for qi, q in enumerate(split["queries"]):
        target = rel[q["_id"]]
        # rank of the relevant document; ties broken by stored order as mteb does
        s = sims[qi]
        rank = int((s > s[target]).sum() + (s[:target] == s[target]).sum())
        acc.append(float(rank == 0))
        ndcg.append(1.0 / np.log2(rank + 2) if rank < k else 0.0)
    return float(np.mean(acc)), float(np.mean(ndcg))


def main(argv=None) -> int:
    from lam_mteb_plugins.longembed import needle, passkey, qmsum

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", nargs="+", type=int, default=[1024, 2048, 4096])
    p.add_argument("--seed", type=int, default=passkey.DEFAULT_SEED + 1)
    p.add_argument(
        "--weights", default=None, help="LAM checkpoint folder (default: the shipped one)"
    )
    p.add_argument("--grid", nargs="+", type=float, default=[round(0.1 * i, 1) for i in range(11)])
    p.add_argument("--json", default=None, help="also write every number to this file")
    args = p.parse_args(argv)
    data_dir = os.environ.get("LAM_MTEB_DATA_DIR")
    if not data_dir:
        p.error("set LAM_MTEB_DATA_DIR to the folder holding qmsum/ and longtext/")
    if args.seed == passkey.DEFAULT_SEED:
        p.error("--seed must differ from the task seed: this is development data")
    data_dir = Path(data_dir)

    import lam_mteb

    params = {"weights": args.weights} if args.weights else {}
    enc = lam_mteb.get_encoder("lam-mean", **params)
    sets = {}
    for L, split in passkey.generate(args.lengths, seed=args.seed).items():
        sets[f"passkey_{L}"] = split
    for L, split in needle.generate(
        data_dir / needle.ESSAYS_DIR, args.lengths, seed=args.seed
    ).items():
        sets[f"needle_{L}"] = split
    sets["qmsum_test"] = qmsum.build_rows(data_dir / qmsum.QMSUM_DIR, splits=("test",))

    t0 = time.perf_counter()
    vecs = {}
    for name, split in sets.items():
        d = enc.encode_all([x["text"] for x in split["corpus"]])
        q = enc.encode_all([x["text"] for x in split["queries"]])
        vecs[name] = {
            "doc_mean": d["mean"],
            "doc_state": d["state"],
            "q_mean": q["mean"],
            "q_state": q["state"],
        }
        print(
            f"  encoded {name}: {len(split['corpus'])} documents, {len(split['queries'])} queries "
            f"({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    rows = {}
    for w in args.grid:
        row = {}
        for name, split in sets.items():
            acc, ndcg = scores(split, vecs[name], w)
            row[name] = ndcg if name.startswith("qmsum") else acc
        pk = np.mean([v for k, v in row.items() if k.startswith("passkey")])
        nd = np.mean([v for k, v in row.items() if k.startswith("needle")])
        row.update(
            {
                "passkey_avg": pk,
                "needle_avg": nd,
                "objective": float(np.mean([pk, nd, row["qmsum_test"]])),
            }
        )
        rows[w] = row
    cols = [*sets, "passkey_avg", "needle_avg", "objective"]
    print("| w (1 = mean, 0 = state) | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for w, row in rows.items():
        print(f"| {w:.1f} | " + " | ".join(f"{row[c]:.4f}" for c in cols) + " |")
    best = max(rows, key=lambda w: (rows[w]["objective"], -abs(w - 0.5)))
    print(
        "best w by the objective (mean of Passkey acc@1, Needle acc@1, QMSum nDCG@10 on dev): "
        f"{best:.1f}; "
        f"encoding took {time.perf_counter() - t0:.0f} s"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"seed": args.seed, "lengths": args.lengths, "rows": rows, "best": best}, indent=1
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
