"""lam_mteb_plugins.lvm.cv (research/lvm_cv_sweep.py's scoring): folds over documents, document
subsets, the bootstrap and the selection rule, on generated vectors (fast)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lam_mteb_plugins.lvm import cv
from lam_mteb_plugins.lvm import data as D
from lam_mteb_plugins.lvm.testing import drifting_sequences

torch.set_num_threads(1)


def _split(vecs, docs, ids):
    keep = np.isin(docs, ids)
    chunks = [
        D.Chunk(f"{d}@{i}", f"d{d}", i, "")
        for i, d in zip(np.flatnonzero(keep), docs[keep], strict=True)
    ]
    return vecs[keep], chunks, D.make_sequences(chunks, 5)


def test_folds_partition_the_documents_deterministically():
    docs = np.repeat([f"d{i}" for i in range(10)], 3)
    folds = cv.cv_folds(docs, 4)
    assert sorted(np.concatenate(folds)) == sorted(set(docs))
    assert sum(len(f) for f in folds) == 10
    assert all(np.array_equal(a, b) for a, b in zip(folds, cv.cv_folds(docs, 4), strict=True))


def test_doc_subset_keeps_whole_documents_and_their_sequences():
    vecs, docs = drifting_sequences(n_docs=6, length=8, dim=4)
    docs = np.array([f"d{d}" for d in docs])
    chunks = [D.Chunk(f"{d}@{i}", d, i, "") for i, d in enumerate(docs)]
    seqs = D.make_sequences(chunks, 5)
    sub_v, sub_d, sub_s = cv.doc_subset(vecs, docs, seqs, ["d1", "d4"])
    assert len(sub_v) == 16 and set(sub_d) == {"d1", "d4"}
    assert len(sub_s) == 2 * 3  # 8 chunks - 5 context = 3 sequences per document
    orig = [(c, t) for c, t in seqs if docs[t] in ("d1", "d4")]
    for (c, t), (oc, ot) in zip(sub_s, orig, strict=True):
        np.testing.assert_array_equal(sub_v[c], vecs[oc])
        np.testing.assert_array_equal(sub_v[t], vecs[ot])


def test_bootstrap_interval_brackets_the_margin():
    docs = np.repeat(np.arange(20), 5)
    mean, lo, hi = cv.bootstrap(np.full(100, 0.25), docs)
    assert mean == lo == hi == pytest.approx(0.25)
    delta = np.random.default_rng(0).normal(0.1, 1.0, 100)
    mean, lo, hi = cv.bootstrap(delta, docs)
    assert lo < mean < hi


def test_run_variant_scores_every_candidate_and_applies_the_rule():
    vecs, docs = drifting_sequences(n_docs=36, length=12, dim=8)
    docs = np.asarray(docs)
    parts = {
        "train": _split(vecs, docs, range(24)),
        "dev": _split(vecs, docs, range(24, 30)),
        "test": _split(vecs, docs, range(30, 36)),
    }
    sd = SimpleNamespace(
        chunks={s: p[1] for s, p in parts.items()}, sequences=lambda s: parts[s][2]
    )
    over = {"epochs": 2, "model": {"hidden": 16, "dropout": 0.0}, "lr": 3e-3, "weight_decay": 0.0}
    rec = cv.run_variant(
        "tiny", over, sd, {s: p[0] for s, p in parts.items()}, folds=2, lams=(0.5, 1.0)
    )
    assert len(rec["candidates"]) == 3 * 2  # epochs 0..2 x two lambdas
    for c in rec["candidates"]:
        for tag in ("cv", "dev", "test"):
            lo, hi = c[tag]["ci_recall_at_1"]
            assert (
                lo <= c[tag]["margin_recall_at_1"] + 1e-12
                and c[tag]["margin_recall_at_1"] <= hi + 1e-12
            )
        rel = [
            c[t][f"margin_{m}"]
            / max(max(rec["baselines"][t][b][m] for b in rec["baselines"][t]), 1e-9)
            for t in ("cv", "dev")
            for m in cv.METRICS
        ]
        assert c["qualifies"] == (min(rel) > 0)  # the test split never enters the rule
        if c["epoch"] == 0:  # the untrained model is persistence, whatever lambda
            for tag in ("cv", "dev", "test"):
                assert c[tag]["recall_at_1"] == pytest.approx(
                    rec["baselines"][tag]["persistence"]["recall_at_1"]
                )
    assert rec["selected"]["epoch"] > 0
    # a rotation dynamic is learnable: the trained model beats both baselines on dev cosine
    assert rec["selected"]["dev"]["margin_cosine_mean"] > 0
