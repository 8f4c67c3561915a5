"""LAM (Linear Attention Model) plugin for lam-mteb.

Two encoder kinds: ``lam2`` (LAM v2: MiniLM's exact softmax attention inside each window + a gated
delta-rule memory carried across windows; poolings ``mean``, ``state`` (the document state of
``v2/slots.py``: window vectors written into fixed-size slots by a delta rule, read by the query)
and ``hybrid``; registry ``lam-mean``, ``lam-state-dense``, ``lam-hybrid-dense``, and over them,
with the baselines plugin's ``lexical`` wrapper, ``lam-state`` and ``lam-hybrid``) and ``lam``
(LAM v1, below; registry ``lam-v1-mean`` / ``lam-v1-state`` / ``lam-v1-hybrid``).

LAM v1:
all-MiniLM-L6-v2 with each softmax self-attention replaced by a DeltaNet (delta-rule linear
attention) block; embeddings, FFNs and LayerNorms are MiniLM's, frozen.  Documents of any length
are streamed in chunks of 512 tokens with every layer's state carried, so memory stays constant.

Registers the encoder kind ``lam`` (params: pooling = mean | state | hybrid, weights = a checkpoint
folder or None for the shipped default, hybrid_weight, diag_weight (weight of the diagonal term in
the state embedding), chunk_size, batch_size, device) and the command ``lam-mteb distill``.
See docs/lam.md.

Layout: ``common/`` (what both use: tokenizer, the MiniLM stack and checkpoint loading, the
delta-rule kernels, encoder helpers), ``v1/`` (DeltaNet model, encoder, distillation,
sentence-transformers module, shipped weights) and ``v2/`` (model, encoder, slot state, shipped
weights); this module holds the hook implementations.

This module only uses lam-mteb's public contract and imports torch lazily (it is imported at every
``import mteb``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lam_mteb
from lam_mteb_plugins.lam.v1.encoder import DEFAULTS, LamEncoder, revision
from lam_mteb_plugins.lam.v2.encoder import (
    DEFAULTS_V2,
    LamV2Encoder,
    configure_v2,
    revision_v2,
)

if TYPE_CHECKING:
    from lam_mteb.contract import RegisterEncoder, SubParsers

# MiniLM without its (unused) pooler + 6 blocks x (beta projection 384->12 and 12 read gains)
N_PARAMETERS = 22_565_376 + 6 * (384 * 12 + 12 + 12)
# MiniLM without its pooler + 6 memories x (beta projection 384->12 and 12 gates)
N_PARAMETERS_V2 = 22_565_376 + 6 * (384 * 12 + 12 + 12)


# the encoder classes are the kinds' factories; their modules import torch only when a model is
# built, so registering them costs no torch import at `import mteb`
PARAMS = dict(DEFAULTS)
PARAMS_V2 = dict(DEFAULTS_V2)


# ModelMeta fields both LAM kinds share: 384-d vectors of MiniLM's width, any input length
_META = dict(
    embed_dim=384,
    max_tokens=float("inf"),
    license="apache-2.0",
    reference=None,
    open_weights=True,
    languages=["eng-Latn"],
    similarity_fn_name="cosine",
    use_instructions=False,
    adapted_from="sentence-transformers/all-MiniLM-L6-v2",
    public_training_code=None,
)


@lam_mteb.hookimpl
def register_encoders(register: RegisterEncoder) -> None:
    register(
        "lam",
        LamEncoder,
        params=dict(PARAMS),
        revision=revision,
        description="LAM: MiniLM-L6 with DeltaNet blocks, streaming any length (mean/state/hybrid)",
        n_parameters=N_PARAMETERS,
        training_datasets=["STSBenchmark"],
        **_META,
    )
    register(
        "lam2",
        LamV2Encoder,
        params=dict(PARAMS_V2),
        revision=revision_v2,
        configure=configure_v2,
        description="LAM v2: MiniLM-L6 softmax per window + gated delta-rule memory across "
        "windows; mean, or the document state (slots written by a delta rule, read by the query)",
        n_parameters=N_PARAMETERS_V2,
        training_datasets=[],
        **_META,
    )


@lam_mteb.hookimpl
def register_commands(subparsers: SubParsers) -> None:
    from lam_mteb_plugins.lam.v1.distill import add_parser

    add_parser(subparsers)
