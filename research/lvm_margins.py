"""Margins of LVM predictors over the baselines, with document-level bootstrap 95 % intervals.

    # the shipped lvm-r, lvm-t and amn:
    LAM_MTEB_DATA_DIR=../shared/data python research/lvm_margins.py
    python research/lvm_margins.py --checkpoint path/to/ckpt --split dev --split test
    # one fixed baseline:
    python research/lvm_margins.py --against linear_average

Uses the same chunks/splits as LVMNextVector and the cached MiniLM chunk vectors (encodes them
once if absent), and the task's four baselines computed the task's way (random: seeded normal
vectors; mean vector: mean of the task's 1 000-chunk train sample; persistence; linear average).
By default (``--against best``) each metric's margin is taken over the **best baseline on that
metric** in that split (e.g. the linear average for cosine, persistence for R@1/R@5), so an
interval above zero means the predictor beats every baseline on that metric.  Queries inside one
document are correlated, so the interval resamples whole documents (2 000 resamples, seed 0): for
each resample the margin is recomputed from per-query cosines and hits.  A margin whose interval
excludes 0 is not a fluke of which documents happened to land in the split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SHIPPED = ("lvm-r", "lvm-t", "amn")
METRICS = (
    ("cosine", "cosine_mean"),
    ("r1", "recall_at_1"),
    ("r5", "recall_at_5"),
    ("r10", "recall_at_10"),
    ("c50", "contain_at_50"),
)
LABELS = {"cosine": "cosine", "r1": "R@1", "r5": "R@5", "r10": "R@10", "c50": "Contain@50"}


def per_query(pred, ctx, tgt, pool, excl):
    from lam_mteb_plugins.lvm import metrics as M

    p = np.concatenate([pred(ctx[s : s + 1024]) for s in range(0, len(ctx), 1024)])
    cos = M.cosine_rows(p, pool[tgt])
    ranks = M.target_ranks(p, pool, tgt, excl)
    return {
        "cosine": cos,
        "r1": (ranks <= 1).astype(float),
        "r5": (ranks <= 5).astype(float),
        "r10": (ranks <= 10).astype(float),
        "c50": (ranks <= 50).astype(float),
    }


def bootstrap(delta: np.ndarray, doc_of_query: np.ndarray, n: int = 2000, seed: int = 0):
    docs, inv = np.unique(doc_of_query, return_inverse=True)
    sums = np.bincount(inv, weights=delta, minlength=len(docs))
    counts = np.bincount(inv, minlength=len(docs))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(docs), size=(n, len(docs)))
    stats = sums[draws].sum(1) / counts[draws].sum(1)
    return float(delta.mean()), float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def baselines(vecs: dict, seed: int = 42, mean_sample: int = 1000, split_seed: int = 42) -> dict:
    """The task's four baseline predictors (as LVMNextVector builds them)."""
    from lam_mteb_plugins.lvm import metrics as M
    from lam_mteb_plugins.lvm import vectors as V

    train = M.normalize(vecs["train"])
    sample = train[V.train_sample_indices(len(train), mean_sample, split_seed)]
    return {
        "random": M.random_predictor(train.shape[1], seed=seed),
        "mean_vector": M.mean_predictor(sample),
        "persistence": M.persistence,
        "linear_average": M.linear_average,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--checkpoint", action="append", help="checkpoint folder or lvm-r / lvm-t / amn (shipped)"
    )
    ap.add_argument("--split", action="append")
    ap.add_argument("--data", type=Path)
    ap.add_argument(
        "--against",
        default="best",
        choices=["best", "linear_average", "persistence"],
        help="best (default) = per metric, the best of the four baselines on that metric",
    )
    args = ap.parse_args(argv)

    from tabulate import tabulate

    import lam_mteb
    from lam_mteb_plugins.lvm import data as D
    from lam_mteb_plugins.lvm import metrics as M
    from lam_mteb_plugins.lvm.encoders import resolve_checkpoint
    from lam_mteb_plugins.lvm.models import TorchPredictor, load_checkpoint
    from lam_mteb_plugins.lvm.train import _encode_fn, default_data_folder, split_vectors

    folder = args.data or default_data_folder()
    sd = D.build_sequence_data(folder)
    _, vecs = split_vectors(
        _encode_fn(lam_mteb.get_encoder("minilm")), sd, splits=("train", "dev", "test")
    )
    ckpts = args.checkpoint or list(SHIPPED)
    rows, base_rows = [], []
    for split in args.split or ["test"]:
        pool = M.normalize(vecs[split])
        seqs = sd.sequences(split)
        ctx, tgt, excl = M.sequence_arrays(pool, seqs)
        doc_of_query = np.array([sd.chunks[split][t].doc_id for _, t in seqs])
        base = {name: per_query(fn, ctx, tgt, pool, excl) for name, fn in baselines(vecs).items()}
        for name, q in base.items():
            base_rows.append([split, name, *[f"{q[k].mean():.4f}" for k, _ in METRICS]])
        for ck in ckpts:
            path = resolve_checkpoint(ck, None) if ck in SHIPPED else Path(ck)
            model, cfg = load_checkpoint(path)
            mine = per_query(TorchPredictor(model), ctx, tgt, pool, excl)
            row = [split, f"{cfg['arch']} ({path.name})", len(seqs), len(set(doc_of_query))]
            for key, _ in METRICS:
                against = (
                    max(base, key=lambda n, k=key: base[n][k].mean())
                    if args.against == "best"
                    else args.against
                )
                d, lo, hi = bootstrap(mine[key] - base[against][key], doc_of_query)
                row.append(f"{mine[key].mean():.4f} vs {against} {d:+.4f} [{lo:+.4f}, {hi:+.4f}]")
            rows.append(row)
    print("baselines")
    print(tabulate(base_rows, headers=["split", "baseline", *[LABELS[k] for k, _ in METRICS]]))
    print()
    print(
        "model value vs "
        f"{'the best baseline on each metric' if args.against == 'best' else args.against}: "
        "margin [95% document-bootstrap interval]"
    )
    print(
        tabulate(
            rows, headers=["split", "model", "queries", "docs", *[LABELS[k] for k, _ in METRICS]]
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
