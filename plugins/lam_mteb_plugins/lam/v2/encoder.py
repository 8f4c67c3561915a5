"""The ``lam2`` encoder: LAM v2 (MiniLM softmax inside a window + a gated delta-rule memory across
windows) with LAM's document state (``slots.py``) as its index.

- A text of at most ``chunk_size`` tokens (``[CLS] ... [SEP]``) is one window: it is run exactly
  like MiniLM (length-sorted batches padded only to the longest text of the batch, no memory), and
  its mean pooling is MiniLM's sentence vector.
- A longer text is cut into windows of ``chunk_size - 2`` word pieces, each wrapped in
  ``[CLS] ... [SEP]`` with positions from 0 (each window is a MiniLM input); every layer's memory
  is carried from window to window and read through the learned gates (0 as shipped: the memory
  is then never written or read, and each window is exactly MiniLM's).  Documents run in lock-step
  batches; only a running sum and the document state are kept, so memory use does not grow with
  length.  Texts over 20 000 characters are tokenised as a stream.

Poolings:

- ``mean``:   mean of the last layer's hidden states over every token of every window (incl. the
              windows' [CLS]/[SEP]), L2-normalised (``chunk_pooling="windows"``: the mean of the
              per-window means); one ``hidden``-d vector, cosine similarity;
- ``state``:  the document state: each window's vector (its mean hidden state, normalised) is
              written into ``slots`` slots by the delta rule of ``slots.py``; a query reads it as a
              soft maximum over the slots (temperature ``temperature``).  The output is one
              fixed-size row per text, ``[mean | slots x hidden | slots shares]``
              (``(slots + 1) * hidden + slots`` numbers, whatever the length): documents
              (``prompt_type="document"``) carry their state; queries and symmetric texts (STS,
              ``prompt_type`` None) only the mean, so a cosine between two of them is the mean's
              cosine.  ``similarity`` (handed to mteb by the bridge) scores a query against a
              document's state;
- ``hybrid``: the state's layout, scored ``hybrid_weight * cos(q, mean) + (1 - hybrid_weight) *
              read(q, state)``: the mean and the state combined.

The lexical channel is not LAM's: wrap any of these in the baselines plugin's ``lexical`` kind.
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
from lam_mteb_plugins.lam.common.encoder import (
    LONG_CHARS,
    checkpoint_hash,
    pad_batch,
    registry_defaults,
    resolve_device,
)

if TYPE_CHECKING:
    import torch

    from lam_mteb import LamMtebError
    from lam_mteb_plugins.lam.v2.model import LamV2Model

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS_V2 = WEIGHTS_DIR
POOLINGS_V2 = ("mean", "state", "hybrid")
CHUNK_POOLINGS = ("tokens", "windows")
PROMPTS = ("query", "document")


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
        for k in ("pooling", "chunk_size", "chunk_pooling", "slots", "temperature")
    }
    if keep["pooling"] == "hybrid":
        keep["hybrid_weight"] = params.get("hybrid_weight", DEFAULTS_V2["hybrid_weight"])
    blob = (
        "v2/state"
        + json.dumps(keep, sort_keys=True)
        + checkpoint_hash(resolve_weights_v2(params.get("weights")))
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def state_width(hidden: int, slots: int) -> int:
    """Numbers per output row of the state layout: the mean, the slots and their shares."""
    return (slots + 1) * hidden + slots


def configure_v2(params: dict, lookup: Callable[[str], object]) -> dict:
    """The ``lam2`` kind's ``configure``: check a configuration's parameters when the registry
    loads (a bad one is one error naming its registry.yaml line, before any model is built) and
    derive its ``embed_dim``: the checkpoint's hidden size for ``mean``, the state layout's width
    for ``state`` / ``hybrid``."""
    p = {**DEFAULTS_V2, **params}
    _check_params(
        p["pooling"],
        p["chunk_pooling"],
        p["chunk_size"],
        p["slots"],
        p["temperature"],
        p["hybrid_weight"],
    )
    config = resolve_weights_v2(p["weights"]) / "config.json"
    # a checkpoint that is not there yet keeps the kind's 384 (MiniLM-L6); building it will say so
    dense = int(json.loads(config.read_text())["hidden_size"]) if config.is_file() else 384
    if p["pooling"] == "mean":
        return {"embed_dim": dense}
    return {"embed_dim": state_width(dense, int(p["slots"])), "similarity_fn_name": "dot"}


def _normalise(x: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.normalize(x.nan_to_num(), dim=-1)


def _check_params(
    pooling: str,
    chunk_pooling: str,
    chunk_size: int | None,
    slots: int,
    temperature: float,
    hybrid_weight: float,
) -> None:
    """One LamMtebError naming the first bad parameter."""
    if pooling not in POOLINGS_V2:
        raise _error(f"LAM v2 pooling {pooling!r} is not one of {', '.join(POOLINGS_V2)}")
    if chunk_pooling not in CHUNK_POOLINGS:
        raise _error(
            f"LAM v2 chunk_pooling {chunk_pooling!r} is not one of {', '.join(CHUNK_POOLINGS)}"
        )
    if chunk_size is not None and not 3 <= int(chunk_size) <= 512:
        raise _error(
            f"LAM chunk_size must be in 3..512 (MiniLM has 512 positions), got {chunk_size}"
        )
    if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 1024:
        raise _error(f"LAM v2 slots must be a whole number in 1..1024, got {slots!r}")
    if not 0.0 < float(temperature) <= 10.0:
        raise _error(f"LAM v2 temperature must be in (0, 10], got {temperature!r}")
    if not 0.0 <= float(hybrid_weight) <= 1.0:
        raise _error(f"LAM v2 hybrid_weight must lie in [0, 1], got {hybrid_weight!r}")


class LamV2Encoder:
    """LAM v2 sentence/document encoder (see the module docstring)."""

    def __init__(
        self,
        pooling: str = "mean",
        weights: str | Path | None = None,
        slots: int = 32,
        temperature: float = 0.05,
        hybrid_weight: float = 0.5,
        chunk_size: int | None = None,
        chunk_pooling: str = "tokens",
        batch_size: int = 32,
        device: str | None = None,
        model: LamV2Model | None = None,
    ) -> None:
        _check_params(pooling, chunk_pooling, chunk_size, slots, temperature, hybrid_weight)
        device = resolve_device(device)
        self._cache_id = (
            checkpoint_hash(resolve_weights_v2(weights))[:16]
            if model is None
            else f"model{id(model)}"
        )
        if model is None:
            from lam_mteb_plugins.lam.v2.model import load_v2

            model = load_v2(resolve_weights_v2(weights), device=str(device))
        self.model = model.eval()
        self._memory_read = self.model.memory_is_read()
        self.pooling, self.chunk_pooling = pooling, chunk_pooling
        self.slots, self.temperature = int(slots), float(temperature)
        self.hybrid_weight = float(hybrid_weight)
        self.chunk_size = int(chunk_size or self.model.config.chunk_size)
        self.batch_size, self.device = int(batch_size), str(device)
        from lam_mteb_plugins.lam.common.text import LamTokenizer

        self.tokenizer = LamTokenizer(self.model.config.base_model)
        self.dense_dim = self.model.config.hidden_size
        self.embed_dim = (
            self.dense_dim if pooling == "mean" else state_width(self.dense_dim, self.slots)
        )
        self.rows_run = 0

    # ------------------------------------------------------------------ public
    def encode(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        prompt_type: str | None = None,
    ) -> np.ndarray:
        """Embeddings ``(n, embed_dim)`` float32, never NaN: the unit mean for ``mean``; the state
        layout for ``state`` / ``hybrid`` (documents carry their state; see the module doc)."""
        if isinstance(texts, str):
            texts = [texts]
        parts = self.encode_parts(texts, batch_size=batch_size, show_progress_bar=show_progress_bar)
        return self.layout(
            parts, document=str(getattr(prompt_type, "value", prompt_type)) == "document"
        )

    def layout(self, parts: dict[str, np.ndarray], document: bool) -> np.ndarray:
        """The output rows from ``encode_parts`` output (see the module docstring)."""
        import torch

        key = {"tokens": "mean", "windows": "window_mean"}[self.chunk_pooling]
        mean = _normalise(torch.as_tensor(parts[key])).numpy().astype(np.float32)
        if self.pooling == "mean":
            return mean
        n = len(mean)
        slots = np.zeros((n, self.slots * self.dense_dim), dtype=np.float32)
        shares = np.zeros((n, self.slots), dtype=np.float32)
        if document:
            S = _normalise(torch.as_tensor(parts["slots"]).reshape(n, self.slots, -1))
            counts = parts["counts"].astype(np.float32)
            slots = S.reshape(n, -1).numpy().astype(np.float32)
            shares = counts / np.clip(counts.sum(1, keepdims=True), 1e-12, None)
        return np.concatenate([mean, slots, shares], axis=1)

    # similarity (handed to mteb by the bridge)
    def _split(self, x: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        import torch

        x = torch.as_tensor(
            np.asarray(x.detach().cpu() if hasattr(x, "detach") else x), dtype=torch.float32
        )
        x = torch.atleast_2d(x)
        d, K = self.dense_dim, self.slots
        mean = _normalise(x[:, :d])
        if x.shape[1] == d:
            return mean, None, None
        return mean, x[:, d : d + K * d].reshape(len(x), K, d), x[:, d + K * d :]

    def similarity(self, a: Any, b: Any) -> torch.Tensor:
        """``(len(a), len(b))`` scores: ``mean``: cosine; ``state``: the read of each query's mean
        against each document's state (a document without a state: cosine of the means);
        ``hybrid``: the two combined with ``hybrid_weight``."""
        from lam_mteb_plugins.lam.v2.slots import read

        qa, _, _ = self._split(a)
        mb, Sb, nb = self._split(b)
        cos = qa @ mb.T
        if Sb is None or nb is None:
            return cos
        has = nb.sum(1) > 0
        state = read(qa, Sb, nb, self.temperature)
        state = state.where(has[None, :], cos)
        if self.pooling == "hybrid":
            return self.hybrid_weight * cos + (1.0 - self.hybrid_weight) * state
        return state

    def similarity_pairwise(self, a: Any, b: Any) -> torch.Tensor:
        """Row ``i`` of ``a`` against row ``i`` of ``b`` (the diagonal of ``similarity``)."""
        import torch

        qa, _, _ = self._split(a)
        mb, Sb, nb = self._split(b)
        if Sb is None or nb is None:
            return (qa * mb).sum(1)
        return (
            torch.stack(
                [
                    self.similarity(
                        qa[i : i + 1], torch.cat([mb[i], Sb[i].flatten(), nb[i]])[None]
                    )[0, 0]
                    for i in range(len(qa))
                ]
            )
            if len(qa)
            else torch.zeros(0)
        )

    def encode_parts(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
    ) -> dict[str, np.ndarray]:
        """Unnormalised pieces: ``mean`` / ``window_mean`` (n, hidden), ``slots`` (n, slots *
        hidden) and ``counts`` (n, slots): the document state of ``slots.py``.

        With ``LAM_MTEB_LAM2_CACHE=DIR`` in the environment, the pieces of every text are kept in
        DIR (one .npy per text, named by the checkpoint's content hash, chunk size, slot count and
        the text's sha1), so ``mteb run -m lam-mean`` followed by ``-m lam-state`` encodes every
        text once: the models differ only in how the same pieces are used.  Off by default."""
        if isinstance(texts, str):
            texts = [texts]
        texts = [self.tokenizer.clean(t) for t in texts]
        cache = os.environ.get("LAM_MTEB_LAM2_CACHE", "")
        if not cache or self._cache_id.startswith("model"):  # no content hash for a live model
            return self._encode_parts(texts, batch_size, show_progress_bar)
        folder = Path(cache).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        prefix = f"{self._cache_id}-{self.chunk_size}-k{self.slots}-"
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
            fresh = self._encode_parts([texts[i] for i in todo], batch_size, show_progress_bar)
            flat = np.concatenate([fresh[k] for k in self._part_names()], axis=1)
            for j, i in enumerate(todo):
                with atomic_file(files[i], suffix=".tmp.npy") as tmp:
                    np.save(tmp, flat[j].astype(np.float32))
                found[files[i]] = flat[j]
        width = sum(self._part_widths())
        stacked = np.stack([found[f] for f in files]) if files else np.zeros((0, width))
        bounds = np.cumsum([0, *self._part_widths()])
        return {k: stacked[:, bounds[j] : bounds[j + 1]] for j, k in enumerate(self._part_names())}

    @staticmethod
    def _part_names() -> tuple[str, ...]:
        return ("mean", "window_mean", "slots", "counts")

    def _part_widths(self) -> tuple[int, ...]:
        d, K = self.dense_dim, self.slots
        return (d, d, K * d, K)

    def _encode_parts(
        self, texts: list[str], batch_size: int | None, show_progress_bar: bool
    ) -> dict[str, np.ndarray]:
        import torch

        n = len(texts)
        out = {
            k: torch.zeros(n, w)
            for k, w in zip(self._part_names(), self._part_widths(), strict=True)
        }
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
            for rows, run in [
                *((short[j : j + bs], "short") for j in range(0, len(short), bs)),
                *((long_docs[j : j + bs], "long") for j in range(0, len(long_docs), bs)),
            ]:
                if run == "short":
                    res = self._run_short([ids[i] for i in rows])
                else:
                    res = self._run_long([ids[i][1:-1] if i in ids else texts[i] for i in rows])
                r = torch.tensor(rows)
                for k, v in res.items():
                    out[k][r] = v
                if bar is not None:
                    bar.update(len(rows))
        if bar is not None:
            bar.close()
        return {k: v.nan_to_num().numpy() for k, v in out.items()}

    # ------------------------------------------------------------------ internals
    def _run_short(self, seqs: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        """One window per text: MiniLM's forward; the state holds that window in its first slot."""
        import torch

        x, m = pad_batch(seqs, self.tokenizer.pad_id, self.device)
        h, _ = self.model.forward_chunk(x, m, write=False)
        mean = ((h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)).float().cpu()
        slots = torch.zeros(len(seqs), self.slots, self.dense_dim)
        counts = torch.zeros(len(seqs), self.slots)
        slots[:, 0], counts[:, 0] = _normalise(mean), 1.0
        return {"mean": mean, "window_mean": mean, "slots": slots.flatten(1), "counts": counts}

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

    def _run_long(self, docs: Sequence[str | list[int]]) -> dict[str, torch.Tensor]:
        """Lock-step streaming of windows with each layer's memory carried (see the module doc);
        each window's vector is written into the document's slot state.

        Documents whose windows so far are identical share one row (exact; the LongEmbed
        passkey/needle documents share their filler up to the inserted fact)."""
        import torch

        from lam_mteb_plugins.lam.common.text import share_identical
        from lam_mteb_plugins.lam.v2.slots import SlotMemory

        C = self.chunk_size
        cls_id, sep_id = self.tokenizer.cls_id, self.tokenizer.sep_id
        iters = [self._content_chunks(d, C - 2) for d in docs]
        n, L = len(docs), len(self.model.layers)
        sums = torch.zeros(n, self.dense_dim, device=self.device)
        wsums = torch.zeros(n, self.dense_dim, device=self.device)
        counts = torch.zeros(n, device=self.device)
        windows = torch.zeros(n, device=self.device)
        memory = SlotMemory(n, self.slots, self.dense_dim, device=self.device)
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
            # write the layer memories only when a next window reads them (gates not all 0)
            write = self._memory_read and any(pending[r] for r in active)
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
            window = s / c.clamp_min(1)[:, None]
            sums[active] += s[idx]
            counts[active] += c[idx]
            wsums[active] += window[idx]
            windows[active] += 1
            memory.write(torch.tensor(active, device=self.device), _normalise(window[idx]))
            for r, j in zip(active, rep_of, strict=False):
                states[r] = [st[j] for st in new] if write else None
                group[r] = reps[j]
            active = [r for r in active if pending[r]]
        return {
            "mean": (sums / counts.clamp_min(1)[:, None]).float().cpu(),
            "window_mean": (wsums / windows.clamp_min(1)[:, None]).float().cpu(),
            "slots": memory.S.flatten(1).float().cpu(),
            "counts": memory.n.float().cpu(),
        }


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
