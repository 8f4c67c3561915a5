"""The ``lexical`` kind: any encoder ⊕ a signed-hashed BM25 block (baselines plugin)."""

from __future__ import annotations

import numpy as np
import pytest

import lam_mteb
from lam_mteb_plugins.baselines import lexical
from tests.conftest import HashEncoder

DOCS = [
    "The river flows through the old city and past the market square.",
    "Mountain winters are long; the forest road closes in deep snow. " * 30,
    "A machine learning theory of language and music, with a story about the ocean.",
    "",
]
QUERIES = ["old city market", "snow on the forest road in winter", "music theory", ""]


def test_hashed_block_dot_is_normalised_bm25():
    """With no bucket collisions the block dot product is exactly BM25 / ((k1 + 1) sum idf)."""
    bm = lexical.HashedBM25(dim=1 << 20, k1=1.2, b=0.75, avgdl=40.0)
    ids = {t for text in DOCS + QUERIES for t in lexical.wordpiece_tokenizer().encode(text).ids}
    assert len({int(bm.bucket[t]) for t in ids}) == len(ids)  # no collisions at this size
    D, Q = bm.encode(DOCS, "document"), bm.encode(QUERIES, "query")
    for qi, q in enumerate(QUERIES):
        for di, d in enumerate(DOCS):
            assert abs(float(Q[qi] @ D[di]) - bm.reference_score(q, d)) < 1e-5
    assert bm.reference_score(QUERIES[0], DOCS[0]) > 0.5  # every query word in the document
    assert (Q @ D.T).min() >= 0 and (Q @ D.T).max() < 1
    assert not D[3].any() and not Q[3].any()  # nothing known: zero block, not NaN


def test_small_hashed_blocks_still_rank_like_bm25():
    bm = lexical.HashedBM25(dim=256, avgdl=40.0)
    S = bm.encode(QUERIES[:3], "query") @ bm.encode(DOCS, "document").T
    assert (S.argmax(1) == [0, 1, 2]).all()


def test_long_texts_stream_to_the_same_counts(monkeypatch):
    text = DOCS[1] * 20
    whole = lexical.term_counts([text])[0]
    monkeypatch.setattr(lexical, "PIECE_CHARS", 500)
    pieces = lexical.term_counts([text])[0]
    order_a, order_b = np.argsort(whole[0]), np.argsort(pieces[0])
    assert np.array_equal(whole[0][order_a], pieces[0][order_b])
    assert np.array_equal(whole[1][order_a], pieces[1][order_b]) and whole[2] == pieces[2]


def test_wrapper_output_is_the_convex_fusion():
    inner = HashEncoder(dim=32)
    enc = lexical.LexicalEncoder(inner, dim=4096, avgdl=40.0, weight=0.3, retrieval_weight=0.6)
    bm = enc.lexical
    d, q = enc.encode(DOCS, prompt_type="document"), enc.encode(QUERIES, prompt_type="query")
    assert d.shape == q.shape == (4, 32 + 4096)
    want = 0.4 * inner.encode(QUERIES) @ inner.encode(DOCS).T + 0.6 * (
        bm.encode(QUERIES, "query") @ bm.encode(DOCS, "document").T
    )
    assert np.allclose(q @ d.T, want, atol=1e-5)
    assert np.allclose(np.asarray(enc.similarity(q, d)), want, atol=1e-5)
    s = enc.encode(DOCS[:3], prompt_type=None)  # symmetric: unit rows, cosine = fused cosine
    assert np.allclose(np.linalg.norm(s, axis=1), 1, atol=1e-5)
    lex = bm.encode(DOCS[:3], None)
    dense = inner.encode(DOCS[:3])
    assert np.allclose(s @ s.T, 0.7 * dense @ dense.T + 0.3 * lex @ lex.T, atol=1e-5)
    assert np.allclose(np.asarray(enc.similarity_pairwise(s, s)), 1, atol=1e-5)


class _StateLike(HashEncoder):
    """An inner encoder with its own (non-linear) similarity: the wrapper must keep it."""

    def similarity(self, a, b):
        return np.tanh(3 * np.asarray(a) @ np.asarray(b).T)


def test_wrapper_keeps_an_inner_similarity():
    inner = _StateLike(dim=16)
    enc = lexical.LexicalEncoder(inner, dim=1024, avgdl=40.0, retrieval_weight=0.25)
    d, q = enc.encode(DOCS, prompt_type="document"), enc.encode(QUERIES, prompt_type="query")
    bm = enc.lexical
    want = 0.75 * inner.similarity(inner.encode(QUERIES), inner.encode(DOCS)) + 0.25 * (
        bm.encode(QUERIES, "query") @ bm.encode(DOCS, "document").T
    )
    assert np.allclose(np.asarray(enc.similarity(q, d)), want, atol=1e-5)


def test_bad_params_are_clear_errors():
    with pytest.raises(ValueError, match="retrieval_weight"):
        lexical.configure({"retrieval_weight": 1.5}, lambda name: None)
    with pytest.raises(ValueError, match="dim"):
        lexical.configure({"dim": 3}, lambda name: None)
    with pytest.raises(ValueError, match="k1"):
        lexical.configure({"k1": 0}, lambda name: None)


def test_registry_entries_derive_width_and_refuse_multi_vector(tmp_path):
    from lam_mteb import plugins, registry

    reg = plugins.get_registry()
    m = reg.model("minilm-chunk-mean-lexical")
    assert m.embed_dim == 384 + int(m.params["dim"])
    path = tmp_path / "registry.yaml"
    path.write_text(
        "models:\n  - name: my-lex\n    kind: lexical\n    params: {encoder: minilm-chunk-max}\n"
    )
    with pytest.raises(lam_mteb.LamMtebError, match=r"registry.yaml:2: .*multi-vector"):
        registry.load_registry_file(path, reg)


class _Unnormalised(HashEncoder):
    """A cosine encoder that returns raw (not unit) vectors."""

    def encode(self, texts, **kwargs):
        return 7.0 * super().encode(texts, **kwargs)


def test_an_unnormalised_cosine_encoder_still_fuses_its_cosine():
    inner = _Unnormalised(dim=32)
    enc = lexical.LexicalEncoder(inner, dim=4096, avgdl=40.0, retrieval_weight=0.6)
    d, q = enc.encode(DOCS, prompt_type="document"), enc.encode(QUERIES, prompt_type="query")
    bm = enc.lexical
    unit = HashEncoder(dim=32)
    want = 0.4 * unit.encode(QUERIES) @ unit.encode(DOCS).T + 0.6 * (
        bm.encode(QUERIES, "query") @ bm.encode(DOCS, "document").T
    )
    assert np.allclose(q @ d.T, want, atol=1e-5)
