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
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import lam_mteb

ARCHS = ("lvm-t", "amn")


class LVMT(nn.Module):
    """Small pre-LN transformer over the k context vectors; the last position's output, projected
    back to the vector space, is the residual added to the linear average."""

    def __init__(self, dim: int = 384, context: int = 5, d_model: int = 256, n_layers: int = 2,
                 n_heads: int = 4, ff_mult: int = 2, dropout: float = 0.1):
        super().__init__()
        self.dim, self.context = dim, context
        self.inp = nn.Linear(dim, d_model)
        self.pos = nn.Parameter(torch.zeros(context, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, ff_mult * d_model, dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, dim)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:  # (n, k, d) -> (n, d)
        avg = ctx.mean(dim=1)
        k = ctx.shape[1]
        h = self.inp(ctx) + self.pos[-k:]
        h = self.encoder(h)
        delta = self.out(self.norm(h[:, -1]))
        return F.normalize(avg + delta, dim=-1)


class AMN(nn.Module):
    """Attention over the context (query = the linear average) plus a residual MLP over the
    linear average.

    Each of ``n_heads`` heads forms a softmax-weighted average of the *raw* context vectors
    (content + position dependent weights); its deviation from the uniform average is added with a
    learned per-head gate.  The MLP maps the average to a further residual.  Gates and the MLP's
    output layer start at zero, so the untrained AMN is the linear-average baseline.
    """

    def __init__(self, dim: int = 384, context: int = 5, attn_dim: int = 64, n_heads: int = 4,
                 hidden: int = 512, dropout: float = 0.1):
        super().__init__()
        self.dim, self.context, self.n_heads, self.attn_dim = dim, context, n_heads, attn_dim
        self.ln_q = nn.LayerNorm(dim)
        self.ln_k = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, n_heads * attn_dim)
        self.k = nn.Linear(dim, n_heads * attn_dim)
        self.pos = nn.Parameter(torch.zeros(n_heads, context))
        self.gate = nn.Parameter(torch.zeros(n_heads))
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def attention(self, ctx: torch.Tensor) -> torch.Tensor:
        """Attention weights (n, heads, k)."""
        n, k, _ = ctx.shape
        avg = ctx.mean(dim=1)
        q = self.q(self.ln_q(avg)).view(n, self.n_heads, 1, self.attn_dim)
        kk = self.k(self.ln_k(ctx)).view(n, k, self.n_heads, self.attn_dim).transpose(1, 2)
        logits = (q @ kk.transpose(-1, -2)).squeeze(2) / self.attn_dim ** 0.5 + self.pos[:, -k:]
        return logits.softmax(dim=-1)

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        avg = ctx.mean(dim=1)
        w = self.attention(ctx)  # (n, h, k)
        heads = w @ ctx  # (n, h, d): per-head weighted averages of the raw vectors
        attn = ((heads - avg[:, None, :]) * self.gate[None, :, None]).sum(dim=1)
        return F.normalize(avg + attn + self.mlp(avg), dim=-1)


def build(arch: str, **cfg) -> nn.Module:
    if arch == "lvm-t":
        return LVMT(**cfg)
    if arch == "amn":
        return AMN(**cfg)
    raise lam_mteb.LamMtebError(f"unknown LVM architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_checkpoint(model: nn.Module, folder: str | Path, config: dict) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_checkpoint(folder: str | Path) -> tuple[nn.Module, dict]:
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
    if not cfg_path.exists() or not w_path.exists():
        raise lam_mteb.LamMtebError(
            f"no LVM checkpoint in {folder} (needs config.json + model.safetensors); "
            "train one with `lam-mteb train-lvm --arch lvm-t --out <folder>`")
    config = json.loads(cfg_path.read_text())
    model = build(config["arch"], **config["model"])
    model.load_state_dict(load_file(str(w_path)))
    model.eval()
    return model, config


class TorchPredictor:
    """numpy (n, k, d) -> (n, d) wrapper around a trained module (CPU, no grad)."""

    def __init__(self, model: nn.Module):
        self.model = model.eval()

    def __call__(self, context: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.as_tensor(np.ascontiguousarray(context, dtype=np.float32))
            return self.model(x).numpy()
