"""Choose LAM's document state and the lexical wrapper's settings on development data only.

Dev sets (nothing shared with the reported test sets):
- QMSum's 35 *test* meetings (LEMBQMSumRetrieval is built from train + val) with their answers as
  queries;
- SciFact **train** queries (809) against the SciFact corpus (the test queries are never read);
- STS-B dev (the symmetric weight).

One LAM v2 streaming pass per set keeps every window's vector (``slots`` larger than any document's
window count: the state then holds each window in its own slot, exactly); every state size ``K``
is then written from those windows with ``slots.SlotMemory`` (the encoder's own write), and every
lexical variant is computed from the texts.  Prints the tables and writes every row to ``--json``.

    LAM_MTEB_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 python research/lam_state_dev.py \\
        --json research/lam_state_dev.json

Selection rule: the dense state (K, temperature) and the lexical block (dim, k1, b, avgdl) by the
mean of QMSum dev and SciFact train nDCG@10; the retrieval weight of each wrapped model likewise;
the symmetric weight by STS-B dev cosine Spearman.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def ndcg10(sims: np.ndarray, split: dict) -> float:
    index = {d["_id"]: i for i, d in enumerate(split["corpus"])}
    rel: dict[str, set[int]] = {}
    for r in split["qrels"]:
        if r["corpus-id"] in index:
            rel.setdefault(r["query-id"], set()).add(index[r["corpus-id"]])
    out = []
    for qi, q in enumerate(split["queries"]):
        good = rel.get(q["_id"])
        if not good:
            continue
        order = np.argsort(-sims[qi], kind="stable")[:10]
        gain = sum(1.0 / np.log2(r + 2) for r, d in enumerate(order) if d in good)
        out.append(gain / sum(1.0 / np.log2(r + 2) for r in range(min(len(good), 10))))
    return float(np.mean(out))


def read_sts(path: Path) -> list[tuple[str, str, float]]:
    import csv

    out = []
    with path.open(encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 7:
                out.append((row[5], row[6], float(row[4])))
    return out


def scifact_train(data_dir: Path) -> dict:
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


def windows(enc, texts: list[str], max_windows: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Every window vector of every text (unit norm), and the texts' mean vectors."""
    enc.slots = max_windows
    parts = enc.encode_parts(texts, show_progress_bar=True)
    S = parts["slots"].reshape(len(texts), max_windows, -1)
    n = parts["counts"]
    if (n.sum(1) > (n > 0).sum(1)).any():
        raise SystemExit(f"a text has more than {max_windows} windows: raise max_windows")
    wins = [S[i, : int((n[i] > 0).sum())] for i in range(len(texts))]
    return wins, parts["mean"]


def states(wins: list[np.ndarray], K: int) -> tuple[torch.Tensor, torch.Tensor]:
    from lam_mteb_plugins.lam.v2.slots import SlotMemory

    mem = SlotMemory(len(wins), K, wins[0].shape[1])
    for t in range(max(len(w) for w in wins)):
        rows = [r for r, w in enumerate(wins) if t < len(w)]
        mem.write(torch.tensor(rows), torch.as_tensor(np.stack([wins[r][t] for r in rows])))
    return mem.S, mem.n


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.clip(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12, None)


def lexical_scores(split: dict, bm) -> np.ndarray:
    Q = bm.encode([q["text"] for q in split["queries"]], "query")
    out = np.zeros((len(Q), len(split["corpus"])), dtype=np.float32)
    texts = [d["text"] for d in split["corpus"]]
    for s in range(0, len(texts), 512):
        out[:, s : s + 512] = Q @ bm.encode(texts[s : s + 512], "document").T
    return out


def dense_rows(sets: dict, K_grid, tau_grid) -> tuple[list[dict], dict]:
    from lam_mteb_plugins.lam.v2.slots import read

    rows, scores = [], {}
    for name, s in sets.items():
        scores[(name, "mean")] = unit(s["q"]) @ unit(s["mean"]).T
        rows.append({"set": name, "model": "mean", "ndcg10": ndcg10(scores[(name, "mean")], s)})
    for K in K_grid:
        st = {name: states(s["wins"], K) for name, s in sets.items()}
        for tau in tau_grid:
            for name, s in sets.items():
                q = torch.as_tensor(unit(s["q"]))
                sc = read(q, st[name][0], st[name][1], tau).numpy()
                scores[(name, f"state K={K} tau={tau}")] = sc
                rows.append(
                    {"set": name, "model": f"state K={K} tau={tau}", "ndcg10": ndcg10(sc, s)}
                )
                print(rows[-1], flush=True)
    return rows, scores


def bm25_parts(split: dict) -> tuple:
    """Word-piece counts of the corpus and the queries (sparse), once per set."""
    from scipy import sparse

    from lam_mteb_plugins.baselines.lexical import term_counts, wordpiece_tokenizer

    V = wordpiece_tokenizer().get_vocab_size()

    def matrix(texts: list[str]) -> tuple:
        counts = term_counts(texts)
        rows = np.concatenate([np.full(len(c[0]), i) for i, c in enumerate(counts)])
        cols = np.concatenate([c[0] for c in counts])
        vals = np.concatenate([c[1] for c in counts])
        lengths = np.array([c[2] for c in counts], dtype=np.float32)
        return sparse.csr_matrix((vals, (rows, cols)), shape=(len(texts), V)), lengths

    return matrix([d["text"] for d in split["corpus"]]), matrix(
        [q["text"] for q in split["queries"]]
    )


def exact_scores(parts: tuple, bm) -> np.ndarray:
    """Normalised BM25 (what the hashed block's dot product estimates), without hashing."""
    (D, dlen), (Q, _) = parts
    D = D.tocoo()
    norm = bm.k1 * (1.0 - bm.b + bm.b * dlen[D.row] / bm.avgdl)
    from scipy import sparse

    sat = sparse.csr_matrix((D.data / (D.data + norm), (D.row, D.col)), shape=D.shape)
    Qb = (Q > 0).astype(np.float32).multiply(bm.idf[None, :]).tocsr()
    total = np.asarray(Qb.sum(1)).ravel()
    return np.asarray((Qb @ sat.T).todense()) / np.clip(total, 1e-12, None)[:, None]


def fused(row: dict, sets: dict, scores: dict, lex: dict, model: str, w: float) -> dict:
    for name, s in sets.items():
        row[name] = ndcg10((1 - w) * scores[(name, model)] + w * lex[name], s)
    row["mean"] = float(np.mean([row[name] for name in sets]))
    return row


def lexical_rows(sets: dict, scores: dict, sts: tuple, dense_models: list[str]) -> list[dict]:
    """The lexical block's settings (exact BM25 ranking: no hashing) and each model's fusion
    weight on the dev sets; then the hashing dimension at the chosen settings, and the symmetric
    weight on STS-B dev."""
    from scipy.stats import spearmanr

    from lam_mteb_plugins.baselines.lexical import HashedBM25

    parts = {name: bm25_parts(s) for name, s in sets.items()}
    rows: list[dict] = []
    weights = [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    best: dict | None = None
    for k1 in (0.9, 1.2, 1.5):
        for b in (0.3, 0.5, 0.75):
            for avgdl in (256.0, 1024.0, 4096.0):
                bm = HashedBM25(dim=16, k1=k1, b=b, avgdl=avgdl)
                lex = {name: exact_scores(parts[name], bm) for name in sets}
                for model in dense_models:
                    for w in weights:
                        row = {"k1": k1, "b": b, "avgdl": avgdl, "dim": "exact", "model": model}
                        rows.append(fused({**row, "w": w}, sets, scores, lex, model, w))
                        if model == dense_models[0] and (
                            best is None or rows[-1]["mean"] > best["mean"]
                        ):
                            best = rows[-1]
                print(f"k1 {k1} b {b} avgdl {avgdl}: best so far {best}", flush=True)
    assert best is not None
    for dim in (8192, 16384, 32768):
        bm = HashedBM25(dim=dim, k1=best["k1"], b=best["b"], avgdl=best["avgdl"])
        lex = {name: lexical_scores(s, bm) for name, s in sets.items()}
        for model in dense_models:
            for w in weights:
                row = {"k1": bm.k1, "b": bm.b, "avgdl": bm.avgdl, "dim": dim, "model": model}
                rows.append(fused({**row, "w": w}, sets, scores, lex, model, w))
        a = bm.encode([x for x, _, _ in sts[0]], None)
        c = bm.encode([y for _, y, _ in sts[0]], None)
        dense = (unit(sts[1]) * unit(sts[2])).sum(1)
        lexcos = (a * c).sum(1)
        for w in weights:
            rho = spearmanr((1 - w) * dense + w * lexcos, [g for _, _, g in sts[0]]).correlation
            rows.append({"dim": dim, "model": "sts", "w": w, "stsb_dev": float(rho)})
        print(f"dim {dim} done", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", default=None)
    p.add_argument("--slots", nargs="+", type=int, default=[8, 16, 32, 64])
    p.add_argument("--temperatures", nargs="+", type=float, default=[0.02, 0.05, 0.1])
    p.add_argument("--stage", choices=("dense", "lexical"), default="dense")
    p.add_argument("--models", nargs="+", default=["mean", "state K=32 tau=0.05"])
    p.add_argument("--hybrid-models", nargs="*", default=[])
    args = p.parse_args(argv)
    data_dir = Path(os.environ.get("LAM_MTEB_DATA_DIR", ""))
    if not (data_dir / "qmsum").is_dir():
        p.error("set LAM_MTEB_DATA_DIR to the folder holding qmsum/, scifact/ and stsbenchmark/")
    import pickle

    from lam_mteb_plugins.lam.v2.encoder import LamV2Encoder
    from lam_mteb_plugins.longembed import qmsum

    cache = Path(os.environ.get("LAM_STATE_DEV_CACHE", "/tmp/lam_state_dev.pkl"))
    if args.stage == "lexical":
        with cache.open("rb") as f:
            saved = pickle.load(f)
        sts = read_sts(data_dir / "stsbenchmark" / "sts-dev.csv")
        enc = LamV2Encoder(pooling="mean")
        sts_vecs = (sts, enc.encode([a for a, _, _ in sts]), enc.encode([b for _, b, _ in sts]))
        scores = saved["scores"]
        for state in [m for m in args.models if m.startswith("state")]:
            for a in (0.25, 0.5, 0.75):
                for name in saved["sets"]:
                    scores[(name, f"hybrid {a} {state}")] = (
                        a * scores[(name, "mean")] + (1 - a) * scores[(name, state)]
                    )
                print(
                    f"hybrid {a} {state}: "
                    + ", ".join(
                        f"{name} {ndcg10(scores[(name, f'hybrid {a} {state}')], s):.4f}"
                        for name, s in saved["sets"].items()
                    ),
                    flush=True,
                )
        models = args.models + [m for m in args.hybrid_models]
        rows = lexical_rows(saved["sets"], scores, sts_vecs, models)
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows}, indent=1))
        return 0
    t0 = time.perf_counter()
    enc = LamV2Encoder(pooling="state")
    sets = {"qmsum_dev": qmsum.build_rows(data_dir / "qmsum", splits=("test",))}
    sets["scifact_train"] = scifact_train(data_dir)
    for name, s in sets.items():
        wins, mean = windows(enc, [d["text"] for d in s["corpus"]], 512 if "qmsum" in name else 16)
        _, qmean = windows(enc, [q["text"] for q in s["queries"]], 4)
        s.update(wins=wins, mean=mean, q=qmean)
        print(f"encoded {name} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    rows, scores = dense_rows(sets, args.slots, args.temperatures)
    report = {"rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    with cache.open("wb") as f:
        pickle.dump({"sets": sets, "scores": scores}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
