"""LAM's document state: a fixed-size slot memory written by a delta rule, read by the query.

While a document streams, each window's vector ``w`` (the mean of LAM's last hidden states over
the window, L2-normalised) is written into a memory of ``K`` slots ``S`` (K x d) with counts
``n`` (K).  Every write is the delta rule with a one-hot key ``k`` (slot ``k``) and a strength
``beta``, which moves the slot towards a value ``v``::

    S <- S - beta k (k^T S) + beta k v^T        (c_k <- c_k + beta (v - c_k))

The memory keeps ``K`` groups of windows, each slot the mean of its group (online clustering):

1. while a slot is empty, ``w`` fills it (``beta = 1``);
2. otherwise ``w`` joins its nearest slot ``k`` (largest cosine) with ``beta = 1 / (n_k + 1)``
   (online k-means) — unless two slots ``i``, ``j`` are closer to each other than ``w`` is to any
   slot: then ``j`` is merged into ``i`` (``v = c_j``, ``beta = n_j / (n_i + n_j)``) and ``w``
   takes the freed slot ``j`` (``beta = 1``).  A document that changes topic thus gets a slot
   for the new topic instead of blurring it into an old one.

The state's size, K x d + K numbers, does not depend on the document's length.

A query ``q`` (unit norm) reads the state as a soft maximum over the slots, each weighted by the
share of the document's windows it holds (a log-mean-exp with temperature ``tau``)::

    read(q, S, n) = tau * log( sum_k (n_k / sum n) * exp((q . c_k / |c_k| - 1) / tau) ) + 1

which lies between the count-weighted mean of the slot cosines (tau -> inf) and their maximum
(tau -> 0): several slots that match the query count for more than one.

``write_reference`` / ``read_reference`` are the plain per-step forms; ``SlotMemory`` is the
batched form the encoder runs (documents in lock-step); tests compare them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _delta(S: Tensor, slot: int, v: Tensor, beta: float) -> Tensor:
    """One delta-rule write with the one-hot key of ``slot``: S - beta k (k^T S) + beta k v^T."""
    k = torch.zeros(S.shape[0], dtype=S.dtype)
    k[slot] = 1.0
    return S - beta * torch.outer(k, k @ S) + beta * torch.outer(k, v)


def write_reference(S: Tensor, n: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Write window vector ``w`` (d,) into ``S`` (K, d) with counts ``n`` (K,) (module doc)."""
    K = S.shape[0]
    n = n.clone()
    filled = int((n > 0).sum())
    if filled < K:
        n[filled] = 1.0
        return _delta(S, filled, w, 1.0), n
    C = F.normalize(S, dim=-1)
    to_w = C @ w
    pair = C @ C.T
    pair.fill_diagonal_(float("-inf"))
    nearest = int(torch.argmax(to_w))
    i, j = divmod(int(torch.argmax(pair)), K)
    if float(to_w[nearest]) >= float(pair[i, j]):
        S = _delta(S, nearest, w, 1.0 / (float(n[nearest]) + 1.0))
        n[nearest] += 1.0
        return S, n
    S = _delta(S, i, S[j].clone(), float(n[j]) / float(n[i] + n[j]))
    n[i] += n[j]
    S = _delta(S, j, w, 1.0)
    n[j] = 1.0
    return S, n


def read_reference(q: Tensor, S: Tensor, n: Tensor, tau: float) -> float:
    """The query's score against one document state (see the module docstring)."""
    total = float(n.sum())
    if total == 0:
        return 0.0
    acc = 0.0
    for k in range(S.shape[0]):
        if n[k] > 0:
            cos = float(q @ F.normalize(S[k], dim=0))
            acc += float(n[k]) / total * float(torch.exp(torch.tensor((cos - 1.0) / tau)))
    return tau * float(torch.log(torch.tensor(acc))) + 1.0


class SlotMemory:
    """K slots per document for a batch of ``batch`` documents, written in lock-step."""

    def __init__(self, batch: int, slots: int, dim: int, device: str | torch.device = "cpu"):
        self.S = torch.zeros(batch, slots, dim, device=device)
        self.n = torch.zeros(batch, slots, device=device)

    def write(self, rows: Tensor, w: Tensor) -> None:
        """Write window vectors ``w`` (len(rows), d), unit norm, into documents ``rows``."""
        S, n = self.S[rows], self.n[rows]
        K = S.shape[1]
        filled = (n > 0).sum(1)
        fill = filled < K
        if fill.any():  # 1. an empty slot takes the window
            f = fill.nonzero().flatten()
            S[f, filled[f]] = w[f]
            n[f, filled[f]] = 1.0
        full = (~fill).nonzero().flatten()
        if len(full):  # only full memories compare slots (a K x K matrix per document)
            Sf, nf, wf = S[full], n[full], w[full]
            idx = torch.arange(len(full), device=S.device)
            C = F.normalize(Sf, dim=-1)
            to_w = torch.einsum("bkd,bd->bk", C, wf)
            pair = C @ C.transpose(1, 2)
            pair.diagonal(dim1=1, dim2=2).fill_(float("-inf"))
            best = pair.flatten(1).argmax(1)
            i, j = best // K, best % K
            nearest = to_w.argmax(1)
            merge = to_w[idx, nearest] < pair[idx, i, j]
            join = ~merge
            # 2. merge slot j into slot i (count-weighted); the window takes slot j
            m = idx[merge]
            im, jm = i[merge], j[merge]
            ni, nj = nf[m, im], nf[m, jm]
            Sf[m, im] += (nj / (ni + nj))[:, None] * (Sf[m, jm] - Sf[m, im])
            nf[m, im] = ni + nj
            Sf[m, jm] = wf[m]
            nf[m, jm] = 1.0
            # 2. or join the nearest slot (online k-means)
            g, k = idx[join], nearest[join]
            Sf[g, k] += (1.0 / (nf[g, k] + 1.0))[:, None] * (wf[g] - Sf[g, k])
            nf[g, k] += 1.0
            S[full], n[full] = Sf, nf
        self.S[rows], self.n[rows] = S, n


def read(q: Tensor, S: Tensor, n: Tensor, tau: float) -> Tensor:
    """Scores (n_queries, n_docs) of unit queries ``q`` (Q, d) against states ``S`` (D, K, d)
    with counts or shares ``n`` (D, K); a document without slots scores 0."""
    cos = torch.einsum("qd,bkd->qbk", q, F.normalize(S, dim=-1))
    share = n / n.sum(1, keepdim=True).clamp_min(1e-12)
    logw = torch.where(share > 0, share.log(), torch.full_like(share, float("-inf")))
    score = tau * torch.logsumexp((cos - 1.0) / tau + logw[None], dim=-1) + 1.0
    return torch.where(torch.isfinite(score), score, torch.zeros_like(score))
