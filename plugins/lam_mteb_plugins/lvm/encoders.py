"""LVM-derived retrievers: encoders ``lvm-t``, ``amn`` and ``lvm-r``.

- document side (``encode_documents``, and ``encode`` without a query prompt): the base encoder
  (``minilm`` by default, obtained lazily with ``lam_mteb.get_encoder``);
- query side (``encode_queries``, ``encode(..., prompt_type="query")``): the query is cut into
  chunks exactly like LVMNextVector's documents, its last k chunks are embedded with the base
  encoder and the predictor's next vector is returned -- so retrieval looks for the text that
  *continues* the query.  A query with fewer than k chunks is left-padded by repeating its first
  chunk vector (a 1-chunk query gives the context [x, x, x, x, x]);
- ``predict_next(context (n, k, d)) -> (n, d)``: the predictor itself (unit vectors).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

import lam_mteb
from lam_mteb.contract import encode_texts

from . import data, metrics

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def default_checkpoint(arch: str) -> Path:
    return CHECKPOINTS / arch


def resolve_checkpoint(arch: str, checkpoint: str | Path | None) -> Path:
    return Path(checkpoint).expanduser() if checkpoint else default_checkpoint(arch)


@cache
def _file_hash(path: str, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_revision(params: dict) -> str:
    """Revision recorded in results: hash of the checkpoint's weights + config (+ base encoder)."""
    folder = resolve_checkpoint(params.get("arch", "lvm-t"), params.get("checkpoint"))
    h = hashlib.sha256(
        f"{params.get('arch')}|{params.get('base_encoder')}|{params.get('target_words')}".encode()
    )
    for name in ("config.json", "model.safetensors"):
        p = folder / name
        if p.exists():
            h.update(_file_hash(str(p), p.stat().st_mtime).encode())
    return h.hexdigest()[:12]


def _prompt_kind(prompt_type: object) -> str | None:
    if prompt_type is None:
        return None
    return str(getattr(prompt_type, "value", prompt_type)).lower()


class LVMRetriever:
    """An encoder whose query vector is an LVM's prediction of the next chunk vector."""

    def __init__(
        self,
        arch: str = "lvm-t",
        checkpoint: str | None = None,
        base_encoder: str | None = None,
        target_words: int | None = None,
        device: str | None = None,
    ) -> None:
        from .models import TorchPredictor, load_checkpoint

        self.arch = arch
        self.checkpoint = resolve_checkpoint(arch, checkpoint)
        model, self.config = load_checkpoint(self.checkpoint)
        if self.config.get("arch") != arch:
            raise lam_mteb.LamMtebError(
                f"checkpoint {self.checkpoint} is a {self.config.get('arch')!r} model, not {arch!r}"
            )
        self.predictor = TorchPredictor(model)
        self.context = int(self.config["model"]["context"])
        self.base_encoder_name = base_encoder or self.config.get("base_encoder", "minilm")
        self.target_words = int(target_words or self.config.get("target_words", 64))
        self.device = device
        self._base: lam_mteb.Encoder | None = None

    @property
    def base(self) -> lam_mteb.Encoder:
        if self._base is None:
            self._base = lam_mteb.get_encoder(self.base_encoder_name)
        return self._base

    # ----------------------------------------------------------------- encoder protocol
    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        prompt_type: object = None,
        **kwargs: Any,
    ) -> np.ndarray:
        if _prompt_kind(prompt_type) == "query":
            return self.encode_queries(
                texts, batch_size=batch_size, show_progress_bar=show_progress_bar
            )
        return self.encode_documents(
            texts, batch_size=batch_size, show_progress_bar=show_progress_bar
        )

    def encode_documents(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        **kwargs: Any,
    ) -> np.ndarray:
        return self._base_encode(list(texts), batch_size, show_progress_bar)

    def encode_queries(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        **kwargs: Any,
    ) -> np.ndarray:
        texts = list(texts)
        per_query: list[list[str]] = []
        for t in texts:
            chunks = data.chunk_sentences(data.split_sentences(t), self.target_words) or [
                t if t.strip() else " "
            ]
            per_query.append(chunks[-self.context :])
        flat = [c for cs in per_query for c in cs]
        vecs = (
            metrics.normalize(self._base_encode(flat, batch_size, show_progress_bar))
            if flat
            else None
        )
        ctx = np.zeros(
            (len(texts), self.context, vecs.shape[1] if vecs is not None else 1), np.float32
        )
        pos = 0
        for i, cs in enumerate(per_query):
            assert vecs is not None  # every query has at least one chunk, so flat is not empty
            v = vecs[pos : pos + len(cs)]
            pos += len(cs)
            pad = self.context - len(cs)
            ctx[i] = np.concatenate([np.repeat(v[:1], pad, axis=0), v]) if pad > 0 else v
        return self.predict_next(ctx)

    def predict_next(self, context: np.ndarray) -> np.ndarray:
        context = np.asarray(context, dtype=np.float32)
        if context.ndim != 3:
            raise lam_mteb.LamMtebError(
                f"predict_next expects (n, k, d) context vectors, got shape {context.shape}"
            )
        return self.predictor(metrics.normalize(context)).astype(np.float32)

    def _base_encode(
        self, texts: list[str], batch_size: int, show_progress_bar: bool
    ) -> np.ndarray:
        v = encode_texts(
            self.base,
            texts,
            prompt_type="document",
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
        )
        return np.asarray(v, dtype=np.float32)


def make_lvm_t(
    checkpoint: str | None = None, base_encoder: str | None = None, target_words: int | None = None
) -> LVMRetriever:
    return LVMRetriever("lvm-t", checkpoint, base_encoder, target_words)


def make_amn(
    checkpoint: str | None = None, base_encoder: str | None = None, target_words: int | None = None
) -> LVMRetriever:
    return LVMRetriever("amn", checkpoint, base_encoder, target_words)


def make_lvm_r(
    checkpoint: str | None = None, base_encoder: str | None = None, target_words: int | None = None
) -> LVMRetriever:
    return LVMRetriever("lvm-r", checkpoint, base_encoder, target_words)
