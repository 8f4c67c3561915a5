"""Choose LAM v2's settings on development data only (not a test).

Dev sets (nothing shared with the reported test re-creations; as benchmarks/lam_hybrid_dev.py):
Passkey and Needle re-generated with another seed (task seed + 1) at other lengths (default
1536 / 3072 / 6144 tokens), QMSum's 35 *test* meetings (LEMBQMSumRetrieval is built from train +
val) with their answers as queries, and STS-B dev.  One streaming pass per checkpoint/chunk size
(``LamV2Encoder.encode_parts``); every pooling and lexical weight is mixed from the same parts.

    LAM_MTEB_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python benchmarks/lam_v2_dev.py \
        --weights plugins/lam_mteb_plugins/lam/weights/v2 --chunk-sizes 256 512 --json dev.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def retrieval(split: dict, D: np.ndarray, Q: np.ndarray, k: int = 10) -> tuple[float, float]:
    ids = [d["_id"] for d in split["corpus"]]
    rel = {r["query-id"]: ids.index(r["corpus-id"]) for r in split["qrels"]}
    sims = Q @ D.T
    acc, ndcg = [], []
    for qi, q in enumerate(split["queries"]):
        t = rel[q["_id"]]
        s = sims[qi]
        rank = int((s > s[t]).sum() + (s[:t] == s[t]).sum())
        acc.append(float(rank == 0))
        ndcg.append(1.0 / np.log2(rank + 2) if rank < k else 0.0)
    return float(np.mean(acc)), float(np.mean(ndcg))


def sts_dev(data_dir: Path):
    from lam_mteb_plugins.lam.distill import read_sts

    return read_sts(data_dir / "stsbenchmark" / "sts-dev.csv")


def main(argv=None) -> int:
    from lam_mteb_plugins.longembed import needle, passkey, qmsum
    from scipy.stats import spearmanr

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", nargs="*", type=int, default=[1536, 3072, 6144],
                   help="Passkey/Needle dev lengths (none: QMSum + STS-B only)")
    p.add_argument("--seed", type=int, default=passkey.DEFAULT_SEED + 1)
    p.add_argument("--weights", default=None, help="LAM v2 checkpoint folder (default: the shipped one)")
    p.add_argument("--chunk-sizes", nargs="+", type=int, default=[256])
    p.add_argument("--grid", nargs="+", type=float, default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    data_dir = os.environ.get("LAM_MTEB_DATA_DIR")
    if not data_dir:
        p.error("set LAM_MTEB_DATA_DIR to the folder holding qmsum/, longtext/ and stsbenchmark/")
    if args.seed == passkey.DEFAULT_SEED:
        p.error("--seed must differ from the task seed: this is development data")
    data_dir = Path(data_dir)
    import torch
    from lam_mteb_plugins.lam.encoder_v2 import LamV2Encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    sets = {}
    for L, split in passkey.generate(args.lengths, seed=args.seed).items():
        sets[f"passkey_{L}"] = split
    for L, split in needle.generate(data_dir / needle.ESSAYS_DIR, args.lengths, seed=args.seed).items():
        sets[f"needle_{L}"] = split
    if not args.lengths:
        sets.clear()
    sets["qmsum_test"] = qmsum.build_rows(data_dir / qmsum.QMSUM_DIR, splits=("test",))
    sts = sts_dev(data_dir)
    report = {"seed": args.seed, "lengths": args.lengths, "weights": args.weights, "runs": {}}
    for cs in args.chunk_sizes:
        enc = LamV2Encoder(weights=args.weights, chunk_size=cs)
        t0 = time.perf_counter()
        parts = {}
        for name, split in sets.items():
            parts[name] = (enc.encode_parts([x["text"] for x in split["corpus"]], state=True),
                           enc.encode_parts([x["text"] for x in split["queries"]], state=True))
            if name != "qmsum_test":  # print as we go: the synthetic sets are slow on a busy CPU
                for w in args.grid:
                    acc, _ = retrieval(split, enc.combine(parts[name][0], w), enc.combine(parts[name][1], w))
                    print(f"    {name} mean/tokens w={w}: acc@1 {acc:.3f}", file=sys.stderr, flush=True)
            print(f"  chunk {cs}: encoded {name} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        s1 = enc.encode_parts([a for a, _, _ in sts], state=True)
        s2 = enc.encode_parts([b for _, b, _ in sts], state=True)
        gold = [g for _, _, g in sts]
        rows = {}
        for pooling, cp in (("mean", "tokens"), ("mean", "windows"), ("state", "tokens")):
            for w in args.grid:
                row = {}
                for name, split in sets.items():
                    D = enc.combine(parts[name][0], w, pooling, cp)
                    Q = enc.combine(parts[name][1], w, pooling, cp)
                    acc, ndcg = retrieval(split, D, Q)
                    row[name] = ndcg if name.startswith("qmsum") else acc
                a, b = enc.combine(s1, w, pooling, cp), enc.combine(s2, w, pooling, cp)
                row["stsb_dev"] = float(spearmanr((a * b).sum(1), gold).correlation)
                for task in ("passkey", "needle"):
                    vals = [v for k, v in row.items() if k.startswith(task)]
                    row[f"{task}_avg"] = float(np.mean(vals)) if vals else float("nan")
                rows[f"{pooling}/{cp}/w={w}"] = row
        report["runs"][cs] = {"rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
        cols = ["qmsum_test", "passkey_avg", "needle_avg", "stsb_dev", *[k for k in sets if k != "qmsum_test"]]
        print(f"\nchunk_size {cs} ({time.perf_counter() - t0:.0f} s)")
        print("| pooling / chunk pooling / lexical w | " + " | ".join(cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for key, row in rows.items():
            print(f"| {key} | " + " | ".join(f"{row[c]:.4f}" for c in cols) + " |", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
