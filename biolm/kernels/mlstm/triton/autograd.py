"""``mlstm_chunkwise_triton``: the triton forward and backward kernels as one autograd Function.

The kernels return dq, dk, dv, the per-step ``q.dq`` and ``k.dk`` and the initial-state (C, n)
gradients; everything that concerns only the per-step scalars is done here on [B, H, S] tensors:

- ``r_t = inv_normalizer(d_t, m_t)``, ``dnum_t = dh_t r_t`` (formed inside the kernels) and
  ``dd_t = -sign(d_t) r_t (dh_t.h_t)``
  where ``|d_t|`` wins the max (0 where the floor ``exp(-m_t)`` wins).
- Gate gradients of the smooth part (the stabilizer held fixed): with ``F`` the cumsum of ``log_f``,
  ``dF_t = q_t.dq_t - k_t.dk_t``, ``d log_f = reverse cumsum of dF`` plus ``<dC_T, C_T> + <dn_T, n_T>``
  (the final state is ``exp(F_T)``-scaled), and ``di_t = k_t.dk_t``.
- The stabilizer: with the unstabilized memory held fixed, ``h_t`` depends on ``m_t`` only through
  ``eps``: ``dL/dm_t = -eps r_t (dh_t.h_t)``; the final state adds ``dm_T - <dC_T, C_T> - <dn_T, n_T>``.
  ``m_t = i_s + sum_{s<r<=t} log_f_r`` for its argmax ``s`` (or ``m_0 + sum_{r<=t} log_f_r``), so that
  gradient goes to ``i_s`` and, by a difference array, to the ``log_f`` in between; at exact ties of the
  max the input branch is taken, where autograd on the reference would split the gradient in half.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from biolm.kernels.mlstm.reference import EPS, MLSTMState, inv_normalizer, zero_state
from biolm.kernels.mlstm.triton.bwd import mlstm_bwd
from biolm.kernels.mlstm.triton.fwd import mlstm_fwd


def _stabilizer_grads(
    dm: torch.Tensor, m: torch.Tensor, log_f: torch.Tensor, ig: torch.Tensor, m0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Route ``dm`` [B, H, S] along the argmax paths of ``m``.

    Returns:
        d log_f and di [B, H, S], and dm0 [B, H].
    """
    batch, heads, seq = dm.shape
    m_before = torch.cat([m0[..., None], m[..., :-1]], dim=-1)
    # Input branch at t: the argmax of m_t starts at t (ties count as input branch).
    took_input = ig >= log_f + m_before
    steps = torch.arange(seq, device=dm.device).expand(batch, heads, seq)
    start = torch.cummax(torch.where(took_input, steps, -1), dim=-1).values  # -1: path from m0
    di = torch.zeros_like(dm).scatter_add_(-1, start.clamp_min(0), torch.where(start >= 0, dm, 0.0))
    dm0 = torch.where(start < 0, dm, 0.0).sum(-1)
    # log_f_r gets dm_t for start < r <= t: +dm_t at start+1, -dm_t at t+1, then a cumsum.
    diff = torch.zeros(batch, heads, seq + 1, dtype=dm.dtype, device=dm.device)
    diff.scatter_add_(-1, start + 1, dm).scatter_add_(-1, steps + 1, -dm)
    return diff[..., :seq].cumsum(-1), di, dm0


class _MLSTMTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, i, f, c0, n0, m0, chunk_size):
        h, c_all, n_all, m_all, m_seq, d_seq = mlstm_fwd(q, k, v, i, f, c0, n0, m0, chunk_size)
        c_t, n_t, m_t = (x[:, :, -1].clone() for x in (c_all, n_all, m_all))
        ctx.save_for_backward(q, k, v, i, f, c0, n0, m0, h, c_all, n_all, m_all, m_seq, d_seq)
        ctx.chunk_size = chunk_size
        return h, c_t, n_t, m_t

    @staticmethod
    def backward(ctx, dh, dc_t, dn_t, dm_t):
        q, k, v, i, f, c0, n0, m0, h, c_all, n_all, m_all, m_seq, d_seq = ctx.saved_tensors
        batch, seq, heads, dk = q.shape
        dv = v.shape[-1]
        f32 = torch.float32
        dh = torch.zeros_like(h) if dh is None else dh  # kept in its dtype: the kernels read it
        dc_t = torch.zeros(batch, heads, dk, dv, dtype=f32, device=q.device) if dc_t is None else dc_t
        dn_t = torch.zeros(batch, heads, dk, dtype=f32, device=q.device) if dn_t is None else dn_t
        dm_t = torch.zeros(batch, heads, dtype=f32, device=q.device) if dm_t is None else dm_t
        dc_t, dn_t, dm_t = (x.to(f32).contiguous() for x in (dc_t, dn_t, dm_t))

        r = inv_normalizer(d_seq, m_seq).contiguous()  # [B, H, S]
        hdot = (dh.to(f32) * h.to(f32)).sum(-1).transpose(1, 2)  # dh_t . h_t, [B, H, S]
        use_d = d_seq.abs() > torch.exp(-m_seq)
        dd = torch.where(use_d, -torch.sign(d_seq) * r * hdot, 0.0).contiguous()
        dq, dk_, dv_, qdq, kdk, dc0, dn0 = mlstm_bwd(
            q, k, v, i, f, c_all, n_all, m_all, dh.contiguous(), r, dd, dc_t, dn_t, ctx.chunk_size
        )

        c_t, n_t = c_all[:, :, -1], n_all[:, :, -1]
        final_dot = (dc_t * c_t).sum((-1, -2)) + (dn_t * n_t).sum(-1)  # [B, H]
        d_logf = (qdq - kdk).flip(-1).cumsum(-1).flip(-1) + final_dot[..., None]
        di = kdk

        dm = -EPS * r * hdot
        if seq:
            dm[..., -1] += dm_t - final_dot
            log_f = F.logsigmoid(f.to(f32)).transpose(1, 2)
            lf_m, di_m, dm0 = _stabilizer_grads(dm, m_seq, log_f, i.to(f32).transpose(1, 2), m0)
            d_logf, di = d_logf + lf_m, di + di_m
        else:
            dm0 = dm_t - final_dot
        dm0 = dm0 + (c0 * dc0).sum((-1, -2)) + (n0 * dn0).sum(-1)
        df = d_logf * torch.sigmoid(-f.to(f32).transpose(1, 2))
        return (
            dq, dk_, dv_,
            di.transpose(1, 2).to(i.dtype), df.transpose(1, 2).to(f.dtype),
            dc0, dn0, dm0, None,
        )  # fmt: skip


def mlstm_chunkwise_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    state: MLSTMState | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, MLSTMState]:
    """Chunkwise mLSTM with triton forward and backward kernels (``backend="triton"``); same function
    as ``mlstm_chunkwise``, with the exact gradients (through the normalizer's max and the stabilizer).

    Arguments as :func:`biolm.kernels.mlstm.mlstm`, but float32 or bfloat16 only (the public op keeps
    float64 on torch) and ``chunk_size`` rounded to a power of two >= 16. Returns ``(h, final state)``,
    the state always float32.
    """
    if q.dtype not in (torch.float32, torch.bfloat16):
        raise TypeError(f"the triton mLSTM takes float32 or bfloat16 inputs; got {q.dtype}")
    batch, _, heads, dk = q.shape
    dv = v.shape[-1]
    if state is None:
        state = zero_state(batch, heads, dk, dv, torch.float32, q.device)
    c0, n0, m0 = (s.to(torch.float32).contiguous() for s in state)
    q, k, v, i, f = (x.contiguous() for x in (q, k, v, i, f))
    h, c_t, n_t, m_t = _MLSTMTriton.apply(q, k, v, i, f, c0, n0, m0, int(chunk_size))
    return h, MLSTMState(c_t, n_t, m_t)


__all__ = ["mlstm_chunkwise_triton"]
