"""Delta-rule kernels: a token-by-token reference, a chunkwise-parallel CPU form, and fla on CUDA.

All kernels share one signature and one layout (heads first)::

    o, S = kernel(q, k, v, beta, initial_state=None)

    q, k:  [B, H, T, Dk]   (callers L2-normalise k; q is used as given, no extra scale)
    v:     [B, H, T, Dv]
    beta:  [B, H, T]       (write strength in [0, 1]; beta = 0 leaves the state untouched,
                            which is how padding is masked)
    initial_state: [B, H, Dk, Dv] or None (zeros)
    o:     [B, H, T, Dv]
    S:     [B, H, Dk, Dv]  the state after the last token

The recurrence (per head, per token t)::

    S_t = S_{t-1} - beta_t k_t (k_t^T S_{t-1}) + beta_t k_t v_t^T
        = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T
    o_t = S_t^T q_t
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "delta_rule_reference",
    "unit_lower_inverse",
    "delta_rule_chunkwise",
    "delta_rule_fla",
    "delta_rule_state",
    "delta_rule",
    "fla_available",
]


def _zeros_state(k: Tensor, v: Tensor) -> Tensor:
    B, H, _, Dk = k.shape
    return k.new_zeros(B, H, Dk, v.shape[-1])


def delta_rule_reference(
    q: Tensor, k: Tensor, v: Tensor, beta: Tensor, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The recurrence exactly as written, one token at a time (slow; the ground truth for tests)."""
    S = _zeros_state(k, v) if initial_state is None else initial_state.clone()
    outputs = []
    for t in range(k.shape[2]):
        k_t, v_t, q_t = k[:, :, t], v[:, :, t], q[:, :, t]  # [B, H, D]
        b_t = beta[:, :, t, None, None]  # [B, H, 1, 1]
        recalled = torch.einsum("bhkv,bhk->bhv", S, k_t)  # S^T k
        S = S + b_t * torch.einsum("bhk,bhv->bhkv", k_t, v_t - recalled)
        outputs.append(torch.einsum("bhkv,bhk->bhv", S, q_t))  # S^T q
    o = torch.stack(outputs, dim=2) if outputs else v.new_zeros(v.shape)
    return o, S


def _wy(
    k: Tensor, v: Tensor, beta: Tensor, chunk_size: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, int, int]:
    """Split into chunks of `chunk_size` and build the WY representation of each chunk.

    For a chunk with keys K (C x Dk), values V and betas b, the delta rule started from a state
    S_0 writes  S_C = S_0 + K^T (U - W S_0)  where, with the unit lower-triangular
    L = I + tril(diag(b) K K^T, -1),  W = L^{-1} diag(b) K  and  U = L^{-1} diag(b) V.
    Both are obtained with one batched triangular solve (no loop over tokens).
    Returns k, v, beta padded and reshaped to [B, H, N, C, .] plus W, U and the padded length.
    """
    B, H, T, Dk = k.shape
    Dv = v.shape[-1]
    C = chunk_size
    pad = (-T) % C
    if pad:
        # padded positions have beta = 0 and k = 0: they write nothing and recall nothing
        k = torch.nn.functional.pad(k, (0, 0, 0, pad))
        v = torch.nn.functional.pad(v, (0, 0, 0, pad))
        beta = torch.nn.functional.pad(beta, (0, pad))
    N = (T + pad) // C
    k = k.reshape(B, H, N, C, Dk)
    v = v.reshape(B, H, N, C, Dv)
    beta = beta.reshape(B, H, N, C, 1)
    kb = k * beta
    A = torch.tril(kb @ k.transpose(-1, -2), diagonal=-1)
    wu = unit_lower_inverse(A) @ torch.cat([kb, v * beta], dim=-1)
    W, U = wu[..., :Dk], wu[..., Dk:]
    return k, v, W, U, N, T + pad


def unit_lower_inverse(A: Tensor) -> Tensor:
    """(I + A)^{-1} for strictly lower-triangular A [..., C, C] by recursive block doubling.

    With the inverses T11, T22 of two diagonal blocks known, the inverse of
    [[L11, 0], [L21, L22]] is [[T11, 0], [-T22 L21 T11, T22]].  Starting from 1x1 blocks (whose
    inverse is 1) the block size doubles log2(C) times; each level is two batched matmuls.
    This replaces a triangular solve (LAPACK trsm is slow and erratic for many tiny matrices on
    a busy CPU) with a few large batched matmuls.  C is padded to a power of two.
    """
    C = A.shape[-1]
    P = 1 << max(0, (C - 1).bit_length())
    if P != C:
        A = torch.nn.functional.pad(A, (0, P - C, 0, P - C))
    batch = A.shape[:-2]
    D = A.new_ones(*batch, P, 1, 1)  # inverses of the diagonal blocks, block size s
    s = 1
    while s < P:
        nb = P // (2 * s)
        # the nb diagonal blocks of size 2s of A: [..., nb, 2s, 2s]
        Ad = torch.diagonal(A.reshape(*batch, nb, 2 * s, nb, 2 * s), dim1=-4, dim2=-2)
        A21 = Ad.movedim(-1, -3)[..., s:, :s]
        D = D.reshape(*batch, nb, 2, s, s)
        T11, T22 = D[..., 0, :, :], D[..., 1, :, :]
        T21 = -(T22 @ A21 @ T11)
        top = torch.cat([T11, torch.zeros_like(T11)], dim=-1)
        bottom = torch.cat([T21, T22], dim=-1)
        D = torch.cat([top, bottom], dim=-2)  # [..., nb, 2s, 2s]
        s *= 2
    T = D.reshape(*batch, P, P)
    return T[..., :C, :C] if P != C else T


def delta_rule_chunkwise(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    initial_state: Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[Tensor, Tensor]:
    """Chunkwise-parallel delta rule (WY form) in plain PyTorch; equal to the reference.

    Work inside a chunk is dense matrix algebra; the only Python loop runs over the
    T / chunk_size chunks to carry the state.
    """
    B, H, T, Dk = k.shape
    Dv = v.shape[-1]
    if T == 0:
        S = _zeros_state(k, v) if initial_state is None else initial_state
        return v.new_zeros(B, H, 0, Dv), S
    C = min(chunk_size, T)
    kc, _, W, U, N, Tp = _wy(k, v, beta, C)
    if Tp != T:
        q = torch.nn.functional.pad(q, (0, 0, 0, Tp - T))
    qc = q.reshape(B, H, N, C, Dk)
    # intra-chunk "attention" including the diagonal: o_t reads tokens i <= t of its chunk
    A = torch.tril(qc @ kc.transpose(-1, -2))
    S = _zeros_state(k, v) if initial_state is None else initial_state
    outs = []
    for n in range(N):
        u_new = U[:, :, n] - W[:, :, n] @ S  # [B, H, C, Dv]
        outs.append(qc[:, :, n] @ S + A[:, :, n] @ u_new)
        S = S + kc[:, :, n].transpose(-1, -2) @ u_new
    o = torch.stack(outs, dim=2).reshape(B, H, Tp, Dv)[:, :, :T]
    return o, S


def delta_rule_state(
    k: Tensor, v: Tensor, beta: Tensor, initial_state: Tensor | None = None, chunk_size: int = 64
) -> Tensor:
    """Only the final state of the delta rule (no per-token outputs): cheaper than a full pass."""
    B, H, T, Dk = k.shape
    S = _zeros_state(k, v) if initial_state is None else initial_state
    if T == 0:
        return S
    C = min(chunk_size, T)
    kc, _, W, U, N, _ = _wy(k, v, beta, C)
    for n in range(N):
        S = S + kc[:, :, n].transpose(-1, -2) @ (U[:, :, n] - W[:, :, n] @ S)
    return S


def fla_available() -> bool:
    """True when flash-linear-attention is importable and CUDA is usable."""
    if not torch.cuda.is_available():
        return False
    try:
        from fla.ops.delta_rule import chunk_delta_rule  # noqa: F401
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True


def delta_rule_fla(
    q: Tensor, k: Tensor, v: Tensor, beta: Tensor, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """flash-linear-attention's Triton chunk kernel (CUDA only; computes in bfloat16).

    fla wants [B, T, H, D] tensors in half precision; the state is returned in float32.
    """
    from fla.ops.delta_rule import chunk_delta_rule

    dtype = q.dtype
    half = torch.bfloat16 if dtype == torch.float32 else dtype
    o, S = chunk_delta_rule(
        q.transpose(1, 2).to(half).contiguous(),
        k.transpose(1, 2).to(half).contiguous(),
        v.transpose(1, 2).to(half).contiguous(),
        beta.transpose(1, 2).to(half).contiguous(),
        scale=1.0,
        initial_state=None if initial_state is None else initial_state.float().contiguous(),
        output_final_state=True,
    )
    return o.transpose(1, 2).to(dtype), S.to(dtype)


def delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    initial_state: Tensor | None = None,
    chunk_size: int = 64,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Dispatch: fla on CUDA when installed (backend "auto" or "fla"), else the chunkwise form."""
    if backend == "reference":
        return delta_rule_reference(q, k, v, beta, initial_state)
    if backend == "fla" or (backend == "auto" and q.is_cuda and fla_available()):
        return delta_rule_fla(q, k, v, beta, initial_state)
    return delta_rule_chunkwise(q, k, v, beta, initial_state, chunk_size=chunk_size)
