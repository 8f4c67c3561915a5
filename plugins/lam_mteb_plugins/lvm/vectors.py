"""Chunk-vector cache: encode once per (encoder, data), reuse in training and repeated task runs.

Key = encoder fingerprint + data hash + split (+ sample size).  The fingerprint is the sha256 of
the encoder's vectors for a few fixed probe sentences (rounded to 1e-4), so it changes whenever
weights, pooling or truncation change, and two names for the same encoder (``minilm`` and the
document side of ``lvm-t``) share one cache.  Files live in ``lam_mteb.cache_dir()/lvm/``.
Set ``LAM_MTEB_LVM_NO_CACHE=1`` to bypass the cache.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

import lam_mteb

PROBES = [
    "The cat sat on the mat.",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons.",
    "In 1851 Herman Melville published a long novel about a whaling voyage.",
    "Startups grow fast because they make something people want.",
    "She walked slowly to the window, looked out at the rain, and said nothing for a while.",
    "The battleship was scrapped after the war.",
]

EncodeFn = Callable[[list[str]], np.ndarray]


def fingerprint(encode_fn: EncodeFn) -> str:
    v = np.asarray(encode_fn(list(PROBES)), dtype=np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    q = np.round(v.astype(np.float64), 4) + 0.0  # + 0.0 turns -0.0 into 0.0
    return hashlib.sha256(f"{v.shape}".encode() + q.tobytes()).hexdigest()[:16]


def cache_enabled() -> bool:
    return os.environ.get("LAM_MTEB_LVM_NO_CACHE", "").strip() not in {"1", "true", "yes"}


def cache_path(fp: str, data_hash: str, name: str) -> Path:
    d = lam_mteb.cache_dir() / "lvm"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"vectors-{fp}-{data_hash}-{name}.npy"


def load(fp: str, data_hash: str, name: str, n: int) -> np.ndarray | None:
    if not cache_enabled():
        return None
    p = cache_path(fp, data_hash, name)
    if not p.exists():
        return None
    try:
        v = np.load(p)
    except (OSError, ValueError):
        return None
    return v if v.ndim == 2 and v.shape[0] == n else None


def save(fp: str, data_hash: str, name: str, vectors: np.ndarray) -> None:
    if not cache_enabled():
        return
    p = cache_path(fp, data_hash, name)
    tmp = p.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, np.asarray(vectors, dtype=np.float32))
    os.replace(tmp, p)


def encode_cached(encode_fn: EncodeFn, texts: list[str], *, fp: str, data_hash: str, name: str) -> np.ndarray:
    """Vectors for ``texts`` from the cache, else from ``encode_fn`` (then cached)."""
    v = load(fp, data_hash, name, len(texts))
    if v is None:
        v = np.asarray(encode_fn(texts), dtype=np.float32)
        save(fp, data_hash, name, v)
    return v


def train_sample_indices(n: int, size: int, seed: int) -> np.ndarray:
    """The fixed subsample of train chunks the task uses for the mean-vector baseline."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
