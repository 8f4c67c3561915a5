"""The ``lam2`` encoder: LAM v2 (MiniLM softmax inside a chunk + gated delta-rule memory across
chunks).

- A text of at most ``chunk_size`` tokens (``[CLS] ... [SEP]``) is one chunk: it is run exactly like
  MiniLM (length-sorted batches padded only to the longest text of the batch, no memory), and its
  mean pooling is MiniLM's sentence vector.
- A longer text is cut into windows of ``chunk_size - 2`` word pieces, each wrapped in
  ``[CLS] ... [SEP]`` with positions from 0 (each window is a MiniLM input); every layer's memory
  is carried from window to window and read through the learned gates.  Documents run in lock-step
  batches; only the memories, a running sum and the lexical sum are kept, so memory use does not
  grow with length.  Texts over 20 000 characters are tokenised as a stream.

Poolings (returned L2-normalised):

- ``mean``:  mean of the last layer's hidden states over every token of every window (incl. the
             windows' [CLS]/[SEP]); ``chunk_pooling="windows"`` averages the per-window means
             instead;
- ``state``: the last layer's memory after the document, embedded as LAM v1's state pooling;
- ``lexical_weight`` w > 0 adds the lexical channel (``lexical.py``): a random projection of the
  text's bag of word pieces weighted log(1 + tf) * idf, ``lexical_dim`` dimensions, concatenated as
  [sqrt(1 - w) * e, sqrt(w) * e_lex] (both L2-normalised), so a cosine between two texts is
  (1 - w) * dense cosine + w * lexical cosine, the way BGE-M3 fuses dense and lexical scores.
  ``retrieval_lexical_weight`` (default: ``lexical_weight``) is the weight for texts mteb encodes as
  queries or documents; ``lexical_weight`` the one for symmetric tasks (STS, clustering, ...).
  ``lexical_vectors="minilm"`` uses MiniLM's 384-d input embeddings mixed into the same space
  instead (normalise((1 - w) * e + w * e_lex), the first version; see docs/lam.md for both).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lam_mteb.atomic import atomic_file
from lam_mteb_plugins.lam.encoder import (
    LONG_CHARS,
    checkpoint_hash,
    pad_batch,
    registry_defaults,
    resolve_device,
    state_embedding,
)

if TYPE_CHECKING:
    import torch

    from lam_mteb import LamMtebError
    from lam_mteb_plugins.lam.v2 import LamV2Model

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS_V2 = WEIGHTS_DIR / "v2"
POOLINGS_V2 = ("mean", "state")
CHUNK_POOLINGS = ("tokens", "windows")
TF_WEIGHTS = ("log", "raw", "binary")  # lexical.tf_weight
VECTORS = ("hashed", "minilm")  # the lexical channel's vectors (module docstring)
# rows of a LAM_MTEB_LAM2_CACHE file; "reserved" held the first lexical channel (now lexical.py,
# computed from the text alone) and stays so that cache files written before remain readable
_PARTS = ("mean", "window_mean", "reserved", "state")


def _error(message: str) -> LamMtebError:
    from lam_mteb import LamMtebError

    return LamMtebError(message)


def resolve_weights_v2(weights: str | Path | None) -> Path:
    if weights in (None, "", "default", "v2"):
        return DEFAULT_WEIGHTS_V2
    return Path(str(weights)).expanduser()


def revision_v2(params: dict) -> str:
    keep = {
        k: params.get(k, DEFAULTS_V2[k])
        for k in (
            "pooling",
            "lexical_weight",
            "retrieval_lexical_weight",
            "lexical_vectors",
            "lexical_dim",
            "lexical_tf",
            "chunk_size",
            "chunk_pooling",
            "diag_weight",
        )
    }
    blob = (
        "v2"
        + json.dumps(keep, sort_keys=True)
        + checkpoint_hash(resolve_weights_v2(params.get("weights")))
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def configure_v2(params: dict, lookup: Callable[[str], object]) -> dict:
    """The ``lam2`` kind's ``configure``: check a configuration's parameters when the registry
    loads (a bad one is one error naming its registry.yaml line, before any model is built) and
    derive its ``embed_dim``: the checkpoint's hidden size, plus ``lexical_dim`` when a lexical
    weight is > 0 with hashed lexical vectors (those are concatenated, not mixed in)."""
    p = {**DEFAULTS_V2, **params}
    lexical = float(p["lexical_weight"])
    retrieval = lexical if p["retrieval_lexical_weight"] is None else p["retrieval_lexical_weight"]
    _check_params(
        p["pooling"],
        p["chunk_pooling"],
        (lexical, float(retrieval), float(p["diag_weight"])),
        p["lexical_vectors"],
        p["lexical_tf"],
        p["lexical_dim"],
        p["chunk_size"],
    )
    config = resolve_weights_v2(p["weights"]) / "config.json"
    # a checkpoint that is not there yet keeps the kind's 384 (MiniLM-L6); building it will say so
    dense = json.loads(config.read_text())["hidden_size"] if config.is_file() else 384
    concatenated = p["lexical_vectors"] == "hashed" and max(lexical, float(retrieval)) > 0
    return {"embed_dim": int(dense) + (int(p["lexical_dim"]) if concatenated else 0)}


def _normalise(x: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.normalize(x.nan_to_num(), dim=-1)


def _check_params(
    pooling: str,
    chunk_pooling: str,
    weights: Sequence[float],
    lexical_vectors: str,
    lexical_tf: str,
    lexical_dim: int,
    chunk_size: int | None,
) -> None:
    """One LamMtebError naming the first bad parameter (``weights``: the lexical and diag
    weights)."""
    if pooling not in POOLINGS_V2:
        raise _error(f"LAM v2 pooling {pooling!r} is not one of {', '.join(POOLINGS_V2)}")
    if chunk_pooling not in CHUNK_POOLINGS:
        raise _error(
            f"LAM v2 chunk_pooling {chunk_pooling!r} is not one of {', '.join(CHUNK_POOLINGS)}"
        )
    if not all(0.0 <= float(x) <= 1.0 for x in weights):
        raise _error(
            "LAM lexical_weight, retrieval_lexical_weight and diag_weight must lie in [0, 1]"
        )
    if lexical_vectors not in VECTORS:
        raise _error(
            f"LAM v2 lexical_vectors {lexical_vectors!r} is not one of {', '.join(VECTORS)}"
        )
    if lexical_tf not in TF_WEIGHTS:
        raise _error(f"LAM v2 lexical_tf {lexical_tf!r} is not one of {', '.join(TF_WEIGHTS)}")
    if not 16 <= int(lexical_dim) <= 65536:
        raise _error(f"LAM v2 lexical_dim must be in 16..65536, got {lexical_dim}")
    if chunk_size is not None and not 3 <= int(chunk_size) <= 512:
        raise _error(
            f"LAM chunk_size must be in 3..512 (MiniLM has 512 positions), got {chunk_size}"
        )


class LamV2Encoder:
    """LAM v2 sentence/document encoder (see the module docstring)."""

    def __init__(
        self,
        pooling: str = "mean",
        weights: str | Path | None = None,
        lexical_weight: float = 0.0,
        retrieval_lexical_weight: float | None = None,
        lexical_vectors: str = "hashed",
        lexical_dim: int = 2048,
        lexical_tf: str = "log",
        chunk_size: int | None = None,
        chunk_pooling: str = "tokens",
        diag_weight: float = 0.7,
        batch_size: int = 32,
        device: str | None = None,
        model: LamV2Model | None = None,
    ) -> None:
        if retrieval_lexical_weight is None:
            retrieval_lexical_weight = lexical_weight
        _check_params(
            pooling,
            chunk_pooling,
            (lexical_weight, retrieval_lexical_weight, diag_weight),
            lexical_vectors,
            lexical_tf,
            lexical_dim,
            chunk_size,
        )
        device = resolve_device(device)
        self._cache_id = (
            checkpoint_hash(resolve_weights_v2(weights))[:16]
            if model is None
            else f"model{id(model)}"
        )
        if model is None:
            from lam_mteb_plugins.lam.v2 import load_v2

            model = load_v2(resolve_weights_v2(weights), device=str(device))
        self.model = model.eval()
        self._memory_read = self.model.memory_is_read()
        self.pooling, self.chunk_pooling = pooling, chunk_pooling
        self.lexical_weight, self.diag_weight = float(lexical_weight), float(diag_weight)
        self.retrieval_lexical_weight = float(retrieval_lexical_weight)
        self.lexical_vectors, self.lexical_tf = lexical_vectors, lexical_tf
        self.lexical_dim = int(lexical_dim) if lexical_vectors == "hashed" else 0
        self.chunk_size = int(chunk_size or self.model.config.chunk_size)
        self.batch_size, self.device = int(batch_size), str(device)
        from lam_mteb_plugins.lam.text import LamTokenizer

        self.tokenizer = LamTokenizer(self.model.config.base_model)
        self.dense_dim = self.model.config.hidden_size
        self.uses_lexical = max(self.lexical_weight, self.retrieval_lexical_weight) > 0
        # hashed lexical vectors are concatenated: every output has the same width, whatever the
        # task
        self.embed_dim = self.dense_dim + (self.lexical_dim if self.uses_lexical else 0)
        self.rows_run = 0

    # ------------------------------------------------------------------ public
    def encode(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        prompt_type: str | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embeddings (n, embed_dim), float32, L2-normalised, never NaN.

        ``prompt_type`` ("query"/"document", passed by mteb for retrieval) selects
        ``retrieval_lexical_weight``; anything else ``lexical_weight``."""
        if isinstance(texts, str):
            texts = [texts]
        w = (
            self.retrieval_lexical_weight
            if prompt_type in ("query", "document")
            else self.lexical_weight
        )
        parts = self.encode_parts(
            texts,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            state=self.pooling == "state",
        )
        lexical = self.lexical(texts, batch_size=batch_size) if self.uses_lexical else None
        return self.combine(parts, lexical, w)

    def combine(
        self,
        parts: dict[str, np.ndarray],
        lexical: np.ndarray | None = None,
        lexical_weight: float | None = None,
        pooling: str | None = None,
        chunk_pooling: str | None = None,
    ) -> np.ndarray:
        """The embedding from ``encode_parts`` (+ ``lexical``) output; other settings for dev
        sweeps.

        Hashed lexical vectors: [sqrt(1 - w) * e, sqrt(w) * e_lex]; ``lexical=None`` (no lexical
        channel) gives the dense part alone.  ``minilm`` vectors: normalise((1 - w) e + w e_lex)."""
        import torch

        w = self.lexical_weight if lexical_weight is None else lexical_weight
        pooling = pooling or self.pooling
        key = {
            "state": "state",
            "mean": {"tokens": "mean", "windows": "window_mean"}[
                chunk_pooling or self.chunk_pooling
            ],
        }[pooling]
        e = _normalise(torch.as_tensor(parts[key]))
        if lexical is None:
            return e.numpy().astype(np.float32)
        lex = _normalise(torch.as_tensor(lexical))
        if self.lexical_vectors == "minilm":
            e = _normalise((1 - w) * e + w * lex) if w > 0 else e
        else:
            # unit norm already, except a text without known word pieces (zero lexical part)
            e = _normalise(torch.cat([(1 - w) ** 0.5 * e, w**0.5 * lex], dim=1))
        return e.numpy().astype(np.float32)

    def lexical(self, texts: str | Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Lexical vectors (n, lexical_dim or 384), unnormalised (see ``lexical.py``).

        Word-piece counts are accumulated from the streaming tokenizer, so a text of any length
        costs memory bounded by the vocabulary."""
        import torch

        from lam_mteb_plugins.lam.lexical import project_bags

        if isinstance(texts, str):
            texts = [texts]
        m = self.model
        idf = m.lexical_idf.detach().float().cpu()
        table = (
            m.static_vectors().detach().float().cpu() if self.lexical_vectors == "minilm" else None
        )
        dim = self.lexical_dim or self.dense_dim
        out = np.zeros((len(texts), dim), dtype=np.float32)
        bs = max(1, int(batch_size or self.batch_size))
        for start in range(0, len(texts), bs):
            rows = [self.tokenizer.clean(t) for t in texts[start : start + bs]]
            counts = torch.zeros(len(rows), idf.shape[0])
            # short texts in one batched tokenizer call, long ones streamed piece by piece
            short = [i for i, t in enumerate(rows) if len(t) <= LONG_CHARS]
            pieces = dict(
                zip(short, self.tokenizer.encode_batch([rows[i] for i in short]), strict=True)
            )
            for i, text in enumerate(rows):
                for ids in [pieces[i]] if i in pieces else self.tokenizer.iter_ids(text):
                    counts[i].index_add_(
                        0, torch.as_tensor(ids, dtype=torch.long), torch.ones(len(ids))
                    )
            vec = project_bags(
                counts, idf, tf=self.lexical_tf, vectors=self.lexical_vectors, dim=dim, table=table
            )
            out[start : start + len(rows)] = vec.numpy()
        return out

    def encode_parts(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        state: bool = False,
    ) -> dict[str, np.ndarray]:
        """Unnormalised dense pieces {"mean", "window_mean", "state"} -> (n, 384) arrays.

        With ``LAM_MTEB_LAM2_CACHE=DIR`` in the environment, the parts of every text are kept in DIR
        (one .npy per text, named by the checkpoint's content hash, chunk size and the text's sha1),
        so ``mteb run -m lam-mean`` followed by ``-m lam-hybrid`` encodes every text once: the
        models differ only in how the same parts are combined.  Off by default."""
        if isinstance(texts, str):
            texts = [texts]
        texts = [self.tokenizer.clean(t) for t in texts]
        cache = os.environ.get("LAM_MTEB_LAM2_CACHE", "")
        if not cache or self._cache_id.startswith(
            "model"
        ):  # no content hash for an in-memory model
            return self._encode_parts(texts, batch_size, show_progress_bar, state)
        folder = Path(cache).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        prefix = f"{self._cache_id}-{self.chunk_size}-{'s' if state else 'n'}-"
        files = [
            folder / (prefix + hashlib.sha1(t.encode("utf-8", "replace")).hexdigest() + ".npy")
            for t in texts
        ]
        found: dict[Path, np.ndarray] = {}
        for f in files:
            if f not in found and f.is_file():
                with contextlib.suppress(OSError, ValueError):
                    found[f] = np.load(f)
        todo = sorted(
            {f: i for i, f in reversed(list(enumerate(files))) if f not in found}.values()
        )
        if todo:
            fresh = self._encode_parts(
                [texts[i] for i in todo], batch_size, show_progress_bar, state
            )
            for j, i in enumerate(todo):
                arr = np.stack([fresh[k][j] for k in _PARTS]).astype(np.float32)
                with atomic_file(files[i], suffix=".tmp.npy") as tmp:
                    np.save(tmp, arr)
                found[files[i]] = arr
        stacked = (
            np.stack([found[f] for f in files])
            if files
            else np.zeros((0, len(_PARTS), self.dense_dim))
        )
        return {k: stacked[:, j] for j, k in enumerate(_PARTS)}

    def _encode_parts(
        self, texts: list[str], batch_size: int | None, show_progress_bar: bool, state: bool
    ) -> dict[str, np.ndarray]:
        import torch

        n = len(texts)
        out = {k: torch.zeros(n, self.dense_dim) for k in _PARTS}
        bs = max(1, int(batch_size or self.batch_size))
        C = self.chunk_size
        short_idx = [i for i in range(n) if len(texts[i]) <= LONG_CHARS]
        short_ids = self.tokenizer.encode_batch([texts[i] for i in short_idx]) if short_idx else []
        ids = dict(zip(short_idx, short_ids, strict=False))
        short = sorted((i for i in short_idx if len(ids[i]) <= C), key=lambda i: len(ids[i]))
        long_docs = sorted(
            (i for i in range(n) if i not in ids or len(ids[i]) > C),
            key=lambda i: len(ids[i]) if i in ids else len(texts[i]),
        )
        bar = None
        if show_progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="LAM v2", unit="text")
        with torch.inference_mode():
            for start in range(0, len(short), bs):
                rows = short[start : start + bs]
                res = self._run_short([ids[i] for i in rows], state)
                r = torch.tensor(rows)
                for k, v in res.items():
                    out[k][r] = v
                if bar is not None:
                    bar.update(len(rows))
            for start in range(0, len(long_docs), bs):
                rows = long_docs[start : start + bs]
                res = self._run_long([ids[i][1:-1] if i in ids else texts[i] for i in rows], state)
                r = torch.tensor(rows)
                for k, v in res.items():
                    out[k][r] = v
                if bar is not None:
                    bar.update(len(rows))
        if bar is not None:
            bar.close()
        return {k: v.nan_to_num().numpy() for k, v in out.items()}

    # ------------------------------------------------------------------ internals
    def _run_short(self, seqs: Sequence[list[int]], state: bool) -> dict[str, torch.Tensor]:
        x, m = pad_batch(seqs, self.tokenizer.pad_id, self.device)
        h, states = self.model.forward_chunk(x, m, write=state)
        mean = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)
        res = {"mean": mean.float().cpu(), "window_mean": mean.float().cpu()}
        if state:
            last = states[-1]
            assert last is not None  # written: the memory attention returns it when write=True
            res["state"] = state_embedding(last.float(), self.diag_weight).cpu()
        return res

    def _content_chunks(self, doc: str | list[int], size: int) -> Iterator[list[int]]:
        """Consecutive windows of ``size`` word pieces (no [CLS]/[SEP]) of a token list or a
        string."""
        if not isinstance(doc, str):
            yield from (doc[j : j + size] for j in range(0, len(doc), size))
            return
        buf: list[int] = []
        it = self.tokenizer.iter_ids(doc)
        next(it)  # [CLS]
        for piece in it:
            buf.extend(piece)
            while len(buf) > size + 1:  # keep the final [SEP] out of the windows
                yield buf[:size]
                buf = buf[size:]
        buf = buf[:-1]  # drop [SEP]
        while buf:
            yield buf[:size]
            buf = buf[size:]

    def _run_long(self, docs: Sequence[str | list[int]], state: bool) -> dict[str, torch.Tensor]:
        """Lock-step streaming of windows with each layer's memory carried (see the module doc).

        Documents whose windows so far are identical share one row (exact; the LongEmbed
        passkey/needle documents share their filler up to the inserted fact)."""
        import torch

        from lam_mteb_plugins.lam.text import share_identical

        C = self.chunk_size
        cls_id, sep_id = self.tokenizer.cls_id, self.tokenizer.sep_id
        iters = [self._content_chunks(d, C - 2) for d in docs]
        n, L = len(docs), len(self.model.layers)
        sums = torch.zeros(n, self.dense_dim, device=self.device)
        wsums = torch.zeros(n, self.dense_dim, device=self.device)
        counts = torch.zeros(n, device=self.device)
        windows = torch.zeros(n, device=self.device)
        # per document: its per-layer memories (None while nothing was written)
        states: list[list[torch.Tensor] | None] = [None] * n
        group = [0] * n
        pending = [next(it, None) for it in iters]
        active = [r for r in range(n) if pending[r]]
        while active:
            # `or ()`: an active document always has a pending window
            chunks = [[cls_id, *(pending[r] or ()), sep_id] for r in active]
            for r in active:
                pending[r] = next(iters[r], None)
            # write the memory when a document has a next window that reads it (or the state is
            # pooled)
            write = state or (self._memory_read and any(pending[r] for r in active))
            reps, uniq, rep_of = share_identical(active, chunks, group)
            x, m = pad_batch(uniq, self.tokenizer.pad_id, self.device)
            prev = _stacked_memories([states[r] for r in reps], L)
            h, new_or_none = self.model.forward_chunk(x, m, prev, write=write)
            new = [st for st in new_or_none if st is not None]
            assert not write or len(new) == L  # with write, every layer returns its memory
            self.rows_run += len(reps)
            s = (h * m[..., None]).sum(1)
            c = m.sum(1)
            idx = torch.tensor(rep_of, device=self.device)
            sums[active] += s[idx]
            counts[active] += c[idx]
            wsums[active] += (s / c.clamp_min(1)[:, None])[idx]
            windows[active] += 1
            for r, j in zip(active, rep_of, strict=False):
                states[r] = [st[j] for st in new] if write else None
                group[r] = reps[j]
            active = [r for r in active if pending[r]]
        res = {
            "mean": (sums / counts.clamp_min(1)[:, None]).float().cpu(),
            "window_mean": (wsums / windows.clamp_min(1)[:, None]).float().cpu(),
        }
        if state:
            # state pooling writes at every window, so every document has its memories
            last = _stacked_memories(states, L)
            assert last is not None
            res["state"] = state_embedding(last[-1].float(), self.diag_weight).cpu()
        return res


def _stacked_memories(
    memories: Sequence[list[torch.Tensor] | None], n_layers: int
) -> list[torch.Tensor] | None:
    """Per layer, the rows' memories stacked into one batch, or None before any was written.

    The rows of one lock-step batch were written at the same windows: all have a memory or none.
    """
    if not memories or memories[0] is None:
        return None
    carried = [s for s in memories if s is not None]
    assert len(carried) == len(memories)
    import torch

    return [torch.stack([s[layer] for s in carried]) for layer in range(n_layers)]


DEFAULTS_V2 = registry_defaults(LamV2Encoder)
