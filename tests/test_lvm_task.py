"""The LVMNextVector mteb task on a small generated corpus (no ../shared data)."""

from __future__ import annotations

import json

import mteb
import numpy as np
import pytest

import lam_mteb
from lam_mteb_plugins.lvm import metrics as M
from lam_mteb_plugins.lvm.task import BASELINES, LVMNextVector
from lam_mteb_plugins.lvm.testing import FakeMtebModel, HashEncoder, write_corpus

METRICS = {
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


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "longtext", n_docs=14, sentences_per_doc=40, short_docs=2)


def _task(folder, **kw):
    task = LVMNextVector(data_folder=folder, **kw)
    task.target_words = 20
    task.latency_calls = 5
    return task


def test_plain_encoder_reports_every_baseline_and_linear_average_is_main(corpus):
    task = _task(corpus)
    model = FakeMtebModel(HashEncoder(dim=32))
    scores = task.evaluate(model, "test", encode_kwargs={"batch_size": 8})["default"]
    assert scores["main_predictor"] == "linear_average"
    assert set(scores["predictors"]) == set(BASELINES)
    assert scores["baselines"] == list(
        BASELINES
    )  # the leaderboard's baseline rows come from this list
    for name in BASELINES:
        assert set(scores["predictors"][name]) == METRICS
    assert (
        scores["main_score"]
        == scores["recall_at_5"]
        == scores["predictors"]["linear_average"]["recall_at_5"]
    )
    p = scores["predictors"]
    # a slowly drifting topic: averaging the context beats the last vector, which beats random
    assert (
        p["linear_average"]["cosine_mean"]
        > p["persistence"]["cosine_mean"]
        > p["random"]["cosine_mean"]
    )
    assert abs(p["random"]["cosine_mean"]) < 0.1
    assert scores["n_sequences"] > 0 and scores["n_documents"] >= 1
    assert (
        scores["n_skipped_short_documents"]
        + sum(task.sequence_data.stats[f"{s}_skipped_short_documents"] for s in ("train", "dev"))
        == 2
    )
    assert set(model.prompt_types) == {"document"}
    json.dumps(scores)  # mteb stores it as JSON


def test_model_predictor_is_main_when_the_encoder_has_predict_next(corpus):
    class Predicting(HashEncoder):
        def predict_next(self, context):
            return M.persistence(context)

    scores = _task(corpus).evaluate(FakeMtebModel(Predicting(dim=32)), "dev", encode_kwargs={})[
        "default"
    ]
    assert scores["main_predictor"] == "model_predictor"
    quality = {k: v for k, v in scores["predictors"]["persistence"].items() if "latency" not in k}
    assert {k: scores["predictors"]["model_predictor"][k] for k in quality} == pytest.approx(
        quality
    )
    assert scores["main_score"] == scores["predictors"]["model_predictor"]["recall_at_5"]
    assert "model_predictor" not in scores["baselines"] and set(scores["baselines"]) == set(
        BASELINES
    )


def test_vectors_are_cached_between_runs(corpus):
    enc = HashEncoder(dim=32)
    first = _task(corpus).evaluate(FakeMtebModel(enc), "test", encode_kwargs={})["default"]
    calls = enc.calls
    second = _task(corpus).evaluate(FakeMtebModel(enc), "test", encode_kwargs={})["default"]
    assert enc.calls - calls == 1  # only the fingerprint probe is encoded again
    for k in ("cosine_mean", "recall_at_5"):
        assert first[k] == second[k]


def test_changed_data_encodes_only_new_chunks(corpus):
    enc = HashEncoder(dim=32)
    task = _task(corpus)
    for split in ("dev", "test"):  # (+ all train chunks: fewer than the 1 000 of the mean sample)
        task.evaluate(FakeMtebModel(enc), split, encode_kwargs={})
    (corpus / "essays" / "extra.txt").write_text(
        " ".join(f"Extra sentence number {i} about whales." for i in range(60))
    )
    seen = []

    class Spy(HashEncoder):
        def encode(self, texts, **kw):
            seen.extend(texts)
            return super().encode(texts, **kw)

    _task(corpus).evaluate(FakeMtebModel(Spy(dim=32)), "test", encode_kwargs={})
    from lam_mteb_plugins.lvm.vectors import PROBES

    assert all("Extra sentence" in t for t in seen if t not in PROBES)


def test_missing_data_is_one_clear_error(tmp_path, monkeypatch):
    with pytest.raises(lam_mteb.DataNotFound, match="needs LAM_MTEB_DATA_DIR"):
        LVMNextVector().load_data()
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(tmp_path))
    with pytest.raises(lam_mteb.DataNotFound, match="looked for .*longtext"):
        LVMNextVector().load_data()
    (tmp_path / "longtext").mkdir()
    with pytest.raises(lam_mteb.LamMtebError, match="no text documents found"):
        LVMNextVector().load_data()


def test_mteb_evaluate_writes_scores_per_split(mock_plugin, corpus, tmp_path, monkeypatch, capsys):
    from mteb.cache import ResultCache

    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(corpus.parent))
    assert (
        type(mteb.get_task("LVMNextVector")) is LVMNextVector
    )  # registered through the plugin hook
    model = mteb.get_model("mock-hash")
    task = _task(None)
    results = mteb.evaluate(
        model, [task], cache=ResultCache(tmp_path / "out"), show_progress_bar=False
    )
    res = results.task_results[0]
    assert set(res.scores) == {"dev", "test"}
    # the task reads longtext/ itself: the bridge must not go looking for an offline copy
    assert "no local copy" not in capsys.readouterr().err
    files = list((tmp_path / "out" / "results").rglob("LVMNextVector.json"))
    assert len(files) == 1
    saved = json.loads(files[0].read_text())
    test = saved["scores"]["test"][0]
    assert test["main_predictor"] == "linear_average" and set(test["predictors"]) == set(BASELINES)
    assert np.isfinite(test["main_score"])
