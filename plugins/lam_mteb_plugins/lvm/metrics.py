"""Baseline predictors and the next-vector metrics (definitions: docs/lvm.md).

Shapes: a context batch is ``(n, k, d)`` (oldest chunk first, most recent last); a prediction
batch ``(n, d)``.  All predictors are callables ``context -> prediction``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

Predictor = Callable[[np.ndarray], np.ndarray]
KS = (1, 5, 10)
CONTAIN_K = 50


def normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


# --------------------------------------------------------------------------- baselines


def random_predictor(dim: int, seed: int = 0) -> Predictor:
    """A fresh standard-normal vector per query (independent of the context), seeded."""
    rng = np.random.default_rng(seed)

    def predict(context: np.ndarray) -> np.ndarray:
        return rng.standard_normal((context.shape[0], dim)).astype(np.float32)

    return predict


def mean_predictor(train_vectors: np.ndarray) -> Predictor:
    """The global mean of the train chunk vectors, the same for every query."""
    mean = np.asarray(train_vectors, dtype=np.float32).mean(axis=0)

    def predict(context: np.ndarray) -> np.ndarray:
        return np.broadcast_to(mean, (context.shape[0], mean.shape[0])).copy()

    return predict


def persistence(context: np.ndarray) -> np.ndarray:
    """The last (most recent) context vector."""
    return np.asarray(context[:, -1, :], dtype=np.float32).copy()


def linear_average(context: np.ndarray) -> np.ndarray:
    """The unweighted mean of the k context vectors."""
    return np.asarray(context, dtype=np.float32).mean(axis=1)


# --------------------------------------------------------------------------- metrics


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(normalize(a) * normalize(b), axis=1)


def target_ranks(
    pred: np.ndarray,
    candidates: np.ndarray,
    targets: np.ndarray,
    exclude: np.ndarray | None = None,
    block: int = 1024,
) -> np.ndarray:
    """1-based rank of the true target among the candidates, by cosine to the prediction.

    ``candidates`` (m, d): the pool; ``targets`` (n,): index of each query's true next chunk in
    the pool; ``exclude`` (n, c): pool indices removed from a query's pool (its context chunks;
    -1 = none).  Ties count against the target (rank = 1 + #candidates scoring >= the target,
    other than the target itself), so a constant prediction cannot score by luck of ordering.
    """
    cand = normalize(candidates)
    ranks = np.empty(len(targets), dtype=np.int64)
    for s in range(0, len(targets), block):
        p = normalize(pred[s : s + block])
        sims = p @ cand.T  # (b, m)
        rows = np.arange(sims.shape[0])
        t = targets[s : s + block]
        if exclude is not None:
            ex = exclude[s : s + block]
            for j in range(ex.shape[1]):
                ok = ex[:, j] >= 0
                sims[rows[ok], ex[ok, j]] = -np.inf
        tsim = sims[rows, t].copy()
        sims[rows, t] = -np.inf
        ranks[s : s + block] = 1 + np.sum(sims >= tsim[:, None], axis=1)
    return ranks


def retrieval_scores(ranks: np.ndarray) -> dict[str, float]:
    """R@k = fraction of queries whose true next chunk ranks <= k (one relevant item per query);
    Contain@50 = the same at k = 50 (the user's name for "the top-50 candidate set contains the
    target"); MRR = mean of 1/rank."""
    ranks = np.asarray(ranks)
    out = {f"recall_at_{k}": float(np.mean(ranks <= k)) for k in KS}
    out[f"contain_at_{CONTAIN_K}"] = float(np.mean(ranks <= CONTAIN_K))
    out["mrr"] = float(np.mean(1.0 / ranks))
    return out


def latency_ms(
    predict: Predictor, contexts: np.ndarray, n_calls: int = 200, warmup: int = 5
) -> dict[str, float]:
    """Median and 95th percentile wall time (ms) of one prediction for one context (batch 1)."""
    n = min(n_calls, len(contexts))
    if n == 0:
        return {"p50_latency_ms": float("nan"), "p95_latency_ms": float("nan")}
    for i in range(min(warmup, n)):
        predict(contexts[i : i + 1])
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        predict(contexts[i : i + 1])
        times.append((time.perf_counter() - t0) * 1000.0)
    return {
        "p50_latency_ms": float(np.percentile(times, 50)),
        "p95_latency_ms": float(np.percentile(times, 95)),
    }


def evaluate_predictor(
    predict: Predictor,
    contexts: np.ndarray,
    targets_idx: np.ndarray,
    pool: np.ndarray,
    exclude: np.ndarray | None = None,
    *,
    batch: int = 1024,
    latency_calls: int = 200,
) -> dict[str, float]:
    """All metrics for one predictor on one split (see ``docs/lvm.md``)."""
    preds = (
        np.concatenate(
            [
                np.asarray(predict(contexts[s : s + batch]), dtype=np.float32)
                for s in range(0, len(contexts), batch)
            ]
        )
        if len(contexts)
        else np.zeros((0, pool.shape[1]), np.float32)
    )
    cos = cosine_rows(preds, pool[targets_idx]) if len(preds) else np.zeros(0)
    ranks = target_ranks(preds, pool, targets_idx, exclude)
    out = {
        "cosine_mean": float(np.mean(cos)) if len(cos) else float("nan"),
        "cosine_std": float(np.std(cos)) if len(cos) else float("nan"),
    }
    out.update(retrieval_scores(ranks) if len(ranks) else {})
    out.update(latency_ms(predict, contexts, latency_calls))
    return out


def sequence_arrays(
    vectors: np.ndarray, sequences: list[tuple[list[int], int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(contexts (n, k, d), target indices (n,), excluded pool indices (n, k)) for a split."""
    if not sequences:
        k = 0
        return (
            np.zeros((0, k, vectors.shape[1]), np.float32),
            np.zeros(0, np.int64),
            np.zeros((0, k), np.int64),
        )
    ctx_idx = np.array([c for c, _ in sequences], dtype=np.int64)
    tgt = np.array([t for _, t in sequences], dtype=np.int64)
    return vectors[ctx_idx], tgt, ctx_idx
