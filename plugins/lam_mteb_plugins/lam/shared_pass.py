"""One streaming pass for every LAM pooling: the first LAM encoder computes mean and state vectors
with ``encode_all``; the others (another pooling, another hybrid weight) read them.

Used by research/long_context.py's position analysis; tests/test_longembed_benchmark.py covers it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lam_mteb.atomic import atomic_file

#: numpy.savez with arrays by name (its stubs type the keywords as its own flags)
_savez: Callable[..., None] = np.savez


class SharedPoolingCache:
    """One streaming pass for every LAM pooling: texts -> mean and state vectors.

    Keyed by the encoder's configuration (weights, chunk size, state pooling's diag weight) and the
    text's hash, so two encoders share results only when they would compute the same vectors.
    The hybrid pooling is mixed from the stored mean and state with each encoder's own
    ``hybrid(mean, state)``, so every hybrid weight shares the pass too.  With ``folder`` the
    vectors are also kept on disk (one ``<signature>.npz`` per configuration): a later run, e.g.
    after changing a hybrid weight, re-encodes nothing."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.store: dict[tuple[str, bytes], dict[str, np.ndarray]] = {}
        self.computed_texts = 0
        self.folder = Path(folder) if folder else None
        self._loaded: set[str] = set()

    @staticmethod
    def signature(encoder: Any) -> str:
        h = hashlib.sha1(type(encoder).__qualname__.encode())
        attrs = (
            ("diag_weight", "chunk_size")
            if hasattr(encoder, "hybrid")
            else ("hybrid_weight", "state_weight", "diag_weight", "chunk_size")
        )
        for attr in attrs:
            h.update(repr(getattr(encoder, attr, None)).encode())
        model = getattr(encoder, "model", None)
        if model is not None and hasattr(model, "state_dict"):
            for name, tensor in sorted(model.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def _file(self, sig: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{sig[:16]}.npz"

    def _load(self, sig: str) -> None:
        if self.folder is None or sig in self._loaded:
            return
        self._loaded.add(sig)
        path = self._file(sig)
        if path.is_file():
            with np.load(path) as z:
                if str(z["signature"]) == sig:
                    poolings = [str(p) for p in z["poolings"]]
                    for key, *vecs in zip(z["keys"], *(z[p] for p in poolings), strict=True):
                        self.store[(sig, bytes.fromhex(str(key)))] = dict(
                            zip(poolings, vecs, strict=True)
                        )

    def _save(self, sig: str) -> None:
        if self.folder is None:
            return
        items = [(k[1], v) for k, v in self.store.items() if k[0] == sig]
        poolings = sorted(items[0][1])
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(self._file(sig), suffix=".tmp.npz") as tmp:  # np.savez appends .npz
            arrays: dict[str, np.ndarray] = {
                "signature": np.array(sig),
                "poolings": np.array(poolings),
                "keys": np.array([k.hex() for k, _ in items]),
                **{p: np.stack([v[p] for _, v in items]) for p in poolings},
            }
            _savez(tmp, **arrays)

    def wrap(self, encoder: Any, pooling: str) -> None:
        """Replace ``encoder.encode`` by a reader of the shared pass (``pooling``: mean, state or
        hybrid); an encoder without ``encode_all`` is left as it is."""
        if not hasattr(encoder, "encode_all"):
            return  # an encoder without encode_all runs on its own
        cache, sig = self, self.signature(encoder)
        kept = ("mean", "state") if hasattr(encoder, "hybrid") else ("mean", "state", "hybrid")
        cache._load(sig)

        def encode(
            texts: list[str],
            *,
            batch_size: int | None = None,
            show_progress_bar: bool = False,
            **kwargs: Any,
        ) -> np.ndarray:
            keys = [(sig, hashlib.sha1(t.encode("utf-8", "surrogatepass")).digest()) for t in texts]
            todo: dict[tuple[str, bytes], str] = {}
            for k, t in zip(keys, texts, strict=True):
                if k not in cache.store and k not in todo:
                    todo[k] = t
            if todo:
                out = encoder.encode_all(
                    list(todo.values()), batch_size=batch_size, show_progress_bar=show_progress_bar
                )
                for j, k in enumerate(todo):
                    cache.store[k] = {p: np.asarray(out[p][j], dtype=np.float32) for p in kept}
                cache.computed_texts += len(todo)
                cache._save(sig)
            if len(keys) == 0:
                return np.zeros((0, getattr(encoder, "embed_dim", 384)), dtype=np.float32)
            if pooling == "hybrid" and "hybrid" not in kept:
                mean = np.stack([cache.store[k]["mean"] for k in keys])
                state = np.stack([cache.store[k]["state"] for k in keys])
                return np.asarray(encoder.hybrid(mean, state), dtype=np.float32)
            return np.stack([cache.store[k][pooling] for k in keys]).astype(np.float32)

        encoder.encode = encode
