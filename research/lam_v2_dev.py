"""Choose LAM v2's settings on development data only (not a test).

Dev sets (nothing shared with the reported test sets):
- Passkey and Needle re-generated with another seed (task seed + 1) at other lengths (default 1536);
- QMSum's 35 *test* meetings (LEMBQMSumRetrieval is built from train + val) with their answers as
  queries;
- SciFact **train** queries (809) against the SciFact corpus (the test queries are never read);
- STS-B dev.

One streaming pass per checkpoint/chunk size (``LamV2Encoder.encode_parts``, dense parts; with
``LAM_MTEB_LAM2_CACHE`` they are reused); the lexical vectors depend on the text only and are
cheap, so every lexical variant (vectors, dimension, tf weighting) and weight is mixed from the same
parts.  Prints one table per chunk size and writes every row to ``--json``.

    LAM_MTEB_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python research/lam_v2_dev.py \\
        --json research/lam_v2_dev.json

Selection rule (docs/lam.md): ``lexical_weight`` (symmetric tasks) = the STS-B dev optimum;
``retrieval_lexical_weight`` = the weight with the best mean of QMSum dev nDCG@10 and SciFact train
nDCG@10 (the two real retrieval sets; the synthetic Passkey/Needle are reported, not optimised).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = (
    ("hashed", 2048, "log"),
    ("hashed", 1024, "log"),
    ("hashed", 4096, "log"),
    ("hashed", 2048, "binary"),
    ("hashed", 2048, "raw"),
    ("minilm", 384, "raw"),
    ("minilm", 384, "log"),
)


def retrieval(split: dict, D: np.ndarray, Q: np.ndarray, k: int = 10) -> tuple[float, float]:
    """(acc@1, nDCG@10) of queries against the corpus; qrels may give several relevant documents."""
    index = {d["_id"]: i for i, d in enumerate(split["corpus"])}
    rel: dict[str, set[int]] = {}
    for r in split["qrels"]:
        if r["corpus-id"] in index:
            rel.setdefault(r["query-id"], set()).add(index[r["corpus-id"]])
    sims = Q @ D.T
    acc, ndcg = [], []
    for qi, q in enumerate(split["queries"]):
        good = rel.get(q["_id"])
        if not good:
            continue
        order = np.argsort(-sims[qi], kind="stable")[:k]
        gains = [1.0 / np.log2(r + 2) for r, d in enumerate(order) if d in good]
        ideal = sum(1.0 / np.log2(r + 2) for r in range(min(len(good), k)))
        acc.append(float(order[0] in good))
        ndcg.append(sum(gains) / ideal)
    return float(np.mean(acc)), float(np.mean(ndcg))


def sts_dev(data_dir: Path):
    from lam_mteb_plugins.lam.distill import read_sts

    return read_sts(data_dir / "stsbenchmark" / "sts-dev.csv")


def scifact_train(data_dir: Path) -> dict:
    """SciFact corpus + train queries/qrels (BEIR layout), as the dev sets' dict."""
    folder = data_dir / "scifact"
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open()]
    for d in corpus:
        d["text"] = (d.get("title", "") + " " + d.get("text", "")).strip()
    qrels = []
    for line in (folder / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0:
            qrels.append({"query-id": qid, "corpus-id": did})
    wanted = {r["query-id"] for r in qrels}
    queries = [q for q in map(json.loads, (folder / "queries.jsonl").open()) if q["_id"] in wanted]
    return {"corpus": corpus, "queries": queries, "qrels": qrels}


def dev_sets(data_dir: Path, lengths: list[int], seed: int) -> dict:
    from lam_mteb_plugins.longembed import needle, passkey, qmsum

    sets = {}
    if lengths:
        for L, split in passkey.generate(lengths, seed=seed).items():
            sets[f"passkey_{L}"] = split
        for L, split in needle.generate(data_dir / needle.ESSAYS_DIR, lengths, seed=seed).items():
            sets[f"needle_{L}"] = split
    sets["qmsum_test"] = qmsum.build_rows(data_dir / qmsum.QMSUM_DIR, splits=("test",))
    if (data_dir / "scifact" / "qrels" / "train.tsv").is_file():
        sets["scifact_train"] = scifact_train(data_dir)
    return sets


def main(argv=None) -> int:
    from scipy.stats import spearmanr

    from lam_mteb_plugins.longembed import passkey

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--lengths",
        nargs="*",
        type=int,
        default=[1536],
        help="Passkey/Needle dev lengths (none: QMSum, SciFact train and STS-B only)",
    )
    p.add_argument("--seed", type=int, default=passkey.DEFAULT_SEED + 1)
    p.add_argument(
        "--weights", default=None, help="LAM v2 checkpoint folder (default: the shipped one)"
    )
    p.add_argument("--chunk-sizes", nargs="+", type=int, default=[256])
    p.add_argument(
        "--grid",
        nargs="+",
        type=float,
        default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    data_dir = os.environ.get("LAM_MTEB_DATA_DIR")
    if not data_dir:
        p.error(
            "set LAM_MTEB_DATA_DIR to the folder holding qmsum/, scifact/, longtext/ "
            "and stsbenchmark/"
        )
    if args.seed == passkey.DEFAULT_SEED:
        p.error("--seed must differ from the task seed: this is development data")
    data_dir = Path(data_dir)
    import torch

    from lam_mteb_plugins.lam.encoder_v2 import LamV2Encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    sets = dev_sets(data_dir, args.lengths, args.seed)
    sts = sts_dev(data_dir)
    gold = [g for _, _, g in sts]
    report = {"seed": args.seed, "lengths": args.lengths, "weights": args.weights, "runs": {}}
    for cs in args.chunk_sizes:
        t0 = time.perf_counter()
        dense_enc = LamV2Encoder(weights=args.weights, chunk_size=cs)
        texts = {
            name: ([x["text"] for x in s["corpus"]], [x["text"] for x in s["queries"]])
            for name, s in sets.items()
        }
        texts["stsb_dev"] = ([a for a, _, _ in sts], [b for _, b, _ in sts])
        parts = {}
        for name, (docs, queries) in texts.items():
            parts[name] = (
                dense_enc.encode_parts(docs, show_progress_bar=True),
                dense_enc.encode_parts(queries),
            )
            print(
                f"  chunk {cs}: encoded {name} ({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        rows = []
        for vectors, dim, tf in VARIANTS:
            enc = LamV2Encoder(
                weights=args.weights,
                chunk_size=cs,
                lexical_weight=1.0,
                lexical_vectors=vectors,
                lexical_dim=max(dim, 16),
                lexical_tf=tf,
                model=dense_enc.model,
            )
            lex = {name: (enc.lexical(d), enc.lexical(q)) for name, (d, q) in texts.items()}
            for w in args.grid:
                row = {"vectors": vectors, "dim": dim, "tf": tf, "w": w}
                for name, split in sets.items():
                    D = enc.combine(parts[name][0], lex[name][0], w)
                    Q = enc.combine(parts[name][1], lex[name][1], w)
                    acc, ndcg = retrieval(split, D, Q)
                    row[name] = acc if name.startswith(("passkey", "needle")) else ndcg
                a = enc.combine(parts["stsb_dev"][0], lex["stsb_dev"][0], w)
                b = enc.combine(parts["stsb_dev"][1], lex["stsb_dev"][1], w)
                row["stsb_dev"] = float(spearmanr((a * b).sum(1), gold).correlation)
                rows.append(row)
        report["runs"][cs] = {"rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
        cols = [c for c in rows[0] if c not in ("vectors", "dim", "tf", "w")]
        print(
            f"\nchunk_size {cs} ({time.perf_counter() - t0:.0f} s); passkey/needle: acc@1, "
            "qmsum/scifact: nDCG@10, stsb: cosine Spearman"
        )
        print("| lexical vectors / dim / tf | w | " + " | ".join(cols) + " |")
        print("|---" * (len(cols) + 2) + "|")
        for row in rows:
            print(
                f"| {row['vectors']} / {row['dim']} / {row['tf']} | {row['w']:.1f} | "
                + " | ".join(f"{row[c]:.4f}" for c in cols)
                + " |",
                flush=True,
            )
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
