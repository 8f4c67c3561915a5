"""Encoder helpers LAM v1 (``lam``) and v2 (``lam2``) share: padding, device choice, the
checkpoint hash behind each kind's ``revision``, and the registry params of an encoder class."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from lam_mteb import LamMtebError

LONG_CHARS = 20_000  # texts longer than this are tokenised as a stream


def _error(message: str) -> LamMtebError:
    from lam_mteb import LamMtebError

    return LamMtebError(message)


def checkpoint_hash(folder: str | Path) -> str:
    """sha256 over the checkpoint's config.json and model.safetensors (content, not path);
    ``"missing"`` when either file is absent."""
    folder = Path(folder).expanduser()
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        path = folder / name
        if not path.is_file():
            return "missing"
        h.update(name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def pad_batch(
    seqs: Sequence[Sequence[int]], pad_id: int = 0, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists -> (ids [B, T] long, mask [B, T] float)."""
    import torch

    T = max(1, max(len(s) for s in seqs))
    x = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    m = torch.zeros(len(seqs), T)
    for r, s in enumerate(seqs):
        if s:
            x[r, : len(s)] = torch.tensor(s)
            m[r, : len(s)] = 1
    return x.to(device), m.to(device)


def resolve_device(device: str | None) -> str:
    """The device to use: ``None`` / ``""`` / ``"auto"`` give cuda when available, else cpu;
    asking for cuda without CUDA is an error."""
    import torch

    if device in (None, "", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise _error(f"LAM device {device!r} requested but CUDA is not available")
    return device


def registry_defaults(encoder_cls: type) -> dict[str, Any]:
    """An encoder class's registry params: its constructor's keyword defaults, except the
    runtime-only ``device`` and ``model`` (the constructor is the one place they are written)."""
    import inspect

    return {
        name: p.default
        for name, p in inspect.signature(encoder_cls).parameters.items()
        if name not in ("device", "model")
    }
