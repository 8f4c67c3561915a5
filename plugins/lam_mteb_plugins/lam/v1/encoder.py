"""The ``lam`` encoder: streaming LAM inference with mean / state / hybrid pooling.

Short texts (at most ``chunk_size`` tokens) are batched and padded (padding writes nothing into
the delta-rule state).  Longer texts are cut into chunks of ``chunk_size`` tokens and run in
lock-step batches, each document carrying its six per-layer states from chunk to chunk; only a
running sum of hidden states and the states are kept, so memory does not grow with length.
Positions continue across chunks modulo 512 (MiniLM's 512 learned positions): with the default
512-token chunks every chunk uses positions 0..511 (see docs/lam.md for the measurement).

Poolings (all returned L2-normalised):

- ``mean``:   mean of the last layer's hidden states over every token of the document;
- ``state``:  from the last layer's final state S (per head h: S_h in R^{32x32}, rows = key
              dimensions, columns = value dimensions)
              d = concat_h diag(S_h)                 (384)
              s = concat_h sum_i S_h[i, :]           (384, per value slot, summed over keys)
              e = normalise(0.7 * normalise(d) + 0.3 * normalise(s));
- ``hybrid``: normalise(w * mean + (1 - w) * state), w = ``hybrid_weight``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

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
    from lam_mteb_plugins.lam.common.model import LamModel

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR  # the shipped checkpoint (weights: None / "default")
POOLINGS = ("mean", "state", "hybrid")


def _error(message: str) -> LamMtebError:
    from lam_mteb import LamMtebError

    return LamMtebError(message)


def resolve_weights(weights: str | Path | None) -> Path:
    """None/"default" -> the shipped checkpoint; otherwise a folder path."""
    if weights in (None, "", "default"):
        return DEFAULT_WEIGHTS
    return Path(str(weights)).expanduser()


def revision(params: dict) -> str:
    """Changes whenever the checkpoint's bytes or any output-affecting parameter change."""
    keep = {
        k: params.get(k, DEFAULTS[k])
        for k in ("pooling", "hybrid_weight", "diag_weight", "chunk_size")
    }
    folder = resolve_weights(params.get("weights"))
    blob = json.dumps(keep, sort_keys=True) + checkpoint_hash(folder)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def state_embedding(S: torch.Tensor, diag_weight: float = 0.7) -> torch.Tensor:
    """[B, H, Dk, Dv] final states -> [B, H*Dv] state embeddings (the formula above)."""
    import torch
    import torch.nn.functional as F

    diag = torch.diagonal(S, dim1=-2, dim2=-1).flatten(1)
    per_slot = S.sum(dim=-2).flatten(1)  # sum over keys (rows) for every value slot
    e = diag_weight * F.normalize(diag, dim=-1) + (1 - diag_weight) * F.normalize(per_slot, dim=-1)
    return F.normalize(e, dim=-1)


class LamEncoder:
    """LAM sentence/document encoder (see module docstring)."""

    def __init__(
        self,
        pooling: str = "mean",
        weights: str | Path | None = None,
        hybrid_weight: float = 0.8,
        diag_weight: float = 0.7,
        chunk_size: int = 512,
        batch_size: int = 32,
        device: str | None = None,
        model: LamModel | None = None,
    ) -> None:
        if pooling not in POOLINGS:
            raise _error(f"LAM pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
        if not 0.0 <= float(hybrid_weight) <= 1.0 or not 0.0 <= float(diag_weight) <= 1.0:
            raise _error("LAM hybrid_weight and diag_weight must lie in [0, 1]")
        if not 1 <= int(chunk_size) <= 512:
            raise _error(
                f"LAM chunk_size must be in 1..512 (MiniLM has 512 positions), got {chunk_size}"
            )
        device = resolve_device(device)
        self.pooling, self.hybrid_weight, self.diag_weight = (
            pooling,
            float(hybrid_weight),
            float(diag_weight),
        )
        self.chunk_size, self.batch_size, self.device = (
            int(chunk_size),
            int(batch_size),
            str(device),
        )
        if model is None:
            from lam_mteb_plugins.lam.v1.model import load_checkpoint

            model = load_checkpoint(resolve_weights(weights), device=self.device)
        self.model = model.eval()
        from lam_mteb_plugins.lam.common.text import LamTokenizer

        self.tokenizer = LamTokenizer(self.model.config.base_model)
        self.embed_dim = self.model.config.hidden_size
        self.rows_run = 0  # chunk rows actually run through the model (long documents)

    # ------------------------------------------------------------------ public
    def encode(
        self,
        texts: Sequence[str] | str,
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embeddings (n, 384), float32, L2-normalised, never NaN."""
        pooled = self.encode_all(texts, batch_size=batch_size, show_progress_bar=show_progress_bar)
        return pooled[self.pooling]

    def encode_all(
        self,
        texts: Sequence[str] | str,
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
    ) -> dict[str, np.ndarray]:
        """All three poolings from one pass: {"mean", "state", "hybrid"} -> (n, 384) arrays."""
        import torch
        import torch.nn.functional as F

        if isinstance(texts, str):
            texts = [texts]
        texts = [self.tokenizer.clean(t) for t in texts]
        n = len(texts)
        mean = torch.zeros(n, self.embed_dim)
        state = torch.zeros(n, self.embed_dim)
        bs = max(1, int(batch_size or self.batch_size))
        order = sorted(range(n), key=lambda i: len(texts[i]))
        bar = None
        if show_progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="LAM", unit="text")
        # (index, its token ids, or None for a text too long to tokenise at once: streamed)
        long_docs: list[tuple[int, list[int] | None]] = []
        with torch.inference_mode():
            for start in range(0, n, bs):
                idx = [i for i in order[start : start + bs] if len(texts[i]) <= LONG_CHARS]
                long_docs += [
                    (i, None) for i in order[start : start + bs] if len(texts[i]) > LONG_CHARS
                ]
                if not idx:
                    continue
                ids = self.tokenizer.encode_batch([texts[i] for i in idx])
                pairs = list(zip(idx, ids, strict=False))
                short = [(i, t) for i, t in pairs if len(t) <= self.chunk_size]
                long_docs += [(i, t) for i, t in pairs if len(t) > self.chunk_size]
                if short:
                    m, s = self._run_short([t for _, t in short])
                    rows = torch.tensor([i for i, _ in short])
                    mean[rows], state[rows] = m, s
                    if bar is not None:
                        bar.update(len(short))
            for start in range(0, len(long_docs), bs):
                group = long_docs[start : start + bs]
                m, s = self._run_long([texts[i] if t is None else t for i, t in group])
                rows = torch.tensor([i for i, _ in group])
                mean[rows], state[rows] = m, s
                if bar is not None:
                    bar.update(len(group))
        if bar is not None:
            bar.close()
        mean_np = F.normalize(torch.nan_to_num(mean), dim=-1).numpy().astype(np.float32)
        state_np = torch.nan_to_num(state).numpy().astype(np.float32)
        return {"mean": mean_np, "state": state_np, "hybrid": self.hybrid(mean_np, state_np)}

    def hybrid(self, mean: np.ndarray, state: np.ndarray) -> np.ndarray:
        """normalise(w * mean + (1 - w) * state) of pooled (n, 384) arrays, w = hybrid_weight."""
        w = self.hybrid_weight
        mix = w * np.asarray(mean, dtype=np.float32) + (1 - w) * np.asarray(state, dtype=np.float32)
        return (mix / np.linalg.norm(mix, axis=-1, keepdims=True).clip(1e-12)).astype(np.float32)

    # ------------------------------------------------------------------ internals
    def _pad(self, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_batch(seqs, self.tokenizer.pad_id, self.device)

    def _run_short(self, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        x, m = self._pad(seqs)
        h, states = self.model.forward_chunk(x, m)
        mean = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)
        last = states[-1]
        assert last is not None  # a DeltaNet block always returns its state
        return mean.float().cpu(), state_embedding(last.float(), self.diag_weight).cpu()

    def _run_long(self, docs: Sequence[str | list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Lock-step streaming over documents given as token lists or raw (very long) strings.

        Shared prefixes are computed once: at every step, documents whose chunks so far are
        identical (same group at the previous step, same tokens now) form one group and only one
        row per group is run; the others copy its states and sums.  Exact (same inputs, same
        outputs), and it removes about half the work when documents share their beginning, as
        the LongEmbed passkey/needle documents do (the same filler/haystack up to the key).
        """
        import torch

        from lam_mteb_plugins.lam.common.text import share_identical

        C = self.chunk_size
        iters: list[Iterator[list[int]]] = []
        for d in docs:
            if isinstance(d, str):
                iters.append(self.tokenizer.iter_chunks(d, C))
            else:
                iters.append(iter([d[j : j + C] for j in range(0, len(d), C)]))
        n, L = len(docs), len(self.model.layers)
        sums = torch.zeros(n, self.embed_dim, device=self.device)
        counts = torch.zeros(n, device=self.device)
        # per document: list of per-layer states [H, Dk, Dv] (empty before its first chunk)
        states: list[list[torch.Tensor]] = [[] for _ in range(n)]
        group = [0] * n  # documents with the same group id have read identical tokens so far
        active = list(range(n))
        offset = 0  # position of the chunk's first token in the document (wraps modulo 512)
        while active:
            chunks: list[list[int]] = []
            still: list[int] = []
            for r in active:
                c = next(iters[r], None)
                if c:
                    chunks.append(c)
                    still.append(r)
            active = still
            if not active:
                break
            reps, uniq, rep_of = share_identical(active, chunks, group)
            x, m = self._pad(uniq)
            prev = None
            if states[reps[0]]:
                prev = [torch.stack([states[r][layer] for r in reps]) for layer in range(L)]
            h, new_or_none = self.model.forward_chunk(x, m, prev, position_offset=offset)
            new = [s for s in new_or_none if s is not None]
            assert len(new) == L  # a DeltaNet block always returns its state
            self.rows_run += len(reps)
            offset += C
            rep_sums = (h * m[..., None]).sum(1)
            rep_counts = m.sum(1)
            idx = torch.tensor(rep_of, device=self.device)
            sums[active] += rep_sums[idx]
            counts[active] += rep_counts[idx]
            for r, j in zip(active, rep_of, strict=False):
                states[r] = [s[j] for s in new]
                group[r] = reps[j]
        mean = sums / counts.clamp_min(1)[:, None]
        last = torch.stack([s[-1] for s in states])
        return mean.float().cpu(), state_embedding(last.float(), self.diag_weight).cpu()


DEFAULTS = registry_defaults(LamEncoder)
