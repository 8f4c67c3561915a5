"""Tiny generated fixtures for the LVM tests and examples (no ../shared data, no model
downloads)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lam_mteb.contract import Embeddings, Encoder

TOPICS = {
    "whales": "whale ship harpoon sea captain sailor ocean boat crew voyage",
    "gardens": "garden flower soil seed rose tulip water sun leaf root",
    "startups": "startup founder investor product user growth money idea company market",
    "castles": "castle king knight tower siege wall moat army queen battle",
    "planets": "planet orbit star moon telescope comet gravity mars jupiter sky",
    "cooking": "recipe oven bread butter salt pepper onion soup kitchen flour",
}


def sentence(rng: np.random.Generator, topic: str, n_words: int = 9) -> str:
    words = rng.choice(TOPICS[topic].split(), size=n_words)
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


def write_corpus(
    folder: Path, n_docs: int = 12, sentences_per_doc: int = 40, seed: int = 0, short_docs: int = 2
) -> Path:
    """Documents whose topic drifts slowly, plus ``short_docs`` one-sentence documents."""
    rng = np.random.default_rng(seed)
    topics = list(TOPICS)
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(n_docs):
        sub = folder / ("essays" if d % 2 else "articles")
        sub.mkdir(exist_ok=True)
        t0, t1 = rng.choice(len(topics), size=2, replace=False)
        paras = []
        for i in range(sentences_per_doc):
            topic = topics[t0] if rng.random() > i / sentences_per_doc else topics[t1]
            paras.append(sentence(rng, topic))
        (sub / f"doc{d:02d}.txt").write_text(
            "\n\n".join(" ".join(paras[i : i + 3]) for i in range(0, len(paras), 3))
        )
    for s in range(short_docs):
        (folder / "articles" / f"short{s}.txt").write_text(sentence(rng, topics[s]))
    (folder / "articles" / "LICENSE").write_text("Not a document. " * 200)
    return folder


def word_vector(word: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.lower().encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class HashEncoder:
    """Deterministic bag-of-words encoder: sum of per-word random vectors, L2-normalised."""

    def __init__(self, dim: int = 32) -> None:
        self.dim = dim
        self.calls = 0

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        **kwargs: Any,
    ) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.replace(".", " ").split():
                out[i] += word_vector(w, self.dim)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class FakeMtebModel:
    """What the bridge hands an mteb task: ``encode(DataLoader, ...)`` + ``.encoder``."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.prompt_types: list[object] = []

    def encode(
        self,
        inputs: Iterable[Mapping[str, Sequence[str]]],
        *,
        task_metadata: object,
        hf_split: str,
        hf_subset: str,
        prompt_type: object = None,
        **kwargs: Any,
    ) -> Embeddings:
        self.prompt_types.append(getattr(prompt_type, "value", prompt_type))
        texts = [t for batch in inputs for t in batch["text"]]
        return self.encoder.encode(texts)


def drifting_sequences(
    n_docs: int = 60, length: int = 20, dim: int = 16, seed: int = 0
) -> tuple[np.ndarray, list[int]]:
    """Vectors x_{t+1} = normalize(R x_t + noise) with a fixed rotation R: a learnable dynamic
    that the linear average cannot follow.  Returns (vectors, sequences-compatible doc ids)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    vecs: list[np.ndarray] = []
    docs: list[int] = []
    for d in range(n_docs):
        x = rng.standard_normal(dim)
        x /= np.linalg.norm(x)
        for _ in range(length):
            vecs.append(x.copy())
            docs.append(d)
            x = q @ x + 0.05 * rng.standard_normal(dim)
            x /= np.linalg.norm(x)
    return np.array(vecs, np.float32), docs
