"""Cross-validated scoring of next-vector predictors: folds over documents, document-bootstrap
intervals and the selection rule of the LVM-R sweep (research/lvm_cv_sweep.py, docs/lvm.md).

For each epoch and interpolation ``lam`` (prediction ``normalize(x_k + lam * (model(ctx) - x_k))``:
``lam = 0`` is persistence, ``lam = 1`` the model) :func:`run_variant` computes the margins over
the best baseline on cosine, R@1 and R@5, on the pooled K-fold cross-validation queries of the
train documents and on dev; a candidate qualifies only if all six margins are > 0.  Test metrics
are recorded, never used to choose.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lam_mteb_plugins.lvm.train import Sequences

METRICS = ("cosine_mean", "recall_at_1", "recall_at_5")

# the shipped lvm-r configuration (train.DEFAULTS["lvm-r"]), fixed here so the sweep reproduces
BASE: dict[str, Any] = {
    "arch": "lvm-r",
    "model": {"hidden": 64, "dropout": 0.5, "content_mix": True, "global_bias": True},
    "lr": 3e-4,
    "weight_decay": 0.5,
    "epochs": 4,
    "w_nce": 0.05,
    "tau": 0.1,
    "w_doc": 0.2,
    "batch_size": 128,
    "w_cos": 1.0,
    "w_mse": 0.0,
    "seed": 0,
    "select": "legacy",
}


def doc_subset(
    vecs: np.ndarray, chunk_docs: np.ndarray, seqs: Sequences, keep: Iterable[Any]
) -> tuple[np.ndarray, np.ndarray, Sequences]:
    """Chunks and sequences of the documents in ``keep`` (indices remapped; order kept)."""
    mask = np.isin(chunk_docs, list(keep))
    idx = np.flatnonzero(mask)
    remap = np.full(len(vecs), -1)
    remap[idx] = np.arange(len(idx))
    sub = [([int(remap[c]) for c in ctx], int(remap[t])) for ctx, t in seqs if mask[t]]
    return vecs[idx], chunk_docs[idx], sub


def cv_folds(doc_ids: Sequence[Any] | np.ndarray, k: int, seed: int = 123) -> list[np.ndarray]:
    """K disjoint groups of documents (seeded permutation, round robin)."""
    order = np.random.default_rng(seed).permutation(np.unique(np.asarray(doc_ids)))
    return [order[i::k] for i in range(k)]


def per_query(
    pred: np.ndarray, vecs: np.ndarray, seqs: Sequences, chunk_docs: Sequence[Any] | np.ndarray
) -> dict[str, np.ndarray]:
    """Per-query cosine, R@1 and R@5 hits, and the query's document (for the bootstrap)."""
    from lam_mteb_plugins.lvm import metrics as M

    pool = M.normalize(vecs)
    _, tgt, ex = M.sequence_arrays(pool, seqs)
    ranks = M.target_ranks(pred, pool, tgt, ex)
    return {
        "cosine_mean": M.cosine_rows(pred, pool[tgt]),
        "recall_at_1": (ranks <= 1).astype(float),
        "recall_at_5": (ranks <= 5).astype(float),
        "doc": np.asarray(chunk_docs)[tgt],
    }


def bootstrap(
    delta: np.ndarray, doc_of_query: np.ndarray, n: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, 2.5 %, 97.5 %) of the mean of ``delta`` over resamples of whole documents (the
    interval of research/lvm_margins.py)."""
    docs, inv = np.unique(doc_of_query, return_inverse=True)
    sums = np.bincount(inv, weights=delta, minlength=len(docs))
    counts = np.bincount(inv, minlength=len(docs))
    draws = np.random.default_rng(seed).integers(0, len(docs), size=(n, len(docs)))
    stats = sums[draws].sum(1) / counts[draws].sum(1)
    return float(delta.mean()), float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def _best(rows: list[dict[str, np.ndarray]], metric: str) -> dict[str, np.ndarray]:
    """The baseline's per-query rows with the highest mean ``metric``."""
    return max(rows, key=lambda r: float(r[metric].mean()))


def run_variant(
    name: str,
    over: dict[str, Any],
    sd: Any,
    vecs: dict[str, np.ndarray],
    folds: int,
    lams: Iterable[float],
) -> dict[str, Any]:
    """Train variant ``over`` (on top of :data:`BASE`; ``ens`` > 1 averages that many seeds) with
    ``folds``-fold CV over the train documents and on the full train split; score every (epoch,
    lam) on CV, dev and test and select by the rule.  ``sd``: the LVM sequence data
    (``chunks`` per split, ``sequences(split)``)."""
    import torch

    from lam_mteb_plugins.lvm import metrics as M
    from lam_mteb_plugins.lvm.train import train_model

    hp = {**BASE, **{k: v for k, v in over.items() if k not in ("model", "ens")}}
    hp["model"] = {**BASE["model"], **over.get("model", {})}
    n_ens = over.get("ens", 1)
    docs = {s: np.array([c.doc_id for c in sd.chunks[s]]) for s in ("train", "dev", "test")}
    seqs = {s: sd.sequences(s) for s in ("train", "dev", "test")}

    def fit(
        tr_vecs: np.ndarray,
        tr_docs: np.ndarray,
        tr_seqs: Sequences,
        evals: dict[str, tuple[np.ndarray, Sequences]],
    ) -> dict[int, dict[str, np.ndarray]]:
        """{epoch: {split: prediction (n, d)}}, averaged over the ensemble's seeds."""
        out: dict[int, dict[str, list]] = {}

        def on_epoch(epoch: int, model: torch.nn.Module) -> None:
            with torch.inference_mode():
                for tag, (ev, es) in evals.items():
                    ctx, _, _ = M.sequence_arrays(M.normalize(ev), es)
                    out.setdefault(epoch, {}).setdefault(tag, []).append(
                        model(torch.as_tensor(ctx)).numpy()
                    )

        dev_v, dev_s = next(iter(evals.values()))
        for i in range(n_ens):
            train_model(
                {**hp, "seed": hp["seed"] + i},
                tr_vecs,
                tr_seqs,
                dev_v,
                dev_s,
                None,
                progress=False,
                train_docs=tr_docs,
                on_epoch=on_epoch,
                log=lambda *_: None,
            )
        return {e: {t: M.normalize(np.mean(v, 0)) for t, v in d.items()} for e, d in out.items()}

    pooled: dict[
        str, dict
    ] = {}  # tag -> {"base": {name: per-query}, "model": {(epoch, lam): per-query}}

    def score(
        tag: str,
        ev: np.ndarray,
        ed: np.ndarray,
        es: Sequences,
        preds_by_epoch: dict[int, dict[str, np.ndarray]],
    ) -> None:
        pool = M.normalize(ev)
        ctx, _, _ = M.sequence_arrays(pool, es)
        slot = pooled.setdefault(tag, {"base": {}, "model": {}})
        for bname, p in (("persistence", ctx[:, -1]), ("linear_average", ctx.mean(1))):
            slot["base"].setdefault(bname, []).append(per_query(p, ev, es, ed))
        last = ctx[:, -1]
        for epoch, preds in preds_by_epoch.items():
            for lam in lams:
                p = M.normalize(last + lam * (preds[tag] - last))
                slot["model"].setdefault((epoch, lam), []).append(per_query(p, ev, es, ed))

    t0 = time.time()
    for held in cv_folds(docs["train"], folds) if folds else []:
        keep = np.setdiff1d(np.unique(docs["train"]), held)
        tv, td, ts = doc_subset(vecs["train"], docs["train"], seqs["train"], keep)
        hv, hd, hs = doc_subset(vecs["train"], docs["train"], seqs["train"], held)
        score("cv", hv, hd, hs, fit(tv, td, ts, {"cv": (hv, hs)}))
    full = fit(
        vecs["train"],
        docs["train"],
        seqs["train"],
        {"dev": (vecs["dev"], seqs["dev"]), "test": (vecs["test"], seqs["test"])},
    )
    score("dev", vecs["dev"], docs["dev"], seqs["dev"], full)
    score("test", vecs["test"], docs["test"], seqs["test"], full)

    def cat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {m: np.concatenate([p[m] for p in parts]) for m in (*METRICS, "doc")}

    summary: dict = {
        "name": name,
        "hparams": hp,
        "ens": n_ens,
        "folds": folds,
        "seconds": round(time.time() - t0),
        "baselines": {},
        "candidates": [],
    }
    best_base: dict[str, dict[str, float]] = {}
    best_rows: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for tag, slot in pooled.items():
        base = {b: cat(v) for b, v in slot["base"].items()}
        best_rows[tag] = {m: _best(list(base.values()), m) for m in METRICS}
        summary["baselines"][tag] = {
            b: {m: float(v[m].mean()) for m in METRICS} for b, v in base.items()
        }
        best_base[tag] = {m: max(v[m] for v in summary["baselines"][tag].values()) for m in METRICS}
    for key in sorted(next(iter(pooled.values()))["model"]):
        cand = {"epoch": key[0], "lam": key[1]}
        for tag, slot in pooled.items():
            rows = cat(slot["model"][key])
            vals = {m: float(rows[m].mean()) for m in METRICS}
            cand[tag] = {**vals, **{f"margin_{m}": vals[m] - best_base[tag][m] for m in METRICS}}
            for m in METRICS:  # 95 % document-bootstrap interval of the margin
                delta = rows[m] - best_rows[tag][m][m]
                cand[tag][f"ci_{m}"] = list(bootstrap(delta, rows["doc"])[1:])
        rel = [
            cand[t][f"margin_{m}"] / max(abs(best_base[t][m]), 1e-9)
            for t in pooled
            if t != "test"
            for m in METRICS
        ]
        cand["min_rel_margin"] = min(rel)
        cand["qualifies"] = min(rel) > 0
        summary["candidates"].append(cand)
    summary["selected"] = max(
        summary["candidates"], key=lambda c: (c["epoch"] > 0, c["min_rel_margin"])
    )
    return summary
