"""Probes of the cosine / R@1 trade-off of next-vector predictors on dev (docs/lvm.md, issue 17b).

    export HF_HUB_OFFLINE=1 LAM_MTEB_DATA_DIR=../shared/data
    OMP_NUM_THREADS=1 nice -n 10 python research/lvm_probes.py [--checkpoint DIR] [--split dev]

1. **Interpolation toward persistence**: ``normalize(x_k + lam * (model(ctx) - x_k))`` for the
   shipped lvm-r, lam from 0 (persistence) to 1.5: the whole trade-off curve of one model.
2. **"Free" cosine**: cosine and ranking both read the one predicted direction, but a component
   on which all candidates score alike would raise the cosine to every target while leaving the
   ranking alone.  Adds ``a * w`` to the prediction for w = the train mean direction and for the
   LDA-like direction ``(Sigma + s I)^-1 mu`` (most mean per unit of variance across chunks).
3. **A gate on persistence's hits**: R@1 counts only queries where a hit is possible, cosine
   counts every query; a predictor that returned persistence exactly where persistence ranks the
   target first, and the model's prediction elsewhere, would keep persistence's R@1 and gain
   cosine.  Scores the *oracle* gate (knows the hits: an upper bound) and a logistic-regression
   gate on context features trained on the train split's persistence hits (its dev AUC says
   whether the hits can be told from the context).

Baselines are printed beside every block; the split's chunks are ranked exactly as the task
ranks them (metrics.target_ranks).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CKPT = Path(__file__).resolve().parent.parent / "plugins/lam_mteb_plugins/lvm/checkpoints/lvm-r"


def scores(pred, pool, tgt, ex):
    from lam_mteb_plugins.lvm import metrics

    ranks = metrics.target_ranks(pred, pool, tgt, ex)
    cos = metrics.cosine_rows(pred, pool[tgt])
    return ranks, cos


def fmt(ranks, cos) -> str:
    return f"cos {cos.mean():.4f}  R@1 {np.mean(ranks <= 1):.4f}  R@5 {np.mean(ranks <= 5):.4f}"


def context_features(ctx: np.ndarray) -> np.ndarray:
    """Cosines of the last context vector to the others and to the context mean, |mean|."""
    from lam_mteb_plugins.lvm import metrics

    last = ctx[:, -1]
    cols = [(last * ctx[:, i]).sum(1) for i in range(ctx.shape[1] - 1)]
    cols.append((last * metrics.normalize(ctx.mean(1))).sum(1))
    cols.append(np.linalg.norm(ctx.mean(1), axis=1))
    return np.stack(cols, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=CKPT)
    ap.add_argument("--split", default="dev")
    args = ap.parse_args(argv)
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    import lam_mteb
    from lam_mteb_plugins.lvm import data, metrics
    from lam_mteb_plugins.lvm.models import TorchPredictor, load_checkpoint
    from lam_mteb_plugins.lvm.train import _encode_fn, default_data_folder, split_vectors

    torch.set_num_threads(1)
    sd = data.build_sequence_data(default_data_folder())
    _, vecs = split_vectors(
        _encode_fn(lam_mteb.get_encoder("minilm")), sd, splits=("train", args.split)
    )
    model = TorchPredictor(load_checkpoint(args.checkpoint)[0])
    pool = metrics.normalize(vecs[args.split])
    ctx, tgt, ex = metrics.sequence_arrays(pool, sd.sequences(args.split))
    last, pred = ctx[:, -1], model(ctx)
    r_p, c_p = scores(last, pool, tgt, ex)
    print(f"[{args.split}] persistence     {fmt(r_p, c_p)}")
    print(f"[{args.split}] linear average  {fmt(*scores(ctx.mean(1), pool, tgt, ex))}")
    model_scores = fmt(*scores(pred, pool, tgt, ex))
    print(f"[{args.split}] model           {model_scores}  ({args.checkpoint.name})")

    print("\n0. the rank-1 candidate when it is not the target: its offset from the target")
    doc = np.array([c.doc_id for c in sd.chunks[args.split]])
    for name, p in (("persistence", last), ("linear average", ctx.mean(1))):
        sims = metrics.normalize(p) @ pool.T
        sims[np.arange(len(tgt))[:, None], ex] = -np.inf  # the context is not a candidate
        top = sims.argmax(1)
        miss = top != tgt
        same = miss & (doc[top] == doc[tgt])
        offsets, counts = np.unique((top - tgt)[same], return_counts=True)
        most = np.argsort(-counts, kind="stable")[:6]
        common = ", ".join(f"{offsets[i]:+d}: {counts[i]}" for i in most)
        print(f"  {name}: {miss.sum()} misses, {same.sum()} in the target's document ({common})")

    print("\n1. interpolation toward persistence: normalize(x_k + lam (model - x_k))")
    for lam in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5):
        print(f"  lam {lam:<5} {fmt(*scores(last + lam * (pred - last), pool, tgt, ex))}")

    print("\n2. adding a fixed direction w (a * w) to persistence and to the lam = 0.5 prediction")
    train = metrics.normalize(vecs["train"])
    mu, sigma = train.mean(0), np.cov(train.T)
    dirs = {"train mean": metrics.normalize(mu)}
    for s in (1e-3, 1e-1):
        ridge = sigma + s * np.trace(sigma) / len(mu) * np.eye(len(mu))
        dirs[f"LDA s={s:g}"] = metrics.normalize(np.linalg.solve(ridge, mu))
    for name, w in dirs.items():
        print(f"  {name}: w.mu {w @ mu:.3f}, variance of w.x over train chunks {w @ sigma @ w:.5f}")
        for base_name, base in (
            ("persistence", last),
            ("lam 0.5", metrics.normalize(last + 0.5 * (pred - last))),
        ):
            for a in (0.1, 0.2, 0.4):
                print(f"    {base_name:11} + {a} w  {fmt(*scores(base + a * w, pool, tgt, ex))}")

    print("\n3. gate: persistence where it ranks the target first, else the model (lam_hi)")
    t_pool = train
    t_ctx, t_tgt, t_ex = metrics.sequence_arrays(t_pool, sd.sequences("train"))
    t_hit = scores(t_ctx[:, -1], t_pool, t_tgt, t_ex)[0] <= 1
    clf = LogisticRegression(max_iter=1000).fit(context_features(t_ctx), t_hit)
    prob = clf.predict_proba(context_features(ctx))[:, 1]
    hit = r_p <= 1
    print(
        f"  persistence hits: train {t_hit.mean():.4f}, {args.split} {hit.mean():.4f}; "
        f"gate AUC on {args.split} {roc_auc_score(hit, prob):.3f}"
    )
    for lo, hi in ((0.0, 1.0), (0.0, 1.2), (0.5, 1.2)):
        g = np.where(hit, lo, hi)
        oracle = fmt(*scores(last + g[:, None] * (pred - last), pool, tgt, ex))
        print(f"  oracle gate lam {lo}/{hi}        {oracle}")
        for q in (0.2, 0.4):
            g = np.where(prob >= np.quantile(prob, 1 - q), lo, hi)
            p = last + g[:, None] * (pred - last)
            print(f"  learned gate lam {lo}/{hi} top {q}  {fmt(*scores(p, pool, tgt, ex))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
