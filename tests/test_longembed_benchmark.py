"""The long-context helpers research/long_context.py uses: the shared LAM pooling pass
(lam_mteb_plugins.lam.shared_pass) and the per-length table (lam_mteb_plugins.longembed.report)."""

from __future__ import annotations

import json
import re

import numpy as np

from lam_mteb_plugins.lam.shared_pass import SharedPoolingCache
from lam_mteb_plugins.longembed import report
from tests.test_leaderboard_fixtures import write_result


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


def test_shared_pass_computes_each_text_once():
    cache = SharedPoolingCache()
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


def test_shared_pass_only_between_identical_configs():
    """Hybrid weights are mixed from the stored mean/state, so they share; other settings do not."""
    cache = SharedPoolingCache()
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


def test_vector_cache_on_disk_survives_a_new_run(tmp_path):
    first = SharedPoolingCache(tmp_path / "vectors")
    a = FakeLam("mean")
    first.wrap(a, "mean")
    want = a.encode(["x", "yy", "x"])
    assert a.seen == 2 and len(list((tmp_path / "vectors").glob("*.npz"))) == 1
    second = SharedPoolingCache(tmp_path / "vectors")
    b, h = FakeLam("mean"), FakeLam("hybrid", hybrid_weight=0.9)
    second.wrap(b, "mean")
    second.wrap(h, "hybrid")
    np.testing.assert_allclose(b.encode(["yy", "x"]), want[[1, 0]])
    np.testing.assert_allclose(h.encode(["x"]), [[0.9 * 1 + 0.1 * 2, 0.9 + 0.2, 0]])
    assert b.seen == 0 and h.seen == 0 and second.computed_texts == 0
    assert b.encode([]).shape == (0, 384)


def test_table_has_lengths_averages_and_times():
    rows = {
        "LEMBPasskeyRetrieval": {
            "test_256": {"minilm": 1.0, "lam-state": 0.5},
            "test_1024": {"minilm": 0.2, "lam-state": 0.6},
        },
        "LEMBQMSumRetrieval": {"test": {"minilm": 0.3, "lam-state": 0.2}},
    }
    text = report.render_table(
        rows, ["minilm", "lam-state"], {"minilm": 12.0, "lam-state": 99.0}, "note"
    )
    assert "avg >=1024" in text and "0.8400" in text and "0.1632" in text and "| 99 " in text
    assert text.index("test_256") < text.index("test_1024")


def test_table_reads_lam_mteb_run_results(tmp_path):
    """collect() reads the LEMB* result files of an mteb --output-folder, one column per model."""
    for model, passkey, qmsum in (("lam-mteb/minilm", 0.9, 0.16), ("lam-mteb/lam-state", 0.5, 0.2)):
        write_result(tmp_path, model, "r1", "LEMBPasskeyRetrieval", {"test_256": passkey})
        write_result(tmp_path, model, "r1", "LEMBQMSumRetrieval", qmsum)
    write_result(tmp_path, "lam-mteb/minilm", "r1", "STSBenchmark", 0.8)  # not long-context
    rows, times, models = report.collect(tmp_path)
    assert sorted(models) == ["lam-state", "minilm"] and times == {"lam-state": 2.0, "minilm": 2.0}
    assert rows == {
        "LEMBPasskeyRetrieval": {"test_256": {"minilm": 0.9, "lam-state": 0.5}},
        "LEMBQMSumRetrieval": {"test": {"minilm": 0.16, "lam-state": 0.2}},
    }
    rows, _, models = report.collect(tmp_path, ["minilm"])
    assert models == ["minilm"] and set(rows["LEMBQMSumRetrieval"]["test"]) == {"minilm"}
    text = report.render_table(rows, models, {}, "")
    assert re.search(r"\| LEMBPasskeyRetrieval \| test_256 +\| 0.9000 \| 0.8400 ", text), text
    assert json.loads(json.dumps(rows)) == rows  # what --json writes
