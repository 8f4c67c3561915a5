"""LAM v2's lexical channel: one dense vector that stands in for a sparse bag of word pieces.

A document's bag of MiniLM word pieces, weighted like BM25 (``log(1 + tf) * idf``, the idf table
shipped in the v2 checkpoint), is projected to ``dim`` dimensions by a fixed random sign matrix
(Achlioptas' ±1/√dim projection: dot products of the projections are unbiased estimates of the
sparse vectors' dot products, with an error that shrinks as 1/√dim).  Two texts that share rare
word pieces get a high cosine; the projection has no parameters to train and needs no table in
memory: the sign of entry (t, j) is a hash of (t, j, seed), computed for the word pieces present.

The vectors are streamed: a document's counts are accumulated window by window (bounded by the
vocabulary, not by the length), and the projection is taken once at the end.

``vectors="minilm"`` projects with MiniLM's own (centred) input word-piece embeddings instead of
random signs: 384 dimensions in which related word pieces overlap (measured in docs/lam.md: it
scores far below the random signs on QMSum dev, because it cannot tell rare terms apart).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

_M32 = 0xFFFFFFFF
_BLOCK = 2048  # word pieces projected at a time (bounds the temporary float sign rows)


def tf_weight(counts: Tensor, tf: str) -> Tensor:
    """Term-frequency weighting of a count tensor (``log``: log(1 + tf), BM25-like saturation)."""
    if tf == "log":
        return torch.log1p(counts)
    if tf == "binary":
        return (counts > 0).to(counts.dtype)
    return counts


def hashed_signs(token_ids: Tensor, dim: int, seed: int = 0) -> Tensor:
    """[len(token_ids), dim] matrix of ±1/√dim, a fixed function of (token id, column, seed).

    A 32-bit integer hash (multiply-xorshift, as in murmur3's finaliser) of token id and column;
    the same on every machine and torch version (integer arithmetic only)."""
    t = token_ids.to(torch.int64)[:, None]
    j = torch.arange(dim, dtype=torch.int64)[None, :]
    h = (t * 0x9E3779B1 + j * 0x85EBCA77 + seed * 0xC2B2AE3D + 0x27D4EB2F) & _M32
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & _M32
    h = h ^ (h >> 15)
    h = (h * 0x846CA68B) & _M32
    h = h ^ (h >> 16)
    return (1.0 - 2.0 * (h & 1).to(torch.float32)) / dim**0.5


@lru_cache(maxsize=4)
def sign_table(vocab: int, dim: int, seed: int = 0) -> Tensor:
    """[vocab, dim] bool: True where ``hashed_signs`` is negative (1 byte per entry, built once)."""
    table = torch.empty(vocab, dim, dtype=torch.bool)
    for start in range(0, vocab, 128):  # small blocks: the int64 hash temporaries stay ~2 MB
        ids = torch.arange(start, min(start + 128, vocab))
        table[start : start + len(ids)] = hashed_signs(ids, dim, seed) < 0
    return table


def project_bags(
    counts: Tensor,
    idf: Tensor,
    *,
    tf: str = "log",
    vectors: str = "hashed",
    dim: int = 1024,
    table: Tensor | None = None,
    seed: int = 0,
) -> Tensor:
    """Bags of word pieces [n, vocab] (counts) -> lexical vectors [n, dim] (unnormalised).

    ``vectors="hashed"``: random ±1 signs (``hashed_signs``) for the word pieces present;
    ``vectors="minilm"``: ``table`` [vocab, 384] (MiniLM's centred input embeddings)."""
    weights = tf_weight(counts.float(), tf) * idf[None, :].float()
    if vectors == "minilm":
        if table is None:
            raise ValueError("vectors='minilm' needs the embedding table")
        return weights @ table.float()
    present = torch.nonzero(weights.abs().sum(0) > 0).flatten()
    if present.numel() == 0:
        return weights.new_zeros(weights.shape[0], dim)
    table = sign_table(weights.shape[1], dim, seed)
    out = weights.new_zeros(weights.shape[0], dim)
    # in blocks of word pieces: a long document has tens of thousands of distinct ones, and their
    # float sign rows at once would grow memory with the document (+175 MB at 264 k tokens)
    for start in range(0, present.numel(), _BLOCK):
        ids = present[start : start + _BLOCK]
        out += weights[:, ids] @ ((1.0 - 2.0 * table[ids].to(torch.float32)) / dim**0.5)
    return out


def reference_project(bag: dict[int, int], idf: Tensor, dim: int, seed: int = 0) -> Tensor:
    """Plain-Python reference of the hashed, log-tf projection of one bag {token id: count}."""
    out = torch.zeros(dim, dtype=torch.float64)
    for t, c in bag.items():
        w = float(torch.log1p(torch.tensor(float(c)))) * float(idf[t])
        for j in range(dim):
            h = (t * 0x9E3779B1 + j * 0x85EBCA77 + seed * 0xC2B2AE3D + 0x27D4EB2F) & _M32
            h ^= h >> 16
            h = (h * 0x7FEB352D) & _M32
            h ^= h >> 15
            h = (h * 0x846CA68B) & _M32
            h ^= h >> 16
            out[j] += w * (1.0 - 2.0 * (h & 1)) / dim**0.5
    return out.float()
