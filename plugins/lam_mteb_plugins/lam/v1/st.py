"""LAM as a sentence-transformers module, for use outside mteb.

    from sentence_transformers import SentenceTransformer
    from lam_mteb_plugins.lam.v1.st import LamSTModule

    model = SentenceTransformer(modules=[LamSTModule(pooling="mean")])   # shipped weights
    model.encode(["a sentence", "a whole book ..."])                     # any length
    model.save("my-lam")                  # -> modules.json + config.json + model.safetensors + ...
    SentenceTransformer("my-lam", trust_remote_code=True)  # loads it again; sentence-transformers
    # asks for trust_remote_code for any module class outside its own package (this one is
    # imported from the installed lam_mteb_plugins, nothing is downloaded)

The module is an input module: it tokenises (no truncation), streams every text through LAM in
chunks of ``chunk_size`` tokens with each layer's state carried, and returns the pooled,
L2-normalised ``sentence_embedding``.  On disk it is a LAM checkpoint (``config.json`` +
``model.safetensors``, the DeltaNet blocks only) plus ``lam_st_config.json`` (pooling params).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from sentence_transformers.base.modules.input_module import InputModule
else:
    try:  # sentence-transformers >= 5.x layout
        from sentence_transformers.base.modules.input_module import InputModule
    except ImportError:  # pragma: no cover - older sentence-transformers
        from sentence_transformers.models import InputModule

from lam_mteb_plugins.lam.common.encoder import pad_batch
from lam_mteb_plugins.lam.common.model import LamModel
from lam_mteb_plugins.lam.common.text import LamTokenizer
from lam_mteb_plugins.lam.v1.encoder import POOLINGS, resolve_weights, state_embedding
from lam_mteb_plugins.lam.v1.model import load_checkpoint, save_checkpoint


class LamSTModule(InputModule):
    """Tokenizer + LAM + pooling in one sentence-transformers module."""

    config_file_name = "lam_st_config.json"
    config_keys = ["pooling", "hybrid_weight", "diag_weight", "chunk_size"]
    save_in_root = True
    # InputModule declares a Hugging Face tokenizer; LAM brings its own (no truncation, streaming)
    tokenizer: LamTokenizer  # type: ignore[assignment]

    def __init__(
        self,
        pooling: str = "mean",
        hybrid_weight: float = 0.8,
        diag_weight: float = 0.7,
        chunk_size: int = 512,
        weights: str | None = None,
        model: LamModel | None = None,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}")
        self.pooling, self.hybrid_weight = pooling, float(hybrid_weight)
        self.diag_weight, self.chunk_size = float(diag_weight), int(chunk_size)
        self.lam = model if model is not None else load_checkpoint(resolve_weights(weights))
        self.tokenizer = LamTokenizer(self.lam.config.base_model)
        self.max_seq_length = None  # no truncation: LAM streams any length

    # -- sentence-transformers API ---------------------------------------------------------
    def preprocess(
        self, inputs: Sequence[object], prompt: str | None = None, **kwargs: Any
    ) -> dict[str, Tensor | Any]:
        texts = [(prompt or "") + self.tokenizer.clean(t) for t in inputs]
        x, m = pad_batch(self.tokenizer.encode_batch(texts), self.tokenizer.pad_id)
        return {"input_ids": x, "attention_mask": m}

    # older sentence-transformers call this
    def tokenize(self, texts: list[str], **kwargs: Any) -> dict[str, Tensor | Any]:
        return self.preprocess(texts, **kwargs)

    def forward(self, features: dict[str, Tensor | Any], **kwargs: Any) -> dict[str, Tensor | Any]:
        x, m = features["input_ids"], features["attention_mask"].to(torch.float32)
        states: list[Tensor | None] | None = None
        sums: Tensor | int = 0
        for c in range(0, x.shape[1], self.chunk_size):
            xc, mc = x[:, c : c + self.chunk_size], m[:, c : c + self.chunk_size]
            h, states = self.lam.forward_chunk(xc, mc, states, position_offset=c)
            sums = sums + (h * mc[..., None]).sum(1)
        mean = F.normalize(sums / m.sum(1, keepdim=True).clamp_min(1), dim=-1)
        # pad_batch gives at least one column, so at least one chunk ran; DeltaNet returns a state
        assert states is not None and states[-1] is not None
        state = state_embedding(states[-1], self.diag_weight)
        emb = {
            "mean": mean,
            "state": state,
            "hybrid": F.normalize(
                self.hybrid_weight * mean + (1 - self.hybrid_weight) * state, dim=-1
            ),
        }
        features["sentence_embedding"] = torch.nan_to_num(emb[self.pooling])
        return features

    def get_embedding_dimension(self) -> int:
        return self.lam.config.hidden_size

    get_sentence_embedding_dimension = get_embedding_dimension

    def save(
        self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any
    ) -> None:
        save_checkpoint(
            self.lam, output_path, dtype=torch.float32, training=self.lam.config.training
        )
        self.save_config(output_path)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        init_defaults: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> LamSTModule:
        folder = Path(model_name_or_path) / subfolder if subfolder else Path(model_name_or_path)
        if not folder.is_dir():
            raise ValueError(f"LamSTModule loads from a local folder; {folder} is not one")
        cfg_path = folder / cls.config_file_name
        config = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        return cls(**config, model=load_checkpoint(folder))


__all__ = ["LamSTModule"]
