"""Delta-rule kernels: the chunkwise WY form (and fla on CUDA) equal the token-by-token
reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lam_mteb_plugins.lam.common.kernels import (
    delta_rule,
    delta_rule_chunkwise,
    delta_rule_fla,
    delta_rule_reference,
    delta_rule_state,
    fla_available,
    unit_lower_inverse,
)

torch.set_num_threads(1)


def _inputs(B=2, H=3, T=77, D=32, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(B, H, T, D, generator=g), dim=-1)
    k = F.normalize(torch.randn(B, H, T, D, generator=g), dim=-1)
    v = torch.randn(B, H, T, D, generator=g)
    beta = torch.rand(B, H, T, generator=g)
    s0 = torch.randn(B, H, D, D, generator=g)
    return [t.to(device) for t in (q, k, v, beta, s0)]


@pytest.mark.parametrize("chunk", [1, 7, 16, 64, 128])
@pytest.mark.parametrize("T", [1, 33, 77, 200])
def test_chunkwise_equals_reference_with_initial_state(chunk, T):
    q, k, v, beta, s0 = _inputs(T=T)
    o_ref, s_ref = delta_rule_reference(q, k, v, beta, s0)
    o, s = delta_rule_chunkwise(q, k, v, beta, s0, chunk_size=chunk)
    torch.testing.assert_close(o, o_ref, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(s, s_ref, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(
        delta_rule_state(k, v, beta, s0, chunk_size=chunk), s_ref, atol=2e-5, rtol=1e-5
    )


def test_reference_is_the_written_recurrence():
    # one token by hand: S1 = S0 - b k (k^T S0) + b k v^T, o = S1^T q
    q, k, v, beta, s0 = _inputs(B=1, H=1, T=1, D=4)
    kk, vv, qq, b, S = k[0, 0, 0], v[0, 0, 0], q[0, 0, 0], beta[0, 0, 0], s0[0, 0]
    S1 = S - b * torch.outer(kk, kk @ S) + b * torch.outer(kk, vv)
    o, s = delta_rule_reference(q, k, v, beta, s0)
    torch.testing.assert_close(s[0, 0], S1)
    torch.testing.assert_close(o[0, 0, 0], S1.T @ qq)


def test_state_is_carried_across_calls():
    """Running two halves with the carried state equals one pass over the whole sequence."""
    q, k, v, beta, s0 = _inputs(T=150)
    o_all, s_all = delta_rule_chunkwise(q, k, v, beta, s0)
    o1, s1 = delta_rule_chunkwise(q[:, :, :61], k[:, :, :61], v[:, :, :61], beta[:, :, :61], s0)
    o2, s2 = delta_rule_chunkwise(q[:, :, 61:], k[:, :, 61:], v[:, :, 61:], beta[:, :, 61:], s1)
    torch.testing.assert_close(torch.cat([o1, o2], 2), o_all, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(s2, s_all, atol=2e-5, rtol=1e-5)
    # and the carried state matters: without it the second half differs
    o2_fresh, _ = delta_rule_chunkwise(
        q[:, :, 61:], k[:, :, 61:], v[:, :, 61:], beta[:, :, 61:], None
    )
    assert (o2_fresh - o2).abs().max() > 1e-2


def test_beta_zero_tokens_do_not_write():
    """Padding (beta = 0) leaves the state exactly as it was."""
    q, k, v, beta, s0 = _inputs(T=40)
    beta_pad = beta.clone()
    beta_pad[:, :, 25:] = 0
    _, s_pad = delta_rule_chunkwise(q, k, v, beta_pad, s0, chunk_size=16)
    _, s_short = delta_rule_chunkwise(q[:, :, :25], k[:, :, :25], v[:, :, :25], beta[:, :, :25], s0)
    torch.testing.assert_close(s_pad, s_short, atol=1e-5, rtol=1e-5)


def test_gradients_match_reference():
    q, k, v, beta, s0 = _inputs(B=1, H=2, T=45, D=8)
    grads = []
    for fn in (delta_rule_reference, lambda *a: delta_rule_chunkwise(*a, chunk_size=16)):
        xs = [t.clone().requires_grad_() for t in (q, k, v, beta, s0)]
        o, s = fn(*xs)
        (o.square().sum() + s.sum()).backward()
        grads.append([x.grad for x in xs])
    for a, b in zip(*grads, strict=False):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("C", [1, 2, 5, 16, 64, 100])
def test_unit_lower_inverse(C):
    # the matrices the kernel inverts: I + tril(diag(beta) K K^T, -1) with unit-norm keys
    k = F.normalize(torch.randn(4, C, 32), dim=-1)
    A = torch.tril((k * torch.rand(4, C, 1)) @ k.transpose(-1, -2), diagonal=-1)
    T = unit_lower_inverse(A)
    torch.testing.assert_close(
        T @ (torch.eye(C) + A), torch.eye(C).expand(4, C, C), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(T, torch.linalg.inv(torch.eye(C) + A), atol=1e-4, rtol=1e-4)


def test_empty_sequence():
    q, k, v, beta, s0 = _inputs(T=0)
    o, s = delta_rule_chunkwise(q, k, v, beta, s0)
    assert o.shape == (2, 3, 0, 32)
    torch.testing.assert_close(s, s0)


def test_dispatch_on_cpu_uses_chunkwise():
    q, k, v, beta, s0 = _inputs(T=20)
    o, s = delta_rule(q, k, v, beta, s0)
    o_ref, s_ref = delta_rule_reference(q, k, v, beta, s0)
    torch.testing.assert_close(o, o_ref, atol=2e-5, rtol=1e-5)


@pytest.mark.skipif(not fla_available(), reason="needs CUDA and flash-linear-attention (fla)")
def test_fla_equals_reference():
    q, k, v, beta, s0 = _inputs(B=2, H=4, T=300, device="cuda")
    o_ref, s_ref = delta_rule_reference(q.float(), k.float(), v.float(), beta.float(), s0.float())
    o, s = delta_rule_fla(q, k, v, beta, s0)
    # fla computes in bfloat16: compare at bfloat16 tolerance
    torch.testing.assert_close(o.float(), o_ref, atol=5e-2, rtol=5e-2)
    torch.testing.assert_close(s.float(), s_ref, atol=5e-2, rtol=5e-2)
    o2, _ = delta_rule(q, k, v, beta, s0)  # "auto" picks fla on CUDA
    torch.testing.assert_close(o2, o)
