"""``bm25``: mteb's own BM25 baseline (``mteb/baseline-bm25s``) through the bridge.

The factory returns mteb's ``BM25Search`` (a search model: ``index`` + ``search``, no ``encode``),
which the bridge hands to mteb unchanged; so it runs retrieval tasks only, exactly as mteb's
``mteb/baseline-bm25s`` does.  Defaults are mteb's: Lucene BM25, k1 = 1.5, b = 0.75; for an
English task bm25s' English stopwords and PyStemmer's Snowball English stemmer (chosen from the
task's language by mteb's code).  Needs ``bm25s`` and ``PyStemmer``: ``pip install
'lam-mteb[baselines]'``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Literal

import lam_mteb

if TYPE_CHECKING:
    from mteb.models.model_implementations.bm25 import BM25Search

DEFAULTS = {
    "k1": 1.5,
    "b": 0.75,
    "delta": 0.5,
    "method": "lucene",
    "stopwords": None,
    "stemmer_language": None,
    "freq_threshold": 0.9,
}
INSTALL_HINT = "pip install 'lam-mteb[baselines]'"


def _require() -> None:
    missing = []
    for module, dist in (("bm25s", "bm25s"), ("Stemmer", "PyStemmer")):
        try:
            __import__(module)
        except ImportError:
            missing.append(dist)
    if missing:
        raise lam_mteb.LamMtebError(
            f"bm25 needs {' and '.join(missing)}, which are not installed: {INSTALL_HINT}"
        )


def create_bm25(
    k1: float = 1.5,
    b: float = 0.75,
    delta: float = 0.5,
    method: Literal["robertson", "lucene", "atire"] = "lucene",
    stopwords: str | None = None,
    stemmer_language: str | None = None,
    freq_threshold: float = 0.9,
) -> BM25Search:
    """mteb's ``BM25Search`` (bm25s); ``stopwords`` / ``stemmer_language`` None = from the task's
    language."""
    _require()
    from mteb.models.model_implementations.bm25 import BM25Search

    return BM25Search(
        k1=k1,
        b=b,
        delta=delta,
        method=method,
        stopwords=stopwords,
        stemmer_language=stemmer_language,
        freq_threshold=freq_threshold,
    )


def revision(params: dict) -> str:
    """mteb's revision of its BM25 model plus a hash of our params and the bm25s version."""
    try:
        from importlib.metadata import version

        bm25s_version = version("bm25s")
    except Exception:  # noqa: BLE001 - not installed: the factory says how to install it
        bm25s_version = "absent"
    blob = repr((sorted(params.items()), bm25s_version))
    return f"bm25s-{bm25s_version}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


#: the ``bm25`` kind's registration (baselines/__init__.py): a search model, so no vectors, no
#: parameters and mteb's own retrieval scoring
REGISTRATION = {
    "params": dict(DEFAULTS),
    "revision": revision,
    "description": (
        "mteb's BM25 baseline (bm25s, Lucene BM25 k1=1.5 b=0.75; English stopwords + "
        "Snowball stemmer for English tasks); retrieval tasks only"
    ),
    "adapted_from": "mteb/baseline-bm25s",
    "reference": "https://github.com/xhluca/bm25s",
    "license": "mit",
    "release_date": "2024-07-04",
    "model_type": ["sparse"],
    "embed_dim": None,
    "n_parameters": 0,
    "similarity_fn_name": None,
}
