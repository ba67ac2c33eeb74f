"""``linear_attention_chunkwise_triton``: the triton forward and backward kernels as one autograd Function.

The kernels return dq, dk, dv, d log_decay and the initial-state (S, z) gradients; only the
normalizer, which concerns per-step scalars, is handled here on [B, H, S] tensors:

- ``h_t = o_t r_t`` with ``r_t = 1 / max(|d_t|, 1)``: ``dnum_t = dh_t r_t`` and
  ``dd_t = -sign(d_t) r_t (dh_t.h_t)`` where ``|d_t| >= 1`` (0 where the floor wins), as autograd
  differentiates ``clamp_min`` in :func:`~biolm.kernels.linear_attention.reference.apply_normalizer`.
- (For reference) the log-decay gradient comes from the backward kernel, summed per exponent span (see
  :mod:`~biolm.kernels.linear_attention.triton.bwd`); the identity ``dF_t = q_t.dq_t - k_t.dk_t``
  would be shorter but cancels to noise where ``g`` is near ``-1e4`` and the true gradient is ~0.
"""

from __future__ import annotations

import torch

from biolm.kernels.linear_attention.chunkwise import linear_attention_chunkwise
from biolm.kernels.linear_attention.reference import LinearAttentionState, default_scale, zero_state
from biolm.kernels.linear_attention.triton.bwd import linear_attention_bwd
from biolm.kernels.linear_attention.triton.fwd import linear_attention_fwd


class _LinearAttentionTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, g, s0, z0, normalize, scale, chunk_size):
        h, s_all, z_all, d_seq = linear_attention_fwd(q, k, v, g, s0, z0, normalize, scale, chunk_size)
        s_t, z_t = (x[:, :, -1].clone() for x in (s_all, z_all))
        ctx.save_for_backward(q, k, v, g, h, s_all, z_all, d_seq)
        ctx.normalize, ctx.scale, ctx.chunk_size = normalize, scale, chunk_size
        return h, s_t, z_t

    @staticmethod
    def backward(ctx, dh, ds_t, dz_t):
        q, k, v, g, h, s_all, z_all, d_seq = ctx.saved_tensors
        f32 = torch.float32
        dh = torch.zeros_like(h, dtype=f32) if dh is None else dh.to(f32)
        ds_t = torch.zeros_like(s_all[:, :, -1]) if ds_t is None else ds_t.to(f32)
        dz_t = torch.zeros_like(z_all[:, :, -1]) if dz_t is None else dz_t.to(f32)
        if ctx.normalize:
            r = 1.0 / d_seq.abs().clamp_min(1.0)  # [B, H, S]
            hdot = (dh * h.to(f32)).sum(-1).transpose(1, 2)
            dd = torch.where(d_seq.abs() >= 1.0, -torch.sign(d_seq) * r * hdot, 0.0)
            dnum = dh * r.transpose(1, 2)[..., None]
        else:
            dd, dnum = torch.zeros_like(d_seq), dh
        dq, dk, dv, dg, ds0, dz0 = linear_attention_bwd(
            q, k, v, g, s_all, z_all, dnum.contiguous(), dd.contiguous(),
            ds_t.contiguous(), dz_t.contiguous(), ctx.scale, ctx.chunk_size,
        )  # fmt: skip
        dg = None if dg is None else dg.to(g.dtype)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), dg, ds0, dz0, None, None, None


def linear_attention_chunkwise_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    log_decay: torch.Tensor | None = None,
    state: LinearAttentionState | None = None,
    normalize: bool = False,
    scale: float | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Chunkwise linear attention with triton forward and backward kernels (``backend="triton"``);
    same function as :func:`~biolm.kernels.linear_attention.chunkwise.linear_attention_chunkwise`,
    with the exact gradients (through the normalizer's max).

    Arguments as :func:`biolm.kernels.linear_attention.linear_attention`, with ``chunk_size`` rounded
    to a power of two >= 16. float64 inputs and empty sequences go to the torch path; other inputs
    must be float32 or bfloat16. Returns ``(h, final state)``, the state float32 (float64 on the
    float64 path).
    """
    batch, seq, heads, dk = q.shape
    if q.dtype == torch.float64 or seq == 0:
        return linear_attention_chunkwise(
            q, k, v, log_decay=log_decay, state=state, normalize=normalize, scale=scale, chunk_size=chunk_size
        )
    if q.dtype not in (torch.float32, torch.bfloat16):
        raise TypeError(f"the triton linear attention takes float32 or bfloat16 inputs; got {q.dtype}")
    dv = v.shape[-1]
    if state is None:
        state = zero_state(batch, heads, dk, dv, torch.float32, q.device)
    s0, z0 = (x.to(torch.float32).contiguous() for x in state)
    q, k, v = (x.contiguous() for x in (q, k, v))
    g = None if log_decay is None else log_decay.contiguous()
    h, s_t, z_t = _LinearAttentionTriton.apply(
        q, k, v, g, s0, z0, bool(normalize), default_scale(dk, scale), int(chunk_size)
    )
    return h, LinearAttentionState(s_t, z_t)


__all__ = ["linear_attention_chunkwise_triton"]
