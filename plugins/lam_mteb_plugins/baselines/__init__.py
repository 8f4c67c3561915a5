"""Honest long-document baselines, as a plugin using only lam-mteb's public contract.

Registers four encoder kinds (docs/baselines.md):

- ``chunked`` — wraps **any** registered encoder: documents are cut into windows on the inner
  model's own tokenizer (every token covered, words never split; windows of words for an encoder
  without a tokenizer) and pooled: ``pool: mean`` (one
  vector, the token-weighted mean of the window vectors, streamed in O(1) memory) or ``pool: max``
  (multi-vector: a query scores a document by its best window, MaxSim through the bridge's
  ``similarity`` hook).  registry.yaml names ``minilm-chunk-mean`` and ``minilm-chunk-max``.
- ``lexical`` — wraps **any** registered one-vector encoder: its vector ⊕ a signed-hashed BM25
  block over MiniLM word pieces, so a dot product is the convex fusion of the dense and the BM25
  scores (``lexical.py``).  registry.yaml names ``minilm-chunk-mean-lexical``; LAM's ``lam-state``
  and ``lam-hybrid`` are this kind over LAM's dense models.
- ``bm25`` — mteb's own ``mteb/baseline-bm25s`` search model (bm25s + PyStemmer, extra
  ``lam-mteb[baselines]``), handed to mteb unchanged through the bridge.
- ``minilm-static`` — static token embeddings distilled offline from the local all-MiniLM-L6-v2
  with model2vec (distilled once into lam-mteb's cache on first use); any length.

Heavy imports (torch, model2vec, bm25s) happen only when a model is built: this module is imported
at every ``import mteb``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lam_mteb
from lam_mteb_plugins.baselines import bm25 as _bm25
from lam_mteb_plugins.baselines import chunked as _chunked
from lam_mteb_plugins.baselines import lexical as _lexical
from lam_mteb_plugins.baselines import static as _static

if TYPE_CHECKING:
    from lam_mteb.contract import RegisterEncoder

#: metadata the baseline kinds share: open, no instructions (bm25, minilm-static: any length)
_OPEN = {"open_weights": True, "use_instructions": False}
_ANY_LENGTH = {**_OPEN, "max_tokens": float("inf"), "public_training_code": None}


@lam_mteb.hookimpl
def register_encoders(register: RegisterEncoder) -> None:
    # each module declares its kind next to its code: factory, default params, revision, ModelMeta
    register("chunked", _chunked.create_encoder, **_chunked.REGISTRATION, **_OPEN)
    register("lexical", _lexical.create_encoder, **_lexical.REGISTRATION, **_OPEN)
    register("bm25", _bm25.create_bm25, **_bm25.REGISTRATION, **_ANY_LENGTH)
    register("minilm-static", _static.create_static, **_static.REGISTRATION, **_ANY_LENGTH)
