"""Next-vector predictors: LVM-T (a small transformer) and AMN (attention + residual MLP).

Both predict a *residual over the linear average* of the context and return a unit vector:

    a    = mean(context)                       # the strongest baseline
    pred = normalize(a + f(context))           # f's output layer starts at zero

so an untrained model is exactly the linear-average baseline, and training can only move away
from it where that helps on the training objective (dev selection guards against overfitting).

A checkpoint is a folder with ``config.json`` (architecture + training record) and
``model.safetensors`` (the weights).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

import lam_mteb

ARCHS = ("lvm-t", "amn", "lvm-r")


class LVMT(nn.Module):
    """Small pre-LN transformer over the k context vectors.

    Its outputs re-weight the context (a per-position score, softmax over positions: the
    "mixture" term) and add a free residual (the last position's output projected back to the
    vector space).  Both output layers start at zero, so the untrained model is the linear
    average: ``pred = normalize(sum_i w_i x_i + out(h_k))`` with ``w = 1/k`` at start.
    ``mix=False`` drops the mixture term (a plain residual transformer).
    """

    def __init__(
        self,
        dim: int = 384,
        context: int = 5,
        d_model: int = 256,
        n_layers: int = 2,
        n_heads: int = 4,
        ff_mult: int = 2,
        dropout: float = 0.1,
        mix: bool = True,
    ) -> None:
        super().__init__()
        self.mix = nn.Linear(d_model, 1) if mix else None
        if self.mix is not None:
            nn.init.zeros_(self.mix.weight)
            nn.init.zeros_(self.mix.bias)
        self.dim, self.context = dim, context
        self.inp = nn.Linear(dim, d_model)
        self.pos = nn.Parameter(torch.zeros(context, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            ff_mult * d_model,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, dim)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, ctx: Tensor) -> Tensor:  # (n, k, d) -> (n, d)
        avg = ctx.mean(dim=1)
        k = ctx.shape[1]
        h = self.inp(ctx) + self.pos[-k:]
        h = self.norm(self.encoder(h))
        if self.mix is not None:
            w = self.mix(h).squeeze(-1).softmax(dim=-1)  # (n, k)
            base = (w.unsqueeze(-1) * ctx).sum(dim=1)
        else:
            base = avg
        return F.normalize(base + self.out(h[:, -1]), dim=-1)


class AMN(nn.Module):
    """Attention over the context (query = the linear average) plus a residual MLP over the
    linear average.

    Each of ``n_heads`` heads forms a softmax-weighted average of the *raw* context vectors
    (content + position dependent weights, no value projection); the heads are averaged.  The
    MLP maps the linear average to a residual added before normalising.  The query projection,
    the position biases and the MLP's output layer start at zero, so the untrained AMN is exactly
    the linear-average baseline.  ``hidden = 0`` drops the MLP (attention only).
    """

    fast_params = ("pos",)

    def __init__(
        self,
        dim: int = 384,
        context: int = 5,
        attn_dim: int = 64,
        n_heads: int = 4,
        hidden: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.dim, self.context, self.n_heads, self.attn_dim = dim, context, n_heads, attn_dim
        self.ln_q = nn.LayerNorm(dim)
        self.ln_k = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, n_heads * attn_dim)
        self.k = nn.Linear(dim, n_heads * attn_dim)
        self.pos = nn.Parameter(torch.zeros(n_heads, context))
        nn.init.zeros_(self.q.weight)
        nn.init.zeros_(self.q.bias)
        self.mlp: nn.Sequential | None = None
        if hidden > 0:
            self.mlp = nn.Sequential(
                nn.LayerNorm(dim),
                nn.Dropout(dropout),
                nn.Linear(dim, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, dim),
            )
            out = self.mlp[-1]
            assert isinstance(out, nn.Linear)  # the MLP's output layer, built just above
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)

    def attention(self, ctx: Tensor) -> Tensor:
        """Attention weights (n, heads, k) over the context positions."""
        n, k, _ = ctx.shape
        avg = ctx.mean(dim=1)
        q = self.q(self.ln_q(avg)).view(n, self.n_heads, 1, self.attn_dim)
        kk = self.k(self.ln_k(ctx)).view(n, k, self.n_heads, self.attn_dim).transpose(1, 2)
        logits = (q @ kk.transpose(-1, -2)).squeeze(2) / self.attn_dim**0.5 + self.pos[:, -k:]
        return logits.softmax(dim=-1)

    def forward(self, ctx: Tensor) -> Tensor:
        w = self.attention(ctx).mean(dim=1)  # (n, k), uniform at initialisation
        out = (w.unsqueeze(-1) * ctx).sum(dim=1)
        if self.mlp is not None:
            out = out + self.mlp(ctx.mean(dim=1))
        return F.normalize(out, dim=-1)


class LVMR(nn.Module):
    """Persistence plus a learned correction: the last context vector, re-mixed with the
    others and shifted by a residual, all zero-initialised.

        pred = normalize(x_k + sum_i a_i(ctx) x_i + r(ctx) + b)

    - ``a_i = pos_i + A(f)_i``: per-position mixing coefficients, a static part and a content
      dependent part (a gate between persistence and any recency-weighted average, e.g.
      ``a = g * (1/k, ..., 1/k - 1)`` moves from persistence to the linear average);
    - ``r(f)``: a residual (``hidden > 0``: MLP over the features, else none);
    - ``b``: a global direction (the train set's common component raises the cosine to every
      target at little cost in ranking);
    - features ``f = [x_k, mean(ctx), x_k - x_{k-1}]`` (layer-normed, dropout).

    ``pos``, ``b`` and the output layers of ``A`` and ``r`` start at zero, so the untrained model
    is exactly the persistence baseline.
    """

    fast_params = ("pos", "bias")

    def __init__(
        self,
        dim: int = 384,
        context: int = 5,
        hidden: int = 256,
        dropout: float = 0.1,
        content_mix: bool = True,
        global_bias: bool = True,
        features: str = "last-mean-diff",
    ) -> None:
        super().__init__()
        if features not in ("last-mean-diff", "all"):
            raise lam_mteb.LamMtebError(
                f"unknown LVM-R features {features!r}; choose last-mean-diff or all"
            )
        self.dim, self.context, self.features = dim, context, features
        self.pos = nn.Parameter(torch.zeros(context))
        self.bias = nn.Parameter(torch.zeros(dim)) if global_bias else None
        n_feat = 3 * dim if features == "last-mean-diff" else context * dim
        self.norm = nn.LayerNorm(n_feat)
        self.drop = nn.Dropout(dropout)
        self.body: nn.Sequential | None = None
        self.mix: nn.Linear | None = None
        self.res: nn.Linear | None = None
        if hidden > 0:
            self.body = nn.Sequential(nn.Linear(n_feat, hidden), nn.GELU(), nn.Dropout(dropout))
            self.res = nn.Linear(hidden, dim)
            nn.init.zeros_(self.res.weight)
            nn.init.zeros_(self.res.bias)
        if content_mix:
            self.mix = nn.Linear(hidden if hidden > 0 else n_feat, context)
            nn.init.zeros_(self.mix.weight)
            nn.init.zeros_(self.mix.bias)

    def coefficients(self, ctx: Tensor) -> tuple[Tensor, Tensor | None]:
        """Mixing coefficients ``a`` (n, k) and residual (n, d) or None."""
        k = ctx.shape[1]
        last = ctx[:, -1]
        prev = ctx[:, -2] if k > 1 else last
        if self.features == "all":
            f = self.drop(self.norm(ctx.reshape(ctx.shape[0], -1)))
        else:
            f = self.drop(self.norm(torch.cat([last, ctx.mean(dim=1), last - prev], dim=-1)))
        h = self.body(f) if self.body is not None else f
        a = self.pos[-k:].expand(ctx.shape[0], k)
        if self.mix is not None:
            a = a + self.mix(h)[:, -k:]
        return a, (self.res(h) if self.res is not None else None)

    def forward(self, ctx: Tensor) -> Tensor:  # (n, k, d) -> (n, d)
        a, r = self.coefficients(ctx)
        out = ctx[:, -1] + (a.unsqueeze(-1) * ctx).sum(dim=1)
        if r is not None:
            out = out + r
        if self.bias is not None:
            out = out + self.bias
        return F.normalize(out, dim=-1)


def build(arch: str, **cfg: Any) -> nn.Module:
    if arch == "lvm-t":
        return LVMT(**cfg)
    if arch == "amn":
        return AMN(**cfg)
    if arch == "lvm-r":
        return LVMR(**cfg)
    raise lam_mteb.LamMtebError(
        f"unknown LVM architecture {arch!r}; choose one of {', '.join(ARCHS)}"
    )


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_checkpoint(model: nn.Module, folder: str | Path, config: dict) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(folder / "model.safetensors", 0o644)  # save_file creates it owner-only
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_checkpoint(folder: str | Path) -> tuple[nn.Module, dict]:
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
    if not cfg_path.exists() or not w_path.exists():
        raise lam_mteb.LamMtebError(
            f"no LVM checkpoint in {folder} (needs config.json + model.safetensors); "
            "train one with `lam-mteb train-lvm --arch lvm-t --out <folder>`"
        )
    config = json.loads(cfg_path.read_text())
    model = build(config["arch"], **config["model"])
    model.load_state_dict(load_file(str(w_path)))
    model.eval()
    return model, config


class TorchPredictor:
    """numpy (n, k, d) -> (n, d) wrapper around a trained module (CPU, no grad).

    Small batches run on one intra-op thread: for a single query the work is tiny and thread
    hand-offs dominate (on a busy 2-core machine p95 latency drops from ~100 ms to ~1 ms).
    """

    SMALL_BATCH = 32

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()

    def __call__(self, context: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.ascontiguousarray(context, dtype=np.float32))
        threads = torch.get_num_threads()
        single = len(x) <= self.SMALL_BATCH and threads > 1
        if single:
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                return self.model(x).numpy()
        finally:
            if single:
                torch.set_num_threads(threads)
