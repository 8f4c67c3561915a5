"""LAM: all-MiniLM-L6-v2 with each softmax self-attention replaced by a DeltaNet block.

The token/position embeddings, the feed-forward networks and every LayerNorm are MiniLM's and
stay frozen; only the DeltaNet blocks (q/k/v/o projections, the beta projection and per-head
read gains) are trained.  The model is the shared ``LamModel`` (``lam.common.model``) with
``attention="delta"`` (its default) and a :class:`LamConfig`; the same class also runs MiniLM
itself (``attention="softmax"``), which is the teacher for distillation and a check that the
frozen parts are wired exactly as in BERT.

A document is processed as a stream of chunks (``forward_chunk``); every layer's delta-rule state
is carried from one chunk to the next, so memory does not depend on the document's length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lam_mteb_plugins.lam.common.kernels import delta_rule, delta_rule_state
from lam_mteb_plugins.lam.common.model import (
    _ATTENTION_WEIGHTS,
    BASE_MODEL,
    BlocksConfig,
    LamModel,
    _copy_weight_bias,
    _error,
    load_blocks,
)

CHECKPOINT_FORMAT = "lam-deltanet-blocks/1"
MODES = ("final", "bidir", "causal", "causal+final")
_PATHS = {
    "causal": ("causal",),
    "bidir": ("fwd", "bwd"),
    "final": ("final",),
    "causal+final": ("causal", "final"),
}


@dataclass
class LamConfig(BlocksConfig):
    """Everything needed to rebuild a LAM around its trained blocks (saved as config.json)."""

    FORMAT = CHECKPOINT_FORMAT
    WHAT = "LAM"

    base_model: str = BASE_MODEL
    mode: str = "final"  # how a chunk's tokens read the delta-rule memory, see DeltaNetBlock
    hidden_size: int = 384
    num_heads: int = 12
    head_dim: int = 32
    num_layers: int = 6
    kernel_chunk: int = 16  # sub-chunk of the chunkwise kernel (not the 512-token stream chunk)
    format: str = CHECKPOINT_FORMAT
    training: dict = field(default_factory=dict)  # provenance written by `lam-mteb distill`

    def check(self) -> None:
        if self.mode not in MODES:
            raise _error(f"LAM mode {self.mode!r} is not one of {MODES}")
        if self.num_heads * self.head_dim != self.hidden_size:
            raise _error("LAM config: num_heads * head_dim must equal hidden_size")


class DeltaNetBlock(nn.Module):
    """Multi-head delta-rule attention replacing BERT self-attention (up to the output projection).

    Per head: q, k = L2-normalised projections, v a projection, beta = sigmoid(W_b x) (one scalar
    per head and token), state S (head_dim x head_dim).  The chunk's tokens read the memory in one
    of these ways (``mode``):

    - ``final``  every token reads the state after the whole chunk: o_t = S_end^T q_t
      (bidirectional inside a chunk, causal across chunks);
    - ``bidir``  a forward pass (carried state) plus a backward pass over the chunk (zero state);
    - ``causal`` o_t = S_t^T q_t;  ``causal+final`` the sum of both reads.

    Each read is scaled by a learned per-head gain, the heads are concatenated and projected by
    ``o_proj``.  Padded tokens (mask 0) get beta = 0 and k = 0, so they never write the state.
    """

    def __init__(
        self,
        hidden_size: int = 384,
        num_heads: int = 12,
        head_dim: int = 32,
        mode: str = "final",
        kernel_chunk: int = 16,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode, self.num_heads, self.head_dim, self.kernel_chunk = (
            mode,
            num_heads,
            head_dim,
            kernel_chunk,
        )
        inner = num_heads * head_dim
        self.q_proj = nn.Linear(hidden_size, inner)
        self.k_proj = nn.Linear(hidden_size, inner)
        self.v_proj = nn.Linear(hidden_size, inner)
        self.o_proj = nn.Linear(inner, hidden_size)
        self.beta_proj = nn.Linear(hidden_size, num_heads)
        nn.init.zeros_(self.beta_proj.weight)
        nn.init.zeros_(self.beta_proj.bias)
        paths = _PATHS[mode]
        self.gain = nn.Parameter(torch.full((len(paths), num_heads), 1.0 / len(paths)))

    def _heads(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self, x: Tensor, mask: Tensor, state: Tensor | None = None, backend: str = "auto"
    ) -> tuple[Tensor, Tensor]:
        """x [B, T, hidden], mask [B, T] (1 = token), state [B, H, Dk, Dv] or None.

        Returns (output [B, T, hidden], state after the chunk)."""
        q = F.normalize(self._heads(self.q_proj(x)), dim=-1)
        k = F.normalize(self._heads(self.k_proj(x)), dim=-1)
        v = self._heads(self.v_proj(x))
        m = mask.to(x.dtype)[:, None, :]  # [B, 1, T]
        beta = torch.sigmoid(self.beta_proj(x)).transpose(1, 2) * m  # [B, H, T]
        k = k * m[..., None]
        if state is None:
            state = x.new_zeros(x.shape[0], self.num_heads, self.head_dim, self.head_dim)
        kc = self.kernel_chunk
        reads = []
        if self.mode == "final":
            state = delta_rule_state(k, v, beta, state, chunk_size=kc)
            reads.append(q @ state)
        else:
            o, new_state = delta_rule(q, k, v, beta, state, chunk_size=kc, backend=backend)
            reads.append(o)
            if self.mode == "bidir":
                ob, _ = delta_rule(
                    q.flip(2),
                    k.flip(2),
                    v.flip(2),
                    beta.flip(2),
                    None,
                    chunk_size=kc,
                    backend=backend,
                )
                reads.append(ob.flip(2))
            elif self.mode == "causal+final":
                reads.append(q @ new_state)
            state = new_state
        out = sum(g[None, :, None, None] * r for g, r in zip(self.gain, reads, strict=False))
        B, H, T, D = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(B, T, H * D)), state

    @torch.no_grad()
    def init_from_attention(self, sd: dict[str, Tensor], prefix: str) -> None:
        """Copy MiniLM's attention q/k/v and output projection weights."""
        _copy_weight_bias(self, sd, prefix, _ATTENTION_WEIGHTS)


# --------------------------------------------------------------------- checkpoints
def save_checkpoint(
    model: LamModel,
    folder: str | Path,
    dtype: torch.dtype = torch.float16,
    training: dict | None = None,
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (the DeltaNet blocks only)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config.to_dict()
    if training is not None:
        cfg["training"] = training
    tensors = {k: v.to(dtype).contiguous() for k, v in model.block_state_dict().items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": CHECKPOINT_FORMAT})
    (folder / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return folder


def load_checkpoint(folder: str | Path, device: str = "cpu") -> LamModel:
    """Rebuild a LAM from a checkpoint folder; any mismatch is one clear LamMtebError."""
    return load_blocks(
        folder,
        LamConfig,
        LamModel,
        device,
        what="LAM",
        hint=" (create one with `lam-mteb distill --output DIR`)",
    )
