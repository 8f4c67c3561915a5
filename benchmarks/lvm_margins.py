"""Margins of LVM predictors over the baselines, with document-level bootstrap 95 % intervals.

    LAM_MTEB_DATA_DIR=../shared/data python benchmarks/lvm_margins.py            # shipped lvm-t, amn
    python benchmarks/lvm_margins.py --checkpoint path/to/ckpt --split dev --split test

Uses the same chunks/splits as LVMNextVector and the cached MiniLM chunk vectors (encodes them
once if absent).  Queries inside one document are correlated, so the interval resamples whole
documents (2 000 resamples, seed 0): for each resample the margin is recomputed from per-query
cosines and hits.  A margin whose interval excludes 0 is not a fluke of which documents
happened to land in the split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def per_query(pred, ctx, tgt, pool, excl):
    from lam_mteb_plugins.lvm import metrics as M

    p = np.concatenate([pred(ctx[s:s + 1024]) for s in range(0, len(ctx), 1024)])
    cos = M.cosine_rows(p, pool[tgt])
    ranks = M.target_ranks(p, pool, tgt, excl)
    return {"cosine": cos, "r1": (ranks <= 1).astype(float), "r5": (ranks <= 5).astype(float),
            "r10": (ranks <= 10).astype(float), "c50": (ranks <= 50).astype(float)}


def bootstrap(delta: np.ndarray, doc_of_query: np.ndarray, n: int = 2000, seed: int = 0):
    docs, inv = np.unique(doc_of_query, return_inverse=True)
    sums = np.bincount(inv, weights=delta, minlength=len(docs))
    counts = np.bincount(inv, minlength=len(docs))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(docs), size=(n, len(docs)))
    stats = sums[draws].sum(1) / counts[draws].sum(1)
    return float(delta.mean()), float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", help="checkpoint folder or lvm-t / amn (shipped)")
    ap.add_argument("--split", action="append")
    ap.add_argument("--data", type=Path)
    ap.add_argument("--against", default="linear_average", choices=["linear_average", "persistence"])
    args = ap.parse_args(argv)

    import lam_mteb
    from tabulate import tabulate

    from lam_mteb_plugins.lvm import data as D
    from lam_mteb_plugins.lvm import metrics as M
    from lam_mteb_plugins.lvm.encoders import resolve_checkpoint
    from lam_mteb_plugins.lvm.models import TorchPredictor, load_checkpoint
    from lam_mteb_plugins.lvm.train import _encode_fn, default_data_folder, split_vectors

    folder = args.data or default_data_folder()
    sd = D.build_sequence_data(folder)
    _, vecs = split_vectors(_encode_fn(lam_mteb.get_encoder("minilm")), sd, splits=("dev", "test"))
    ckpts = args.checkpoint or ["lvm-t", "amn"]
    baseline = M.linear_average if args.against == "linear_average" else M.persistence
    rows = []
    for split in args.split or ["test"]:
        pool = M.normalize(vecs[split])
        seqs = sd.sequences(split)
        ctx, tgt, excl = M.sequence_arrays(pool, seqs)
        doc_of_query = np.array([sd.chunks[split][t].doc_id for _, t in seqs])
        base = per_query(baseline, ctx, tgt, pool, excl)
        for ck in ckpts:
            path = resolve_checkpoint(ck, None) if ck in ("lvm-t", "amn") else Path(ck)
            model, cfg = load_checkpoint(path)
            mine = per_query(TorchPredictor(model), ctx, tgt, pool, excl)
            row = [split, f"{cfg['arch']} ({path.name})", len(seqs), len(set(doc_of_query))]
            for key in ("cosine", "r5", "r1", "r10", "c50"):
                d, lo, hi = bootstrap(mine[key] - base[key], doc_of_query)
                row.append(f"{mine[key].mean():.4f} ({d:+.4f} [{lo:+.4f}, {hi:+.4f}])")
            rows.append(row)
    print(f"model value (margin over {args.against} [95% document-bootstrap interval])")
    print(tabulate(rows, headers=["split", "model", "queries", "docs", "cosine", "R@5", "R@1", "R@10", "Contain@50"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
