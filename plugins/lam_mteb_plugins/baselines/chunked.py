"""``chunked``: any registered encoder over token windows of a long text.

A text is cut into windows on the **inner model's own tokenizer** (an encoder without one: on
words, below):

- ``window`` counts the inner model's input tokens *including* its special tokens (the meaning of
  sentence-transformers' ``max_seq_length``); default: the inner model's limit.  all-MiniLM-L6-v2:
  256 → 254 content tokens + [CLS] + [SEP], so no window is ever truncated by the inner model.
- windows cover every token in order; consecutive windows share ``overlap`` tokens at most (the
  longest run of whole words that fits in ``overlap``; 0 = each token in exactly one window);
- a window never ends inside a word (word pieces of one word stay together), so the window's text —
  a slice of the original string — tokenises to exactly the window's tokens.  Only a single
  "word" longer than a whole window is cut between its pieces.
- a text that fits in one window is passed to the inner encoder **unchanged**: its vector is
  exactly the inner model's (so chunking never changes short-text results).

Poolings:

- ``mean`` — one vector per text: the token-weighted mean of its window vectors,
  ``sum_w n_w v_w / sum_w n_w`` (n_w = the window's content tokens).  Streaming: windows are
  encoded in batches and only a running sum is kept, so memory does not grow with the length.
- ``max`` — multi-vector: for retrieval, every text is its list of window vectors and a query
  scores a document by MaxSim — for each query window the best cosine over the document's
  windows, summed over the query's windows (ColBERT's late interaction, as mteb's multi-vector
  models score; a query that fits in one window simply gets the best window's cosine).  The
  encoder supplies ``similarity`` / ``similarity_pairwise``, which the bridge hands to mteb.
  Outside retrieval (``prompt_type`` None, e.g. STS) a text gets one vector, pooled as ``mean``.

The tokenizer is found through a small optional protocol (see :func:`find_tokenizer`): an
encoder attribute ``tokenizer`` (a Hugging Face ``tokenizers.Tokenizer`` or a fast ``transformers``
tokenizer), else ``encoder.model.tokenizer`` (sentence-transformers).  Its limit: ``max_seq_length``
on the encoder or its ``.model``.

**An encoder without a tokenizer** (a plain ``encode(texts)`` plugin) is cut into windows of
**words** — runs of non-whitespace characters — with the same rules, a word counting as one token
and no special tokens: ``window`` and ``overlap`` count words, a window's text is the slice of the
original string from its first word to its last, a text of at most ``window`` words is passed
unchanged, and ``mean`` weights each window by its words.  ``window`` defaults to the encoder's
``max_seq_length`` if it has one; otherwise give it.

Window vectors are cached by window text (an LRU of ``cache_size`` vectors shared by every chunked
model over the same inner model in one process): documents that repeat text (Passkey's filler,
Needle's shared haystack) and a second pooling over the same inner model reuse them.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeGuard

import numpy as np
import numpy.typing as npt

import lam_mteb

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer

#: what mteb hands ``similarity``: one vector per text (array or tensor), or for ``pool: max``
#: one ``(n_windows, dim)`` array per text
Vectors: TypeAlias = "npt.ArrayLike | torch.Tensor | Sequence[npt.ArrayLike | torch.Tensor]"

DEFAULTS = {
    "encoder": "minilm",
    "window": None,
    "overlap": 0,
    "pool": "mean",
    "batch_size": 32,
    "cache_size": 50_000,
}
POOLS = ("mean", "max")
PIECE_CHARS = 16_384  # characters tokenised at a time (cut at whitespace): long texts stream
_WS = re.compile(r"\s")
_WORD = re.compile(r"\S+")


# -- registry-time validation and metadata -------------------------------------------------------


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _window(params: dict, name: str, limit: object) -> int:
    """``window`` (default: the inner model's finite max_tokens), checked against that limit."""
    finite = (
        limit if isinstance(limit, (int, float)) and math.isfinite(limit) and limit > 0 else None
    )
    window = params.get("window")
    if window is None:
        if finite is None:
            raise ValueError(
                f"encoder {name!r} declares no finite max_tokens ({limit!r}); give `window` "
                "(tokens per window, special tokens included)"
            )
        return int(finite)
    if not _is_int(window) or window < 1:
        raise ValueError(f"window must be a whole number of tokens >= 1, got {window!r}")
    if finite is not None and window > finite:
        raise ValueError(
            f"window {window} is larger than {name!r}'s limit of {int(finite)} tokens (its "
            f"max_tokens, special tokens included); use window <= {int(finite)}"
        )
    return window


def _check_sizes(params: dict) -> None:
    for key in ("batch_size", "cache_size"):
        value = params.get(key, DEFAULTS[key])
        if not _is_int(value) or value < (1 if key == "batch_size" else 0):
            raise ValueError(
                f"{key} must be a whole number >= {1 if key == 'batch_size' else 0}, got {value!r}"
            )


def _derived_metadata(inner: Any, pool: str, window: int, overlap: int) -> dict:
    """The chunked model's metadata: the inner model's, any length, pool-dependent similarity."""
    md = inner.metadata
    derived: dict[str, Any] = {
        "embed_dim": md.get("embed_dim"),
        "max_tokens": float("inf"),  # any length: every token lands in a window
        "n_parameters": md.get("n_parameters"),
        "languages": md.get("languages"),
        "license": md.get("license"),
        "open_weights": md.get("open_weights", True),
        "adapted_from": inner.full_name,
        "similarity_fn_name": "MaxSim"
        if pool == "max"
        else (md.get("similarity_fn_name") or "cosine"),
        "model_type": ["late-interaction"] if pool == "max" else ["dense"],
        "training_datasets": md.get("training_datasets"),
        "reference": md.get("reference"),
    }
    # the revision changes when the inner model's revision or any output-affecting param changes
    # (batch_size and cache_size do not affect the vectors)
    blob = repr(("chunked/1", inner.full_name, inner.revision, window, overlap, pool))
    derived["revision"] = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return {k: v for k, v in derived.items() if v is not None}


def configure(params: dict, lookup: Callable[[str], Any]) -> dict:
    """Validate a ``chunked`` configuration against its inner model; derive its metadata.

    Raises ValueError (reported by the registry as one line naming the registry file and line) for
    an unknown inner encoder, a window larger than the inner model's limit, a negative overlap, an
    overlap not smaller than the window or an unknown pool.
    """
    name = params.get("encoder")
    if not isinstance(name, str) or not name:
        raise ValueError(
            "chunked needs `encoder`: the name of a registered model (`lam-mteb models`)"
        )
    try:
        inner = lookup(name)
    except lam_mteb.LamMtebError as exc:
        raise ValueError(f"encoder: {exc}") from None
    pool = params.get("pool", "mean")
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    overlap = params.get("overlap", 0)
    if not _is_int(overlap) or overlap < 0:
        raise ValueError(f"overlap must be a whole number of tokens >= 0, got {overlap!r}")
    window = _window(params, name, inner.metadata.get("max_tokens"))
    if overlap >= window:
        raise ValueError(f"overlap {overlap} must be smaller than the window ({window} tokens)")
    _check_sizes(params)
    return _derived_metadata(inner, pool, window, overlap)


#: the ``chunked`` kind's registration (baselines/__init__.py); ``configure`` derives the rest
REGISTRATION = {
    "params": dict(DEFAULTS),
    "configure": configure,
    "description": "any registered encoder over token windows of a long text (pool: mean | max)",
    "license": "apache-2.0",
}


# -- the tokenizer protocol ---------------------------------------------------------------------


def find_tokenizer(encoder: Any) -> Tokenizer | None:
    """The inner encoder's tokenizer as a ``tokenizers.Tokenizer`` without truncation or padding.

    Optional protocol for encoders that want ``chunked`` to cut windows on their own tokenizer:
    an attribute ``tokenizer`` holding a Hugging Face ``tokenizers.Tokenizer`` or a fast
    ``transformers`` tokenizer (``PreTrainedTokenizerFast``); sentence-transformers models are
    found through ``encoder.model.tokenizer``.  None for anything else (windows of words).
    """
    from tokenizers import Tokenizer

    candidates = [
        getattr(encoder, "tokenizer", None),
        getattr(getattr(encoder, "model", None), "tokenizer", None),
    ]
    for tok in candidates:
        if tok is None:
            continue
        backend = getattr(tok, "backend_tokenizer", None)
        if isinstance(backend, Tokenizer):
            tok = backend
        if isinstance(tok, Tokenizer):
            tok = Tokenizer.from_str(tok.to_str())  # a private copy: no truncation, no padding
            tok.no_truncation()
            tok.no_padding()
            return tok
    return None


def find_max_seq_length(encoder: Any) -> int | None:
    """Tokens per input the inner encoder keeps (special tokens included), if it says."""
    for obj in (encoder, getattr(encoder, "model", None)):
        value = getattr(obj, "max_seq_length", None)
        if _is_int(value) and value > 0:
            return value
    return None


def special_tokens_count(tok: Tokenizer) -> int:
    processor = getattr(tok, "post_processor", None)
    if processor is None:
        return 0
    return int(processor.num_special_tokens_to_add(False))


# -- windows -------------------------------------------------------------------------------------


def iter_words(
    text: str, tok: Tokenizer | None, piece_chars: int = PIECE_CHARS
) -> Iterator[tuple[int, int, list[tuple[int, int]]]]:
    """``(start_char, end_char, token_offsets)`` of every word of ``text``, in order, streaming.

    A word is a run of tokens with one word id (all pieces of one word).  Long texts are tokenised
    ``piece_chars`` characters at a time, cut at whitespace (where the pre-tokenizer splits anyway),
    so no token list of the whole text is ever held.  Without a tokenizer (``tok`` None) a word is
    a run of non-whitespace characters and its own single token.
    """
    if tok is None:
        for m in _WORD.finditer(text):
            yield m.start(), m.end(), [(m.start(), m.end())]
        return
    start, n = 0, len(text)
    while start < n:
        end = min(start + piece_chars, n)
        if end < n:  # cut at the piece's last whitespace (none in PIECE_CHARS chars: cut anyway)
            last = None
            for m in _WS.finditer(text, start, end):
                last = m.start()
            if last is not None and last > start:
                end = last
        enc = tok.encode(text[start:end], add_special_tokens=False)
        current: int | None = None
        offsets: list[tuple[int, int]] = []
        for wid, (s, e) in zip(enc.word_ids, enc.offsets, strict=True):
            if wid != current or wid is None:
                if offsets:
                    yield offsets[0][0], offsets[-1][1], offsets
                current, offsets = wid, []
            offsets.append((start + s, start + e))
        if offsets:
            yield offsets[0][0], offsets[-1][1], offsets
        start = end


def iter_windows(
    text: str, tok: Tokenizer | None, content: int, overlap: int = 0
) -> Iterator[tuple[str, int]]:
    """``(window_text, n_tokens)`` covering every token of ``text`` (see the module docstring).

    ``content`` is the number of content tokens per window.  A text whose tokens fit in one window
    yields ``(text, n)`` — the original string, unchanged.  An empty text yields ``(text, 0)``.
    """
    words: list[tuple[int, int, int]] = []  # (start, end, n_tokens) of the current window's words
    count = 0
    emitted = 0

    def emit() -> tuple[str, int]:
        return text[words[0][0] : words[-1][1]], count

    for s, e, offsets in iter_words(text, tok):
        pieces = [(s, e, len(offsets))]
        if len(offsets) > content:  # one "word" longer than a window: cut between its pieces
            pieces = [
                (
                    offsets[i][0],
                    offsets[min(i + content, len(offsets)) - 1][1],
                    min(content, len(offsets) - i),
                )
                for i in range(0, len(offsets), content)
            ]
        for piece in pieces:
            if count + piece[2] > content and words:
                yield emit()
                emitted += 1
                keep: list[tuple[int, int, int]] = []
                kept = 0
                for w in reversed(words):
                    if kept + w[2] > overlap:
                        break
                    keep.append(w)
                    kept += w[2]
                words, count = keep[::-1], kept
                while words and count + piece[2] > content:  # the overlap must leave room
                    count -= words.pop(0)[2]
            words.append(piece)
            count += piece[2]
    if emitted == 0:
        yield text, count
    else:  # the last window: it always holds at least one token not in the previous one
        yield emit()


# -- the window-vector cache ---------------------------------------------------------------------


class WindowCache:
    """LRU of window vectors keyed by the window text's hash (per inner model, per process)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.store: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes) -> np.ndarray | None:
        vec = self.store.get(key)
        if vec is not None:
            self.store.move_to_end(key)
            self.hits += 1
        return vec

    def put(self, key: bytes, vec: np.ndarray) -> None:
        if self.maxsize <= 0:
            return
        self.store[key] = vec
        self.store.move_to_end(key)
        while len(self.store) > self.maxsize:
            self.store.popitem(last=False)


_CACHES: dict[str, WindowCache] = {}


def shared_cache(inner_name: str, maxsize: int) -> WindowCache:
    cache = _CACHES.get(inner_name)
    if cache is None:
        cache = _CACHES[inner_name] = WindowCache(maxsize)
    cache.maxsize = max(cache.maxsize, maxsize)
    return cache


# -- the encoder ---------------------------------------------------------------------------------


QUERY_DOC = ("query", "document")


class _PooledWindows:
    """Window vectors gathered per text as they are encoded: every window kept (multi-vector),
    else a token-weighted running mean; a text of one window keeps that window's vector
    unchanged."""

    def __init__(self, n_texts: int, multi: bool) -> None:
        self.multi = multi
        self.sums: list[np.ndarray | None] = [None] * n_texts  # mean: running weighted sums
        self.weights = [0.0] * n_texts
        self.first: list[np.ndarray | None] = [None] * n_texts  # the only window's vector
        self.n_windows = [0] * n_texts  # set before a text's windows are added: 1, or 2 = more
        self.vectors: list[list[np.ndarray]] = [[] for _ in range(n_texts)] if multi else []

    def add(self, i: int, v: np.ndarray, n_tokens: int) -> None:
        if self.multi:
            self.vectors[i].append(v)
        elif self.n_windows[i] == 1:
            self.first[i] = v
        else:
            s = v.astype(np.float64) * n_tokens
            prev = self.sums[i]
            self.sums[i] = s if prev is None else prev + s
            self.weights[i] += n_tokens

    def result(self) -> np.ndarray | list[np.ndarray]:
        if self.multi:
            return [np.stack(v) for v in self.vectors]
        out: list[np.ndarray] = []
        for first, total, w in zip(self.first, self.sums, self.weights, strict=True):
            if first is not None:
                out.append(first)
            else:
                assert total is not None
                out.append((total / w if w > 0 else total).astype(np.float32))
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(out)


class ChunkedEncoder:
    """A registered encoder over token windows of each text; see the module docstring."""

    def __init__(
        self,
        inner: Any,
        *,
        name: str = "encoder",
        window: int | None = None,
        overlap: int = 0,
        pool: str = "mean",
        batch_size: int = 32,
        cache_size: int = 50_000,
        cache: WindowCache | None = None,
    ) -> None:
        if pool not in POOLS:
            raise lam_mteb.LamMtebError(
                f"chunked: pool must be one of {', '.join(POOLS)}, got {pool!r}"
            )
        self.inner = inner
        self.inner_name = name
        self.tokenizer = find_tokenizer(inner)  # None: windows of words
        unit = "tokens" if self.tokenizer is not None else "words"
        limit = find_max_seq_length(inner)
        if window is None:
            if limit is None:
                raise lam_mteb.LamMtebError(
                    f"chunked: encoder {name!r} has no max_seq_length; give `window` ({unit} "
                    "per window)"
                )
            window = limit
        if limit is not None and window > limit:
            raise lam_mteb.LamMtebError(
                f"chunked: window {window} is larger than {name!r}'s limit of {limit} "
                f"tokens; use window <= {limit}"
            )
        self.window = window
        self.n_special = special_tokens_count(self.tokenizer) if self.tokenizer is not None else 0
        self.content = window - self.n_special
        if self.content < 1:
            raise lam_mteb.LamMtebError(
                f"chunked: window {window} leaves no room for content beside "
                f"{self.n_special} special tokens"
            )
        if overlap < 0 or overlap >= self.content:
            raise lam_mteb.LamMtebError(
                f"chunked: overlap must be >= 0 and smaller than the window's "
                f"{self.content} content {unit}, got {overlap}"
            )
        self.overlap = overlap
        self.pool = pool
        self.batch_size = batch_size
        self.cache = cache if cache is not None else WindowCache(cache_size)

    # windows
    def windows(self, text: str) -> Iterator[tuple[str, int]]:
        return iter_windows(
            text if isinstance(text, str) else ("" if text is None else str(text)),
            self.tokenizer,
            self.content,
            self.overlap,
        )

    def _encode_windows(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        keys = [self.cache.key(t) for t in texts]
        out: list[np.ndarray | None] = [self.cache.get(k) for k in keys]
        todo: dict[bytes, str] = {}
        for k, t, v in zip(keys, texts, out, strict=True):
            if v is None and k not in todo:
                todo[k] = t
        fresh: dict[bytes, np.ndarray] = {}
        if todo:
            self.cache.misses += len(todo)
            vecs = self.inner.encode(
                list(todo.values()), batch_size=batch_size, show_progress_bar=False
            )
            if hasattr(vecs, "detach"):
                vecs = vecs.detach().cpu().numpy()
            vecs = np.asarray(vecs, dtype=np.float32)
            fresh = dict(zip(todo, vecs, strict=True))
            for k, v in fresh.items():
                self.cache.put(k, v)
        # every window is cached now or freshly encoded
        return [v if v is not None else fresh[k] for k, v in zip(keys, out, strict=True)]

    def encode(
        self,
        texts: Iterable[str],
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        prompt_type: str | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        """``(n, dim)`` array (mean pooling, or max outside retrieval); for ``pool: max`` with
        ``prompt_type`` query/document a list of ``(n_windows_i, dim)`` arrays.

        No ``**kwargs``: the bridge passes an encoder only the keywords its signature names, and
        the inner model gets ``batch_size`` alone (mteb's other encode keywords are not its)."""
        from tqdm.auto import tqdm

        texts = list(texts)
        batch_size = batch_size or self.batch_size
        flush_at = max(batch_size * 4, 64)
        pooled = _PooledWindows(len(texts), self.pool == "max" and prompt_type in QUERY_DOC)
        pending: list[tuple[int, str, int]] = []

        def flush() -> None:
            vecs = self._encode_windows([w for _, w, _ in pending], batch_size)
            for (i, _, n), v in zip(pending, vecs, strict=True):
                pooled.add(i, v, n)
            pending.clear()

        bar = tqdm(
            total=len(texts),
            desc=f"chunked({self.inner_name}, {self.pool})",
            unit="text",
            disable=not show_progress_bar,
            file=sys.stderr,
        )
        for i, text in enumerate(texts):
            wins = self.windows(text)
            head = next(wins)
            second = next(wins, None)
            pooled.n_windows[i] = 1 if second is None else 2  # 2 = "more than one"
            pending.append((i, head[0], head[1]))
            if second is not None:
                pending.append((i, second[0], second[1]))
                for w in wins:
                    pending.append((i, w[0], w[1]))
                    if len(pending) >= flush_at:
                        flush()
            if len(pending) >= flush_at:
                flush()
            bar.update(1)
        if pending:
            flush()
        bar.close()
        return pooled.result()

    # similarity (handed to mteb by the bridge)
    def similarity(self, a: Vectors, b: Vectors) -> torch.Tensor:
        import torch

        if _is_multi(a) or _is_multi(b):
            return torch.from_numpy(maxsim(_as_multi(a), _as_multi(b)))
        return torch.from_numpy(
            _cos(np.asarray(_np(a), np.float32), np.asarray(_np(b), np.float32))
        )

    def similarity_pairwise(self, a: Vectors, b: Vectors) -> torch.Tensor:
        import torch

        if _is_multi(a) or _is_multi(b):
            qs, ds = _as_multi(a), _as_multi(b)
            return torch.tensor(
                [maxsim([q], [d])[0, 0] for q, d in zip(qs, ds, strict=True)], dtype=torch.float32
            )
        x, y = (
            _normalise(np.asarray(_np(a), np.float32)),
            _normalise(np.asarray(_np(b), np.float32)),
        )
        return torch.from_numpy((x * y).sum(1))


def _np(x: Any) -> Any:
    """A torch tensor as a numpy array; anything else unchanged."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def _is_multi(x: object) -> TypeGuard[Sequence[npt.ArrayLike | torch.Tensor]]:
    return isinstance(x, (list, tuple)) and len(x) > 0 and getattr(x[0], "ndim", None) == 2


def _as_multi(x: Vectors) -> list[np.ndarray]:
    if _is_multi(x):
        return [np.asarray(_np(e), dtype=np.float32) for e in x]
    arr = np.asarray(_np(x), dtype=np.float32)
    return [row[None, :] for row in np.atleast_2d(arr)]


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.clip(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12, None)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (_normalise(np.atleast_2d(a)) @ _normalise(np.atleast_2d(b)).T).astype(np.float32)


def maxsim(
    queries: list[np.ndarray], documents: list[np.ndarray], block: int = 1 << 24
) -> np.ndarray:
    """``(n_queries, n_documents)``: sum over each query's windows of the best cosine with any of
    the document's windows.  Exact (no zero padding that could beat negative similarities);
    documents are scored in blocks of at most ``block`` similarity entries."""
    q = _normalise(np.concatenate(queries))
    q_starts = np.cumsum([0] + [len(x) for x in queries[:-1]])
    out = np.empty((len(queries), len(documents)), dtype=np.float32)
    j = 0
    while j < len(documents):
        total, k = 0, j
        while k < len(documents) and (k == j or (total + len(documents[k])) * len(q) <= block):
            total += len(documents[k])
            k += 1
        d = _normalise(np.concatenate(documents[j:k]))
        d_starts = np.cumsum([0] + [len(x) for x in documents[j : k - 1]])
        s = q @ d.T
        best = np.maximum.reduceat(s, d_starts, axis=1)  # (query windows, documents)
        out[:, j:k] = np.add.reduceat(best, q_starts, axis=0)
        j = k
    return out


def create_encoder(
    encoder: str = "minilm",
    window: int | None = None,
    overlap: int = 0,
    pool: str = "mean",
    batch_size: int = 32,
    cache_size: int = 50_000,
) -> ChunkedEncoder:
    """Factory of the ``chunked`` kind: builds the inner model through ``lam_mteb.get_encoder``."""
    inner = lam_mteb.get_encoder(encoder)
    return ChunkedEncoder(
        inner,
        name=encoder,
        window=window,
        overlap=overlap,
        pool=pool,
        batch_size=batch_size,
        cache=shared_cache(encoder, cache_size),
    )
