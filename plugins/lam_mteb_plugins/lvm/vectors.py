"""Chunk-vector cache: each chunk is encoded once per encoder, reused by training and task runs.

Key = encoder fingerprint + sha1 of the chunk text.  The fingerprint is the sha256 of the
encoder's vectors for a few fixed probe sentences (rounded to 1e-4): a revision derived from what
the encoder computes, so it changes whenever weights, pooling or truncation change, and two names
for the same encoder (``minilm`` and the document side of ``lvm-t``) share one cache.  Keying by
chunk text (rather than by split) means a change of data or chunking re-encodes only the chunks
that changed.  Store: ``lam_mteb.cache_dir()/lvm/chunks-<fingerprint>.{keys,vecs}.npy``.
Set ``LAM_MTEB_LVM_NO_CACHE=1`` to bypass it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

import lam_mteb
from lam_mteb.atomic import atomic_file

PROBES = [
    "The cat sat on the mat.",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons.",
    "In 1851 Herman Melville published a long novel about a whaling voyage.",
    "Startups grow fast because they make something people want.",
    "She walked slowly to the window, looked out at the rain, and said nothing for a while.",
    "The battleship was scrapped after the war.",
]

#: texts -> their vectors (n, d), as anything np.asarray takes
EncodeFn = Callable[[list[str]], npt.ArrayLike]


def fingerprint(encode_fn: EncodeFn) -> str:
    v = np.asarray(encode_fn(list(PROBES)), dtype=np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    q = np.round(v.astype(np.float64), 4) + 0.0  # + 0.0 turns -0.0 into 0.0
    return hashlib.sha256(f"{v.shape}".encode() + q.tobytes()).hexdigest()[:16]


def cache_enabled() -> bool:
    return os.environ.get("LAM_MTEB_LVM_NO_CACHE", "").strip().lower() not in {"1", "true", "yes"}


def text_key(text: str) -> bytes:
    return (
        hashlib.sha1(text.encode("utf-8")).hexdigest().encode()
    )  # hex: numpy "S" strips trailing NULs


def _paths(fp: str) -> tuple[Path, Path]:
    d = lam_mteb.cache_dir() / "lvm"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"chunks-{fp}.keys.npy", d / f"chunks-{fp}.vecs.npy"


def _load_store(fp: str) -> tuple[dict[bytes, int], np.ndarray | None]:
    kp, vp = _paths(fp)
    if not (kp.exists() and vp.exists()):
        return {}, None
    try:
        keys, vecs = np.load(kp), np.load(vp)
    except (OSError, ValueError):
        return {}, None
    if len(keys) != len(vecs):
        return {}, None
    return {bytes(k): i for i, k in enumerate(keys)}, vecs


def _atomic_save(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, suffix=".tmp.npy") as tmp:  # np.save appends .npy to other names
        np.save(tmp, array)


def lookup(fp: str, texts: list[str]) -> tuple[np.ndarray | None, list[int]]:
    """(vectors with rows for cached texts, indices of texts that are not cached)."""
    if not cache_enabled():
        return None, list(range(len(texts)))
    index, store = _load_store(fp)
    if store is None:
        return None, list(range(len(texts)))
    out = np.zeros((len(texts), store.shape[1]), np.float32)
    missing = []
    for i, t in enumerate(texts):
        row = index.get(text_key(t))
        if row is None:
            missing.append(i)
        else:
            out[i] = store[row]
    return out, missing


def add(fp: str, texts: list[str], vectors: np.ndarray) -> None:
    if not cache_enabled() or not texts:
        return
    vectors = np.asarray(vectors, dtype=np.float32)
    index, store = _load_store(fp)
    if store is not None and store.shape[1] != vectors.shape[1]:
        index, store = {}, None
    new_keys, new_rows = [], []
    for t, v in zip(texts, vectors, strict=False):
        k = text_key(t)
        if k not in index:
            index[k] = -1
            new_keys.append(k)
            new_rows.append(v)
    if not new_keys:
        return
    kp, vp = _paths(fp)
    old_keys = np.load(kp) if store is not None else np.zeros(0, dtype="S40")
    keys = np.concatenate([old_keys, np.array(new_keys, dtype="S40")])
    vecs = np.concatenate([store, np.stack(new_rows)]) if store is not None else np.stack(new_rows)
    _atomic_save(vp, vecs)
    _atomic_save(kp, keys)


def encode_cached(encode_fn: EncodeFn, texts: list[str], *, fp: str) -> np.ndarray:
    """Vectors for ``texts``: cached ones from the store, the others from ``encode_fn`` (then
    stored)."""
    out, missing = lookup(fp, texts)
    if not missing:
        # every text was cached; out is None only for no texts at all (then an empty array)
        return out if out is not None else np.zeros((0, 0), np.float32)
    todo = [texts[i] for i in missing]
    new = np.asarray(encode_fn(todo), dtype=np.float32)
    if out is None or out.shape[1] != new.shape[1]:
        out = np.zeros((len(texts), new.shape[1]), np.float32)
    out[missing] = new
    add(fp, todo, new)
    return out


def train_sample_indices(n: int, size: int, seed: int) -> np.ndarray:
    """The fixed subsample of train chunks the task uses for the mean-vector baseline."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
