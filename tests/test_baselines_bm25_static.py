"""bm25 (mteb's BM25 through the bridge) and minilm-static (a model2vec static model), on tiny
fixtures."""

from __future__ import annotations

import sys

import mteb
import numpy as np
import pytest

from lam_mteb import bridge, plugins
from lam_mteb.errors import LamMtebError
from lam_mteb_plugins.baselines import static
from tests.conftest import write_raw_beir
from tests.test_baselines_chunked import toy_tokenizer


def test_bm25_is_listed_and_is_a_search_model():
    cfg = plugins.get_registry().model("bm25")
    assert cfg.kind.plugin == "baselines" and cfg.metadata["model_type"] == ["sparse"]
    model = plugins.host.bridge.load_plugin_model("bm25")
    assert bridge.is_search_model(model)
    assert (model.k1, model.b, model.method) == (1.5, 0.75, "lucene")  # mteb's defaults


def test_bm25_runs_retrieval_through_mteb(tmp_path, monkeypatch):
    write_raw_beir(tmp_path / "data" / "scifact", n_docs=30, n_queries=8)
    monkeypatch.setenv("LAM_MTEB_DATA_DIR", str(tmp_path / "data"))
    model = mteb.get_model("bm25")
    assert model.mteb_model_meta.name == "lam-mteb/bm25"
    res = mteb.evaluate(model, [mteb.get_task("SciFact")], cache=None, show_progress_bar=False)
    assert res.task_results[0].get_score() > 0.9  # each query is its document's text


@pytest.mark.parametrize("module", ["bm25s", "Stemmer"])
def test_bm25_without_the_extra_is_one_line_saying_how_to_install(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(LamMtebError) as err:
        mteb.get_model("bm25")
    message = str(err.value)
    assert "\n" not in message and "pip install 'lam-mteb[baselines]'" in message
    assert {"bm25s": "bm25s", "Stemmer": "PyStemmer"}[module] in message


@pytest.fixture
def tiny_static(tmp_path):
    """A model2vec static model over the toy WordPiece vocabulary, saved like a distilled one."""
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    tok = toy_tokenizer()
    vectors = np.random.default_rng(1).normal(size=(tok.get_vocab_size(), 8)).astype(np.float32)
    model = StaticModel(vectors, Tokenizer.from_str(tok.to_str()), normalize=True)
    model.save_pretrained(str(tmp_path / "static"))
    return tmp_path / "static"


def test_static_encodes_any_length(tiny_static):
    enc = static.create_static(path=str(tiny_static))
    base = " ".join(["cat dog"] * 400)  # 800 tokens, past model2vec's default 512-token cut
    a, b, empty = enc.encode([base, base + " river", ""])
    assert enc.embed_dim == 8 and np.isfinite(a).all() and np.isfinite(empty).all()
    assert not np.allclose(a, b)  # the 801st token still counts: no truncation


def test_static_distils_into_the_cache_once(monkeypatch, tmp_path):
    calls = []

    def fake_distill(model_name, pca_dims, device):
        calls.append((model_name, pca_dims))

        class Saved:
            def save_pretrained(self, path):
                from pathlib import Path

                Path(path).mkdir(parents=True)
                (Path(path) / "model.safetensors").write_bytes(b"x")

        return Saved()

    import model2vec.distill

    monkeypatch.setattr(model2vec.distill, "distill", fake_distill)
    first = static.distil(64)
    assert static.distil(64) == first and len(calls) == 1  # the second call reuses the cache
    assert calls[0] == (str(static.minilm_folder()), 64) and str(first).startswith(
        str(tmp_path.parent)
    )
