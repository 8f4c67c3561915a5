"""benchmarks/long_context.py helpers: the shared LAM pooling pass, slicing, the table (fast)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "long_context", ROOT / "benchmarks" / "long_context.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeLam:
    """Counts how many texts go through encode_all (the one streaming pass)."""

    def __init__(self, pooling, hybrid_weight=0.5):
        self.pooling, self.seen, self.hybrid_weight = pooling, 0, hybrid_weight

    def encode_all(self, texts, **kw):
        self.seen += len(texts)
        base = np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float32)
        return {"mean": base, "state": base * 2, "hybrid": self.hybrid(base, base * 2)}

    def hybrid(self, mean, state):
        return self.hybrid_weight * mean + (1 - self.hybrid_weight) * state

    def encode(self, texts, **kw):  # replaced by the cache
        raise AssertionError("not shared")


def test_shared_pass_computes_each_text_once(bench):
    cache = bench.SharedPoolingCache()
    encoders = [FakeLam(p) for p in ("mean", "state", "hybrid")]
    for e in encoders:
        cache.wrap(e, e.pooling)
    texts = ["a", "bb", "a", "ccc"]
    out = {e.pooling: e.encode(texts, batch_size=2) for e in encoders}
    assert encoders[0].seen == 3 and encoders[1].seen == 0 and encoders[2].seen == 0
    assert out["mean"].shape == (4, 3) and out["mean"].dtype == np.float32
    np.testing.assert_allclose(out["state"], 2 * out["mean"])
    np.testing.assert_allclose(out["hybrid"][0], out["hybrid"][2])
    assert cache.computed_texts == 3


def test_shared_pass_only_between_identical_configs(bench):
    """Hybrid weights are mixed from the stored mean/state, so they share; other settings do not."""
    cache = bench.SharedPoolingCache()
    a, b, c = FakeLam("hybrid"), FakeLam("hybrid", hybrid_weight=0.3), FakeLam("hybrid")
    c.chunk_size = 128
    for e in (a, b, c):
        cache.wrap(e, "hybrid")
    ha, hb = a.encode(["x", "yy"]), b.encode(["x", "yy"])
    c.encode(["x", "yy"])
    assert (a.seen, b.seen, c.seen) == (2, 0, 2)
    base = np.array([[1, 1, 0], [2, 1, 0]], dtype=np.float32)
    np.testing.assert_allclose(ha, 0.5 * base + 0.5 * 2 * base)
    np.testing.assert_allclose(hb, 0.3 * base + 0.7 * 2 * base)


def test_vector_cache_on_disk_survives_a_new_run(bench, tmp_path):
    first = bench.SharedPoolingCache(tmp_path / "vectors")
    a = FakeLam("mean")
    first.wrap(a, "mean")
    want = a.encode(["x", "yy", "x"])
    assert a.seen == 2 and len(list((tmp_path / "vectors").glob("*.npz"))) == 1
    second = bench.SharedPoolingCache(tmp_path / "vectors")
    b, h = FakeLam("mean"), FakeLam("hybrid", hybrid_weight=0.9)
    second.wrap(b, "mean")
    second.wrap(h, "hybrid")
    np.testing.assert_allclose(b.encode(["yy", "x"]), want[[1, 0]])
    np.testing.assert_allclose(h.encode(["x"]), [[0.9 * 1 + 0.1 * 2, 0.9 + 0.2, 0]])
    assert b.seen == 0 and h.seen == 0 and second.computed_texts == 0
    assert b.encode([]).shape == (0, 384)


def test_trim_split_keeps_relevant_docs(bench):
    corpus = datasets.Dataset.from_dict({"id": [f"d{i}" for i in range(20)], "text": ["x"] * 20})
    queries = datasets.Dataset.from_dict({"id": [f"q{i}" for i in range(10)], "text": ["y"] * 10})
    rel = {f"q{i}": {f"d{19 - i}": 1} for i in range(10)}
    out = bench.trim_split(
        {"corpus": corpus, "queries": queries, "relevant_docs": rel, "top_ranked": None}, 3
    )
    assert list(out["queries"]["id"]) == ["q0", "q1", "q2"]
    ids = set(out["corpus"]["id"])
    assert len(ids) == 6 and {"d19", "d18", "d17"} <= ids
    assert set(out["relevant_docs"]) == {"q0", "q1", "q2"}


def test_table_has_lengths_averages_and_times(bench):
    rows = {
        "LEMBPasskeyRetrieval": {
            "test_256": {"minilm": 1.0, "lam-state": 0.5},
            "test_1024": {"minilm": 0.2, "lam-state": 0.6},
        },
        "LEMBQMSumRetrieval": {"test": {"minilm": 0.3, "lam-state": 0.2}},
    }
    text = bench.render_table(
        rows, ["minilm", "lam-state"], {"minilm": 12.0, "lam-state": 99.0}, "note"
    )
    assert "avg >=1024" in text and "0.8400" in text and "0.1632" in text and "| 99 " in text
    assert text.index("test_256") < text.index("test_1024")
