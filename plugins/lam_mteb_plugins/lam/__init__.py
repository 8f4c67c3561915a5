"""LAM (Linear Attention Model) plugin for lam-mteb.

all-MiniLM-L6-v2 with each softmax self-attention replaced by a DeltaNet (delta-rule linear
attention) block; embeddings, FFNs and LayerNorms are MiniLM's, frozen.  Documents of any length
are streamed in chunks of 512 tokens with every layer's state carried, so memory stays constant.

Registers the encoder kind ``lam`` (params: pooling = mean | state | hybrid, weights = a checkpoint
folder or None for the shipped default, hybrid_weight, diag_weight (weight of the diagonal term in
the state embedding), chunk_size, batch_size, device) and the command ``lam-mteb distill``.  registry.yaml names ``lam-mean``, ``lam-state`` and
``lam-hybrid``.  See docs/lam.md.

This module only uses lam-mteb's public contract and imports torch lazily (it is imported at every
``import mteb``).
"""

from __future__ import annotations

import lam_mteb

# default factory parameters of the `lam` kind (kept in sync with encoder.DEFAULTS by a test)
PARAMS = {"pooling": "mean", "weights": None, "hybrid_weight": 0.8, "diag_weight": 0.7,
          "chunk_size": 512, "batch_size": 32}
# MiniLM without its (unused) pooler + 6 blocks x (beta projection 384->12 and 12 read gains)
N_PARAMETERS = 22_565_376 + 6 * (384 * 12 + 12 + 12)


def create_encoder(pooling: str = "mean", weights=None, hybrid_weight: float = 0.8,
                   diag_weight: float = 0.7, chunk_size: int = 512, batch_size: int = 32,
                   device: str | None = None):
    """Factory of the ``lam`` encoder kind (see ``encoder.LamEncoder``)."""
    from lam_mteb_plugins.lam.encoder import LamEncoder

    return LamEncoder(pooling=pooling, weights=weights, hybrid_weight=hybrid_weight,
                      diag_weight=diag_weight, chunk_size=chunk_size, batch_size=batch_size,
                      device=device)


def revision(params: dict) -> str:
    """Content hash of the checkpoint + output-affecting params (changes when either changes)."""
    from lam_mteb_plugins.lam.encoder import revision as _revision

    return _revision(params)


@lam_mteb.hookimpl
def register_encoders(register):
    register(
        "lam", create_encoder, params=dict(PARAMS), revision=revision,
        description="LAM: MiniLM-L6 with DeltaNet blocks, streaming any length (mean/state/hybrid)",
        embed_dim=384, max_tokens=float("inf"), n_parameters=N_PARAMETERS, license="apache-2.0",
        reference=None, open_weights=True, languages=["eng-Latn"], similarity_fn_name="cosine",
        use_instructions=False, adapted_from="sentence-transformers/all-MiniLM-L6-v2",
        public_training_code=None, training_datasets=["STSBenchmark"],
    )


@lam_mteb.hookimpl
def register_commands(subparsers):
    from lam_mteb_plugins.lam.distill import add_parser

    add_parser(subparsers)
