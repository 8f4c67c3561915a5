"""LVM baselines and metrics on hand-checkable vectors."""

from __future__ import annotations

import numpy as np
import pytest

from lam_mteb_plugins.lvm import metrics as M

E = np.eye(4, dtype=np.float32)


def test_baselines_on_hand_checkable_context():
    # one query, context (k = 3): e0, e1, e1 (oldest first)
    ctx = np.stack([E[0], E[1], E[1]])[None]
    np.testing.assert_allclose(M.persistence(ctx), [E[1]])
    np.testing.assert_allclose(M.linear_average(ctx), [[1 / 3, 2 / 3, 0, 0]], rtol=1e-6)
    train = np.stack([E[0], E[0], E[2], E[3]])
    np.testing.assert_allclose(
        M.mean_predictor(train)(np.zeros((2, 3, 4))), [[0.5, 0, 0.25, 0.25]] * 2
    )
    r1 = M.random_predictor(4, seed=3)(np.zeros((5, 3, 4)))
    r2 = M.random_predictor(4, seed=3)(np.zeros((5, 3, 4)))
    assert r1.shape == (5, 4) and np.array_equal(r1, r2) and not np.allclose(r1[0], r1[1])


def test_cosine_rows():
    a = np.array([[1, 0], [1, 1], [0, 2]], np.float32)
    b = np.array([[2, 0], [1, 0], [0, -1]], np.float32)
    np.testing.assert_allclose(M.cosine_rows(a, b), [1, 1 / np.sqrt(2), -1], rtol=1e-6)


def test_ranks_recall_and_contain_known_case():
    # pool of 4 orthogonal chunks; predictions aimed at known candidates
    pool = E
    preds = np.array(
        [
            E[2],  # target 2 -> rank 1
            0.9 * E[0] + 0.1 * E[3],  # target 3 -> rank 2 (behind 0)
            E[1],
        ],
        np.float32,
    )  # target 0 -> tie with 2 and 3 at cosine 0 -> rank 4
    targets = np.array([2, 3, 0])
    ranks = M.target_ranks(preds, pool, targets)
    assert ranks.tolist() == [1, 2, 4]
    s = M.retrieval_scores(ranks)
    assert s["recall_at_1"] == pytest.approx(1 / 3)
    assert s["recall_at_5"] == 1.0 and s["recall_at_10"] == 1.0 and s["contain_at_50"] == 1.0
    assert s["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)


def test_context_chunks_are_excluded_from_the_pool():
    pool = E
    preds = np.array([0.9 * E[0] + 0.1 * E[3]], np.float32)
    assert M.target_ranks(preds, pool, np.array([3])).tolist() == [2]
    # chunk 0 is in this query's context: it is not a candidate
    assert M.target_ranks(preds, pool, np.array([3]), exclude=np.array([[0, -1]])).tolist() == [1]


def test_contain_at_50_vs_recall_at_10():
    ranks = np.array([1, 6, 11, 50, 51, 400])
    s = M.retrieval_scores(ranks)
    assert s["recall_at_1"] == pytest.approx(1 / 6)
    assert s["recall_at_5"] == pytest.approx(1 / 6)
    assert s["recall_at_10"] == pytest.approx(2 / 6)
    assert s["contain_at_50"] == pytest.approx(4 / 6)


def test_constant_prediction_cannot_win_by_ties():
    pool = np.ones((10, 3), np.float32)  # all candidates identical
    ranks = M.target_ranks(np.ones((10, 3), np.float32), pool, np.arange(10))
    assert (ranks == 10).all()


def test_evaluate_predictor_end_to_end():
    rng = np.random.default_rng(0)
    vecs = M.normalize(rng.standard_normal((30, 8)))
    seqs = [(list(range(t - 3, t)), t) for t in range(3, 30)]
    ctx, tgt, ex = M.sequence_arrays(vecs, seqs)
    oracle = {"calls": 0}

    def perfect(c):  # cheats by looking the target up: must score 1.0 everywhere
        oracle["calls"] += 1
        idx = [next(t for cc, t in seqs if np.allclose(vecs[cc], x)) for x in c]
        return vecs[idx]

    out = M.evaluate_predictor(perfect, ctx, tgt, vecs, ex, latency_calls=10)
    assert out["cosine_mean"] == pytest.approx(1.0) and out["cosine_std"] == pytest.approx(
        0.0, abs=1e-6
    )
    assert out["recall_at_1"] == out["contain_at_50"] == 1.0
    assert out["p95_latency_ms"] >= 0 and set(out) == {
        "cosine_mean",
        "cosine_std",
        "recall_at_1",
        "recall_at_5",
        "recall_at_10",
        "contain_at_50",
        "mrr",
        "p50_latency_ms",
        "p95_latency_ms",
    }
    rnd = M.evaluate_predictor(M.random_predictor(8, 0), ctx, tgt, vecs, ex, latency_calls=5)
    assert abs(rnd["cosine_mean"]) < 0.3
