"""LAM v2: MiniLM's exact softmax attention inside a chunk + a gated delta-rule memory across
chunks.

Every layer of all-MiniLM-L6-v2 keeps its softmax self-attention (frozen, MiniLM's weights) for the
tokens of one chunk.  Besides, each layer owns a delta-rule memory ``S`` (12 heads x 32 x 32) that
is written, after a chunk, from that chunk's (L2-normalised) keys and values, and read by the next
chunk's (L2-normalised) queries; the read is added to the softmax output of each head through a
learned per-head gate ``g`` (Infini-attention style)::

    o_t,h = softmax-attention_t,h(chunk)  +  g_h * S_h^T normalise(q_t,h)   (S_h: chunks before)
    S_h  <- delta rule over the chunk's tokens
            (k = normalise(W_k x), v = W_v x, beta = sigmoid(W_b x))

``g`` is initialised to 0 and ``W_b`` to 0 (beta = 0.5): at initialisation every chunk gives exactly
MiniLM's output for that window, so a text of one chunk gives exactly MiniLM's sentence vector and
the mean over the chunks of a long document is MiniLM's window mean.  A text of one chunk never
touches the memory (nothing was written before it), so short texts cost exactly what MiniLM costs.

Only the memory's gates and beta projections (6 x (12 + 384 x 12 + 12) = 27 792 parameters) are
trainable; a checkpoint stores them (float16).

The memory ships untrained (gates 0): LAM's document index is the slot state of ``slots.py``,
written from each window's vector, which needs no training (docs/lam.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lam_mteb_plugins.lam.common.kernels import delta_rule_reference, delta_rule_state
from lam_mteb_plugins.lam.common.model import (
    BASE_MODEL,
    BlocksConfig,
    LamModel,
    SoftmaxAttention,
    _error,
    load_blocks,
)

FORMAT_V2 = "lam-softmax-memory/2"


@dataclass
class LamV2Config(BlocksConfig):
    """Rebuilds a LAM v2 around its trained memory parameters (saved as config.json)."""

    FORMAT = FORMAT_V2
    WHAT = "LAM v2"

    base_model: str = BASE_MODEL
    hidden_size: int = 384
    num_heads: int = 12
    head_dim: int = 32
    num_layers: int = 6
    kernel_chunk: int = 16  # sub-chunk of the chunkwise delta-rule kernel (speed only)
    chunk_size: int = 256  # default stream chunk in tokens, incl. the chunk's [CLS] and [SEP]
    format: str = FORMAT_V2
    mode: str = "softmax+memory"  # for LamModel's constructor / display only
    training: dict = field(default_factory=dict)

    def check(self) -> None:
        if not 3 <= self.chunk_size <= 512:
            raise _error(f"LAM v2 chunk_size must be in 3..512, got {self.chunk_size}")


class MemorySoftmaxAttention(SoftmaxAttention):
    """BERT softmax self-attention over the chunk + a gated read of the delta-rule memory."""

    def __init__(
        self,
        hidden_size: int = 384,
        num_heads: int = 12,
        head_dim: int = 32,
        kernel_chunk: int = 16,
    ) -> None:
        super().__init__(hidden_size, num_heads, head_dim)
        self.kernel_chunk = kernel_chunk
        self.mem_beta = nn.Linear(hidden_size, num_heads)
        nn.init.zeros_(self.mem_beta.weight)
        nn.init.zeros_(self.mem_beta.bias)
        self.mem_gate = nn.Parameter(torch.zeros(num_heads))

    def forward(
        self,
        x: Tensor,
        mask: Tensor,
        state: Tensor | None = None,
        backend: str = "auto",
        write: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """x [B, T, hidden], mask [B, T]; state [B, H, Dk, Dv] (memory of the previous chunks) or
        None.

        Returns (output [B, T, hidden], the memory after this chunk if ``write`` else None)."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x)
        o = self.softmax(q, k, v, mask)
        if state is not None:
            o = o + self.mem_gate[None, :, None, None] * (F.normalize(q, dim=-1) @ state)
        new_state = None
        if write:
            m = mask.to(x.dtype)[:, None, :]
            kn = F.normalize(k, dim=-1) * m[..., None]
            beta = torch.sigmoid(self.mem_beta(x)).transpose(1, 2) * m
            s0 = (
                state
                if state is not None
                else x.new_zeros(B, self.num_heads, self.head_dim, self.head_dim)
            )
            if backend == "reference":
                _, new_state = delta_rule_reference(kn, kn, v, beta, s0)
            else:
                new_state = delta_rule_state(kn, v, beta, s0, chunk_size=self.kernel_chunk)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, -1)), new_state


class LamV2Model(LamModel):
    """MiniLM (frozen) with a gated delta-rule memory per layer; see the module docstring."""

    version = 2
    config: LamV2Config

    def __init__(self, config: LamV2Config | None = None) -> None:
        config = config or LamV2Config()
        super().__init__(config, attention="softmax")
        c = self.config
        for layer in self.lam_layers():
            layer.attention = MemorySoftmaxAttention(
                c.hidden_size, c.num_heads, c.head_dim, c.kernel_chunk
            )
        self.attention_kind = "memory"

    def freeze_base(self) -> LamV2Model:
        for name, p in self.named_parameters():
            p.requires_grad = ".mem_" in name
        return self

    def memory_is_read(self) -> bool:
        """False when every gate is 0 (the initialisation): the memory is then never read, so the
        encoder skips writing it (exact) unless the state itself is pooled."""
        return any(bool(m.mem_gate.detach().abs().max() > 0) for m in self.memories())

    def memories(self) -> list[MemorySoftmaxAttention]:
        """Every layer's attention block (each one a MemorySoftmaxAttention, set in __init__)."""
        return [cast(MemorySoftmaxAttention, la.attention) for la in self.lam_layers()]

    def block_state_dict(self) -> dict:
        sd = self.state_dict()
        return {k: v.detach() for k, v in sd.items() if ".mem_" in k}


def save_v2(model: LamV2Model, folder: str | Path, training: dict | None = None) -> Path:
    """config.json + model.safetensors (memory gates and betas, float16)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config.to_dict()
    if training is not None:
        cfg["training"] = training
    tensors = {k: v.to(torch.float16).contiguous() for k, v in model.block_state_dict().items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": FORMAT_V2})
    (folder / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return folder


def load_v2(folder: str | Path, device: str = "cpu") -> LamV2Model:
    return load_blocks(folder, LamV2Config, LamV2Model, device, what="LAM v2")


def n_trainable(model: LamV2Model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
