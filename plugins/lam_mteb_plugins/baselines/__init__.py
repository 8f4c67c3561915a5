"""Honest long-document baselines, as a plugin using only lam-mteb's public contract.

Registers three encoder kinds (docs/baselines.md):

- ``chunked`` — wraps **any** registered encoder: documents are cut into windows on the inner
  model's own tokenizer (every token covered, words never split) and pooled: ``pool: mean`` (one
  vector, the token-weighted mean of the window vectors, streamed in O(1) memory) or ``pool: max``
  (multi-vector: a query scores a document by its best window, MaxSim through the bridge's
  ``similarity`` hook).  registry.yaml names ``minilm-chunk-mean`` and ``minilm-chunk-max``.
- ``bm25`` — mteb's own ``mteb/baseline-bm25s`` search model (bm25s + PyStemmer, extra
  ``lam-mteb[baselines]``), handed to mteb unchanged through the bridge.
- ``minilm-static`` — static token embeddings distilled offline from the local all-MiniLM-L6-v2
  with model2vec (distilled once into lam-mteb's cache on first use); any length.

Heavy imports (torch, model2vec, bm25s) happen only when a model is built: this module is imported
at every ``import mteb``.
"""

from __future__ import annotations

import lam_mteb
from lam_mteb_plugins.baselines import bm25 as _bm25
from lam_mteb_plugins.baselines import chunked as _chunked
from lam_mteb_plugins.baselines import static as _static

#: metadata the baseline kinds share: open, no instructions (bm25, minilm-static: any length)
_OPEN = {"open_weights": True, "use_instructions": False}
_ANY_LENGTH = {**_OPEN, "max_tokens": float("inf"), "public_training_code": None}


@lam_mteb.hookimpl
def register_encoders(register):
    register(
        "chunked",
        _chunked.create_encoder,
        params=dict(_chunked.DEFAULTS),
        configure=_chunked.configure,
        description="any registered encoder over token windows of a long text (pool: mean | max)",
        license="apache-2.0",
        **_OPEN,
    )
    register(
        "bm25",
        _bm25.create_bm25,
        params=dict(_bm25.DEFAULTS),
        revision=_bm25.revision,
        description=(
            "mteb's BM25 baseline (bm25s, Lucene BM25 k1=1.5 b=0.75; English stopwords + "
            "Snowball stemmer for English tasks); retrieval tasks only"
        ),
        adapted_from="mteb/baseline-bm25s",
        reference="https://github.com/xhluca/bm25s",
        license="mit",
        release_date="2024-07-04",
        model_type=["sparse"],
        # a search model: no vectors, no parameters, mteb's own retrieval scoring
        embed_dim=None,
        n_parameters=0,
        similarity_fn_name=None,
        **_ANY_LENGTH,
    )
    register(
        "minilm-static",
        _static.create_static,
        params=dict(_static.DEFAULTS),
        revision=_static.revision,
        description=(
            "static token embeddings distilled from all-MiniLM-L6-v2 with model2vec (PCA 256, "
            "SIF weights), no attention, any length"
        ),
        adapted_from="sentence-transformers/all-MiniLM-L6-v2",
        reference="https://github.com/MinishLab/model2vec",
        license="apache-2.0",
        languages=["eng-Latn"],
        # one 256-d vector per token of a 29 525-token vocabulary
        embed_dim=256,
        n_parameters=29_525 * 256,
        similarity_fn_name="cosine",
        **_ANY_LENGTH,
    )
